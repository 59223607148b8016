package script

import (
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// tableFuncs is Lua 5.1's table library. Every function that writes refuses
// read-only tables, every loop spends the run's budget, and concat builds at
// most Limits.MaxString bytes.
func tableFuncs() map[string]lua.LGFunction {
	return map[string]lua.LGFunction{
		"concat":   tableConcat,
		"insert":   tableInsert,
		"remove":   tableRemove,
		"sort":     tableSort,
		"maxn":     tableMaxn,
		"getn":     func(L *lua.LState) int { L.Push(lua.LNumber(checkTable(L, 1, "getn").Len())); return 1 },
		"setn":     func(L *lua.LState) int { L.RaiseError("'setn' is obsolete"); return 0 },
		"foreach":  tableForeach,
		"foreachi": tableForeachi,
	}
}

// step spends n instructions on a library function's loop, raising the
// budget's error once the run must stop.
func step(L *lua.LState, n int64) {
	if r := runOf(L); !r.spend(n) {
		L.RaiseError("%s", r.Err())
	}
}

func tableConcat(L *lua.LState) int {
	t := checkTable(L, 1, "concat")
	sep := optString(L, 2, "concat", "")
	i := optInt(L, 3, "concat", 1)
	j := optInt(L, 4, "concat", int64(t.Len()))
	limit := runOf(L).lim.MaxString
	var parts []string
	size := 0
	for k := i; k <= j; k++ {
		step(L, 1)
		v := t.RawGetInt(int(k))
		switch v.(type) {
		case lua.LString, lua.LNumber:
		default:
			L.RaiseError("invalid value (at index %d) in table for 'concat'", k)
		}
		s := luaString(v)
		if k > i {
			size += len(sep)
		}
		if size += len(s); size > limit {
			L.RaiseError("resulting string too large")
		}
		parts = append(parts, s)
		if k == j { // j may be the largest integer
			break
		}
	}
	L.Push(lua.LString(strings.Join(parts, sep)))
	return 1
}

func tableInsert(L *lua.LState) int {
	t := checkTable(L, 1, "insert")
	runOf(L).checkWritable(L, t)
	e := int64(t.Len()) + 1
	var pos int64
	switch L.GetTop() {
	case 2:
		pos = e
	case 3:
		pos = checkInt(L, 2, "insert")
		if pos > e {
			e = pos
		}
		for k := e; k > pos; k-- {
			step(L, 1)
			t.RawSetInt(int(k), t.RawGetInt(int(k-1)))
		}
	default:
		L.RaiseError("wrong number of arguments to 'insert'")
	}
	rawSet(L, t, lua.LNumber(pos), L.Get(L.GetTop()))
	return 0
}

func tableRemove(L *lua.LState) int {
	t := checkTable(L, 1, "remove")
	e := int64(t.Len())
	pos := optInt(L, 2, "remove", e)
	if pos < 1 || pos > e {
		return 0
	}
	runOf(L).checkWritable(L, t)
	L.Push(t.RawGetInt(int(pos)))
	for ; pos < e; pos++ {
		step(L, 1)
		t.RawSetInt(int(pos), t.RawGetInt(int(pos+1)))
	}
	t.RawSetInt(int(e), lua.LNil)
	return 1
}

func tableSort(L *lua.LState) int {
	t := checkTable(L, 1, "sort")
	less := L.Get(2)
	if _, ok := less.(*lua.LFunction); !ok && less != lua.LNil {
		typeError(L, 2, "sort", "function")
	}
	runOf(L).checkWritable(L, t)
	n := t.Len()
	s := &luaSorter{L: L, less: less, values: make([]lua.LValue, n)}
	for i := range s.values {
		s.values[i] = t.RawGetInt(i + 1)
	}
	sort.Sort(s)
	for i, v := range s.values {
		t.RawSetInt(i+1, v)
	}
	return 0
}

// luaSorter sorts Lua values with a comparison function, or Lua's <.
type luaSorter struct {
	L      *lua.LState
	less   lua.LValue
	values []lua.LValue
}

func (s *luaSorter) Len() int      { return len(s.values) }
func (s *luaSorter) Swap(i, j int) { s.values[i], s.values[j] = s.values[j], s.values[i] }
func (s *luaSorter) Less(i, j int) bool {
	step(s.L, 1)
	if s.less == lua.LNil {
		return s.L.LessThan(s.values[i], s.values[j])
	}
	s.L.Push(s.less)
	s.L.Push(s.values[i])
	s.L.Push(s.values[j])
	s.L.Call(2, 1)
	r := s.L.Get(-1)
	s.L.Pop(1)
	return lua.LVAsBool(r)
}

func tableMaxn(L *lua.LState) int {
	t := checkTable(L, 1, "maxn")
	m := 0.0
	for k, _ := t.Next(lua.LNil); k != lua.LNil; k, _ = t.Next(k) {
		step(L, 1)
		if n, ok := k.(lua.LNumber); ok && float64(n) > m {
			m = float64(n)
		}
	}
	L.Push(lua.LNumber(m))
	return 1
}

func checkFunction(L *lua.LState, n int, fname string) *lua.LFunction {
	f, ok := L.Get(n).(*lua.LFunction)
	if !ok {
		typeError(L, n, fname, "function")
	}
	return f
}

func tableForeach(L *lua.LState) int {
	t := checkTable(L, 1, "foreach")
	f := checkFunction(L, 2, "foreach")
	r := runOf(L)
	for k, v := r.next(t, lua.LNil); k != lua.LNil; k, v = r.next(t, k) {
		L.Push(f)
		L.Push(k)
		L.Push(v)
		L.Call(2, 1)
		if r := L.Get(-1); r != lua.LNil {
			return 1
		}
		L.Pop(1)
	}
	return 0
}

func tableForeachi(L *lua.LState) int {
	t := checkTable(L, 1, "foreachi")
	f := checkFunction(L, 2, "foreachi")
	for i := 1; i <= t.Len(); i++ {
		L.Push(f)
		L.Push(lua.LNumber(i))
		L.Push(t.RawGetInt(i))
		L.Call(2, 1)
		if r := L.Get(-1); r != lua.LNil {
			return 1
		}
		L.Pop(1)
	}
	return 0
}
