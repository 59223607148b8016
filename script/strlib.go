package script

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// stringFuncs is Lua 5.1's string library (with string.gfind, as Redis's Lua
// is built; without string.dump, which gopher-lua cannot do). No function
// builds a string longer than Limits.MaxString: past it, the error
// "resulting string too large".
func stringFuncs() map[string]lua.LGFunction {
	return map[string]lua.LGFunction{
		"byte":    strByte,
		"char":    strChar,
		"find":    func(L *lua.LState) int { return strFind(L, true) },
		"format":  strFormat,
		"gfind":   strGmatch,
		"gmatch":  strGmatch,
		"gsub":    strGsub,
		"len":     func(L *lua.LState) int { L.Push(lua.LNumber(len(checkString(L, 1, "len")))); return 1 },
		"lower":   func(L *lua.LState) int { return strMap(L, "lower", lower) },
		"match":   func(L *lua.LState) int { return strFind(L, false) },
		"rep":     strRep,
		"reverse": strReverse,
		"sub":     strSub,
		"upper":   func(L *lua.LState) int { return strMap(L, "upper", upper) },
	}
}

// relative turns a position that counts from the end when negative into one
// that counts from the start (0 for before the start), as posrelat does.
func relative(pos int64, n int) int64 {
	if pos < 0 {
		pos += int64(n) + 1
	}
	return max(pos, 0)
}

// checkSize raises the error for a string longer than the run allows, and
// before building a long one, the memory limit's error if the heap is already
// past the budget.
func checkSize(L *lua.LState, n int64) {
	r := runOf(L)
	if n > int64(r.lim.MaxString) || n < 0 {
		L.RaiseError("resulting string too large")
	}
	if n >= syncHeapCheck && r.heapOver() {
		L.RaiseError("%v", errHeap)
	}
}

// strConcat is the .. operator, which prepare rewrites every chain of
// concatenations into a call of: it joins its operands as Lua 5.1 does, from
// the right, each run of strings and numbers at once and any other operand
// through its __concat metamethod, and refuses a result longer than
// Limits.MaxString before building it.
func strConcat(L *lua.LState) int {
	n := L.GetTop()
	acc := L.Get(n)
	for i := n - 1; i >= 1; {
		lhs := L.Get(i)
		if !lua.LVCanConvToString(lhs) || !lua.LVCanConvToString(acc) {
			mm := L.GetMetaField(lhs, "__concat")
			if mm == lua.LNil {
				mm = L.GetMetaField(acc, "__concat")
			}
			if mm.Type() != lua.LTFunction {
				L.RaiseError("cannot perform concat operation between %v and %v", lhs.Type().String(), acc.Type().String())
			}
			L.Push(mm)
			L.Push(lhs)
			L.Push(acc)
			L.Call(2, 1)
			acc = L.Get(-1)
			L.Pop(1)
			i--
			continue
		}
		// The run of strings and numbers ending at acc: operands j..i and acc.
		j := i
		for j > 1 && lua.LVCanConvToString(L.Get(j-1)) {
			j--
		}
		parts := make([]string, 0, i-j+2)
		size := int64(0)
		for k := j; k <= i; k++ {
			parts = append(parts, lua.LVAsString(L.Get(k)))
			size += int64(len(parts[len(parts)-1]))
		}
		parts = append(parts, lua.LVAsString(acc))
		size += int64(len(parts[len(parts)-1]))
		checkSize(L, size)
		acc = lua.LString(strings.Join(parts, ""))
		i = j - 1
	}
	L.Push(acc)
	return 1
}

func strSub(L *lua.LState) int {
	s := checkString(L, 1, "sub")
	i := relative(checkInt(L, 2, "sub"), len(s))
	j := relative(optInt(L, 3, "sub", -1), len(s))
	i = max(i, 1)
	j = min(j, int64(len(s)))
	if i > j {
		L.Push(lua.LString(""))
	} else {
		L.Push(lua.LString(s[i-1 : j]))
	}
	return 1
}

func strByte(L *lua.LState) int {
	s := checkString(L, 1, "byte")
	i := relative(optInt(L, 2, "byte", 1), len(s))
	j := relative(optInt(L, 3, "byte", i), len(s))
	i = max(i, 1)
	j = min(j, int64(len(s)))
	if i > j {
		return 0
	}
	if j-i >= maxResults {
		L.RaiseError("string slice too long")
	}
	for k := i; k <= j; k++ {
		L.Push(lua.LNumber(s[k-1]))
	}
	return int(j - i + 1)
}

func strChar(L *lua.LState) int {
	n := L.GetTop()
	b := make([]byte, n)
	for i := range b {
		c := checkInt(L, i+1, "char")
		if c < 0 || c > 255 {
			argError(L, i+1, "char", "invalid value")
		}
		b[i] = byte(c)
	}
	L.Push(lua.LString(b))
	return 1
}

func strMap(L *lua.LState, fname string, f func(byte) byte) int {
	s := []byte(checkString(L, 1, fname))
	for i, c := range s {
		s[i] = f(c)
	}
	L.Push(lua.LString(s))
	return 1
}

func strReverse(L *lua.LState) int {
	s := []byte(checkString(L, 1, "reverse"))
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
	L.Push(lua.LString(s))
	return 1
}

func strRep(L *lua.LState) int {
	s := checkString(L, 1, "rep")
	n := checkInt(L, 2, "rep")
	if n <= 0 || s == "" {
		L.Push(lua.LString(""))
		return 1
	}
	if n > int64(runOf(L).lim.MaxString)/int64(len(s)) {
		L.RaiseError("resulting string too large")
	}
	L.Push(lua.LString(strings.Repeat(s, int(n))))
	return 1
}

// strFind is string.find (find) and string.match.
func strFind(L *lua.LState, find bool) int {
	fname := "match"
	if find {
		fname = "find"
	}
	s := checkString(L, 1, fname)
	pat := checkString(L, 2, fname)
	init := relative(optInt(L, 3, fname, 1), len(s)) - 1
	init = min(max(init, 0), int64(len(s)))
	m := newMatcher(L, s, pat)
	if find && (lua.LVAsBool(L.Get(4)) || !strings.ContainsAny(m.pat, specials)) {
		if i := strings.Index(s[init:], pat); i >= 0 {
			start := int(init) + i
			L.Push(lua.LNumber(start + 1))
			L.Push(lua.LNumber(start + len(pat)))
			return 2
		}
		L.Push(lua.LNil)
		return 1
	}
	p := 0
	anchor := m.p(0) == '^'
	if anchor {
		p = 1
	}
	for s1 := int(init); ; s1++ {
		m.reset()
		if e := m.match(s1, p); e >= 0 {
			if find {
				L.Push(lua.LNumber(s1 + 1))
				L.Push(lua.LNumber(e))
				return m.pushCaptures(-1, -1, false) + 2
			}
			return m.pushCaptures(s1, e, true)
		}
		if s1 >= len(s) || anchor {
			break
		}
	}
	L.Push(lua.LNil)
	return 1
}

func strGmatch(L *lua.LState) int {
	s := checkString(L, 1, "gmatch")
	pat := checkString(L, 2, "gmatch")
	pos := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		m := newMatcher(L, s, pat)
		for ; pos <= len(s); pos++ {
			m.reset()
			if e := m.match(pos, 0); e >= 0 {
				start := pos
				pos = e
				if e == start { // an empty match: go on at the next position
					pos++
				}
				return m.pushCaptures(start, e, true)
			}
		}
		return 0
	}))
	return 1
}

func strGsub(L *lua.LState) int {
	src := checkString(L, 1, "gsub")
	pat := checkString(L, 2, "gsub")
	repl := L.Get(3)
	switch repl.(type) {
	case lua.LNumber, lua.LString, *lua.LFunction, *lua.LTable:
	default:
		typeError(L, 3, "gsub", "string/function/table")
	}
	maxN := optInt(L, 4, "gsub", int64(len(src))+1)
	m := newMatcher(L, src, pat)
	p := 0
	anchor := m.p(0) == '^'
	if anchor {
		p = 1
	}
	var b strings.Builder
	add := func(s string) {
		checkSize(L, int64(b.Len())+int64(len(s)))
		b.WriteString(s)
	}
	s, n := 0, int64(0)
	for n < maxN {
		m.reset()
		e := m.match(s, p)
		if e >= 0 {
			n++
			add(gsubValue(L, m, repl, s, e))
		}
		if e > s {
			s = e
		} else if s < len(src) {
			add(src[s : s+1])
			s++
		} else {
			break
		}
		if anchor {
			break
		}
	}
	if s < len(src) {
		add(src[s:])
	}
	L.Push(lua.LString(b.String()))
	L.Push(lua.LNumber(n))
	return 2
}

// gsubValue is the replacement for the match from s to e.
func gsubValue(L *lua.LState, m *matcher, repl lua.LValue, s, e int) string {
	var v lua.LValue
	switch r := repl.(type) {
	case lua.LString, lua.LNumber:
		return expandReplacement(L, m, luaString(r), s, e)
	case *lua.LFunction:
		L.Push(r)
		L.Call(m.pushCaptures(s, e, true), 1)
		v = L.Get(-1)
		L.Pop(1)
	case *lua.LTable:
		v = L.GetTable(r, m.capture(0, s, e))
	}
	switch v := v.(type) {
	case lua.LString, lua.LNumber:
		return luaString(v)
	case *lua.LNilType:
		return m.src[s:e]
	case lua.LBool:
		if !v {
			return m.src[s:e]
		}
	}
	L.RaiseError("invalid replacement value (a %s)", v.Type().String())
	return ""
}

// expandReplacement expands %0-%9 and %% in a gsub replacement string.
func expandReplacement(L *lua.LState, m *matcher, news string, s, e int) string {
	if !strings.ContainsRune(news, patternEsc) {
		return news
	}
	var b strings.Builder
	for i := 0; i < len(news); i++ {
		c := news[i]
		if c != patternEsc {
			b.WriteByte(c)
			continue
		}
		i++
		var d byte // C reads the string's terminating NUL after a final %
		if i < len(news) {
			d = news[i]
		}
		switch {
		case d < '0' || d > '9':
			b.WriteByte(d)
		case d == '0':
			b.WriteString(m.src[s:e])
		default:
			b.WriteString(luaString(m.capture(int(d-'1'), s, e)))
		}
		checkSize(L, int64(b.Len()))
	}
	return b.String()
}
