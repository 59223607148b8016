package script

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// maxResults bounds how many values unpack and string.byte push, as Lua
// 5.1's stack check does (LUAI_MAXCSTACK).
const maxResults = 8000

// baseFuncs are the base library functions lockd writes itself: those that
// must see through read-only proxies or refuse them, the ones whose Lua 5.1
// behaviour gopher-lua does not match, and Redis's pcall. buildShared adds
// gopher-lua's getfenv, setfenv, xpcall and newproxy. Not here, as in Redis:
// print, dofile, loadfile, require, module. Not here, unlike Redis: load and
// loadstring.
func baseFuncs() map[string]lua.LGFunction {
	return map[string]lua.LGFunction{
		"assert":         baseAssert,
		"collectgarbage": baseCollectGarbage,
		"error":          baseError,
		"gcinfo":         baseGcinfo,
		"getmetatable":   baseGetmetatable,
		"ipairs":         baseIpairs,
		"next":           baseNext,
		"pairs":          basePairs,
		"pcall":          basePcall,
		"rawequal":       baseRawequal,
		"rawget":         baseRawget,
		"rawset":         baseRawset,
		"select":         baseSelect,
		"setmetatable":   baseSetmetatable,
		"tonumber":       baseTonumber,
		"tostring":       baseTostring,
		"type":           baseType,
		"unpack":         baseUnpack,
	}
}

func runOf(L *lua.LState) *run { return L.Context().(*run) }

func baseAssert(L *lua.LState) int {
	v := checkAny(L, 1, "assert")
	if v == lua.LNil || v == lua.LFalse {
		L.RaiseError("%s", optString(L, 2, "assert", "assertion failed!"))
	}
	return L.GetTop()
}

// baseCollectGarbage accepts Lua 5.1's options and does nothing: the Go
// collector is the process's, not the script's.
func baseCollectGarbage(L *lua.LState) int {
	switch opt := optString(L, 1, "collectgarbage", "collect"); opt {
	case "step":
		L.Push(lua.LFalse)
	case "stop", "restart", "collect", "count", "setpause", "setstepmul":
		L.Push(lua.LNumber(0))
	default:
		argError(L, 1, "collectgarbage", "invalid option '"+opt+"'")
	}
	return 1
}

func baseGcinfo(L *lua.LState) int {
	L.Push(lua.LNumber(0))
	return 1
}

// baseError is Lua 5.1's error: a string or number message gets the position
// of the function level levels up the stack.
func baseError(L *lua.LState) int {
	msg := L.Get(1)
	level := optInt(L, 2, "error", 1)
	switch msg.(type) {
	case lua.LString, lua.LNumber:
		if level > 0 {
			msg = lua.LString(where(L, int(level)) + luaString(msg))
		}
	}
	L.Error(msg, 0)
	return 0
}

// where is luaL_where: "user_script:LINE: " for a Lua function level levels
// up the stack, "" otherwise.
func where(L *lua.LState, level int) string {
	dbg, ok := L.GetStack(level)
	if !ok {
		return ""
	}
	if _, err := L.GetInfo("Sl", dbg, lua.LNil); err != nil || dbg.What == "G" || dbg.CurrentLine <= 0 {
		return ""
	}
	return fmt.Sprintf("%s:%d: ", dbg.Source, dbg.CurrentLine)
}

func baseGetmetatable(L *lua.LState) int {
	switch v := checkAny(L, 1, "getmetatable").(type) {
	case lua.LString:
		L.Push(shared().stringMetaP)
	case *lua.LTable:
		if _, ro := runOf(L).readonly(v); ro {
			L.Push(lua.LNil)
			return 1
		}
		L.Push(visibleMetatable(v.Metatable))
	case *lua.LUserData:
		L.Push(visibleMetatable(v.Metatable))
	default:
		L.Push(lua.LNil)
	}
	return 1
}

// visibleMetatable is what getmetatable answers for a value whose metatable
// is mt: its __metatable field if it has one.
func visibleMetatable(mt lua.LValue) lua.LValue {
	if t, ok := mt.(*lua.LTable); ok {
		if f := t.RawGetString("__metatable"); f != lua.LNil {
			return f
		}
	}
	return mt
}

func baseSetmetatable(L *lua.LState) int {
	t := checkTable(L, 1, "setmetatable")
	mt := L.Get(2)
	if _, ok := mt.(*lua.LTable); !ok && mt != lua.LNil {
		typeError(L, 2, "setmetatable", "nil or table")
	}
	runOf(L).checkWritable(L, t)
	if visibleMetatable(t.Metatable) != t.Metatable {
		L.RaiseError("cannot change a protected metatable")
	}
	t.Metatable = mt
	L.SetTop(1)
	return 1
}

func baseIpairs(L *lua.LState) int {
	t := checkTable(L, 1, "ipairs")
	L.Push(shared().ipairsAux)
	L.Push(t)
	L.Push(lua.LNumber(0))
	return 3
}

func ipairsAux(L *lua.LState) int {
	i := checkInt(L, 2, "ipairs") + 1
	v := checkTable(L, 1, "ipairs").RawGetInt(int(i))
	if v == lua.LNil {
		return 0
	}
	L.Push(lua.LNumber(i))
	L.Push(v)
	return 2
}

func basePairs(L *lua.LState) int {
	t := checkTable(L, 1, "pairs")
	L.Push(shared().next)
	L.Push(t)
	L.Push(lua.LNil)
	return 3
}

func baseNext(L *lua.LState) int {
	t := checkTable(L, 1, "next")
	k, v := runOf(L).next(t, L.Get(2))
	if k == lua.LNil {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(k)
	L.Push(v)
	return 2
}

// next is Lua's next, seeing through read-only proxies to the tables behind
// them (values only: the tables themselves stay out of reach).
func (r *run) next(t *lua.LTable, k lua.LValue) (lua.LValue, lua.LValue) {
	backs, ro := r.readonly(t)
	if !ro {
		return t.Next(k)
	}
	i := 0
	if k != lua.LNil {
		for i < len(backs) && backs[i].RawGet(k) == lua.LNil {
			i++
		}
	}
	for ; i < len(backs); i++ {
		if nk, nv := backs[i].Next(k); nk != lua.LNil {
			return nk, nv
		}
		k = lua.LNil
	}
	return lua.LNil, lua.LNil
}

// basePcall is Redis's pcall: Lua's, except that an error raised as a table
// with an err field (redis.call's) is returned as that field.
func basePcall(L *lua.LState) int {
	checkAny(L, 1, "pcall")
	err := L.PCall(L.GetTop()-1, lua.MultRet, nil)
	if err == nil {
		L.Insert(lua.LTrue, 1)
		return L.GetTop()
	}
	var obj lua.LValue = lua.LString(err.Error())
	if ae, ok := err.(*lua.ApiError); ok {
		obj = errorObject(ae)
	}
	if t, ok := obj.(*lua.LTable); ok {
		switch e := t.RawGetString("err").(type) {
		case lua.LString, lua.LNumber:
			obj = e
		}
	}
	L.Push(lua.LFalse)
	L.Push(obj)
	return 2
}

func baseRawequal(L *lua.LState) int {
	a, b := checkAny(L, 1, "rawequal"), checkAny(L, 2, "rawequal")
	L.Push(lua.LBool(a == b))
	return 1
}

func baseRawget(L *lua.LState) int {
	t := checkTable(L, 1, "rawget")
	k := checkAny(L, 2, "rawget")
	if backs, ro := runOf(L).readonly(t); ro {
		for _, b := range backs {
			if v := b.RawGet(k); v != lua.LNil {
				L.Push(v)
				return 1
			}
		}
	}
	L.Push(t.RawGet(k))
	return 1
}

func baseRawset(L *lua.LState) int {
	t := checkTable(L, 1, "rawset")
	k := checkAny(L, 2, "rawset")
	v := checkAny(L, 3, "rawset")
	runOf(L).checkWritable(L, t)
	rawSet(L, t, k, v)
	L.SetTop(1)
	return 1
}

// rawSet stores t[k] = v without metamethods, refusing the keys Lua refuses.
func rawSet(L *lua.LState, t *lua.LTable, k, v lua.LValue) {
	switch k := k.(type) {
	case *lua.LNilType:
		L.RaiseError("table index is nil")
	case lua.LNumber:
		if math.IsNaN(float64(k)) {
			L.RaiseError("table index is NaN")
		}
	}
	t.RawSet(k, v)
}

func baseSelect(L *lua.LState) int {
	n := L.GetTop()
	if s, ok := L.Get(1).(lua.LString); ok && s == "#" {
		L.Push(lua.LNumber(n - 1))
		return 1
	}
	i := checkInt(L, 1, "select")
	switch {
	case i < 0:
		i += int64(n)
	case i > int64(n):
		i = int64(n)
	}
	if i < 1 {
		argError(L, 1, "select", "index out of range")
	}
	return n - int(i)
}

func baseTonumber(L *lua.LState) int {
	base := optInt(L, 2, "tonumber", 10)
	if base == 10 {
		switch v := checkAny(L, 1, "tonumber").(type) {
		case lua.LNumber:
			L.Push(v)
			return 1
		case lua.LString:
			if f, ok := parseNumber(string(v)); ok {
				L.Push(lua.LNumber(f))
				return 1
			}
		}
		L.Push(lua.LNil)
		return 1
	}
	if base < 2 || base > 36 {
		argError(L, 2, "tonumber", "base out of range")
	}
	s := strings.Trim(checkString(L, 1, "tonumber"), " \t\n\v\f\r")
	if u, err := strconv.ParseUint(s, int(base), 64); err == nil || isRangeError(err) {
		L.Push(lua.LNumber(float64(u)))
		return 1
	}
	L.Push(lua.LNil)
	return 1
}

// baseTostring is Lua's tostring: what __tostring returns if v's metatable
// has one.
func baseTostring(L *lua.LState) int {
	v := checkAny(L, 1, "tostring")
	if mt := L.GetMetaField(v, "__tostring"); mt != lua.LNil {
		L.Push(mt)
		L.Push(v)
		L.Call(1, 1)
		return 1
	}
	L.Push(lua.LString(luaString(v)))
	return 1
}

func baseType(L *lua.LState) int {
	L.Push(lua.LString(checkAny(L, 1, "type").Type().String()))
	return 1
}

func baseUnpack(L *lua.LState) int {
	t := checkTable(L, 1, "unpack")
	i := optInt(L, 2, "unpack", 1)
	j := optInt(L, 3, "unpack", int64(t.Len()))
	if i > j {
		return 0
	}
	if j-i >= maxResults || j-i < 0 {
		L.RaiseError("too many results to unpack")
	}
	for k := i; k <= j; k++ {
		L.Push(t.RawGetInt(int(k)))
	}
	return int(j - i + 1)
}
