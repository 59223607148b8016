package script

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Lua 5.1's pattern matching (lstrlib.c), in Go, with two additions: every
// step spends the run's budget, so that a pattern that backtracks
// exponentially ends with the run, and recursion is bounded by
// maxMatchDepth, as Lua 5.2 bounds it ("pattern too complex").

const (
	maxCaptures   = 32 // LUA_MAXCAPTURES
	maxMatchDepth = 200
	capUnfinished = -1
	capPosition   = -2
	patternEsc    = '%'
	specials      = "^$*+?.([%-"
)

// matcher is a MatchState: the subject, the pattern and the captures of
// one match attempt.
type matcher struct {
	L     *lua.LState
	src   string
	pat   string // up to its first NUL, where C stops reading it
	level int    // captures open or closed so far
	depth int    // recursion depth of match
	caps  [maxCaptures]struct{ init, len int }
}

func newMatcher(L *lua.LState, src, pat string) *matcher {
	if i := strings.IndexByte(pat, 0); i >= 0 {
		pat = pat[:i]
	}
	return &matcher{L: L, src: src, pat: pat}
}

// p returns the pattern byte at i, or 0 past its end, as C reads it.
func (m *matcher) p(i int) byte {
	if i < len(m.pat) {
		return m.pat[i]
	}
	return 0
}

// s returns the subject byte at i, or 0 past its end.
func (m *matcher) s(i int) byte {
	if i < len(m.src) {
		return m.src[i]
	}
	return 0
}

func (m *matcher) classEnd(p int) int {
	c := m.p(p)
	p++
	switch c {
	case patternEsc:
		if p >= len(m.pat) {
			m.L.RaiseError("malformed pattern (ends with '%%')")
		}
		return p + 1
	case '[':
		if m.p(p) == '^' {
			p++
		}
		for {
			if p >= len(m.pat) {
				m.L.RaiseError("malformed pattern (missing ']')")
			}
			c := m.p(p)
			p++
			if c == patternEsc && p < len(m.pat) {
				p++
			}
			if m.p(p) == ']' {
				return p + 1
			}
		}
	}
	return p
}

func matchClass(c, cl byte) bool {
	var res bool
	switch lower(cl) {
	case 'a':
		res = isAlpha(c)
	case 'c':
		res = c < 32 || c == 127
	case 'd':
		res = '0' <= c && c <= '9'
	case 'l':
		res = 'a' <= c && c <= 'z'
	case 'p':
		res = isPunct(c)
	case 's':
		res = c == ' ' || ('\t' <= c && c <= '\r')
	case 'u':
		res = 'A' <= c && c <= 'Z'
	case 'w':
		res = isAlpha(c) || ('0' <= c && c <= '9')
	case 'x':
		res = ('0' <= c && c <= '9') || ('a' <= lower(c) && lower(c) <= 'f')
	case 'z':
		res = c == 0
	default:
		return cl == c
	}
	if 'a' <= cl && cl <= 'z' {
		return res
	}
	return !res
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

func isAlpha(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }
func isPunct(c byte) bool { return c > 32 && c < 127 && !isAlpha(c) && !('0' <= c && c <= '9') }

// matchBracketClass matches c against the class [...] from p to ec (the
// closing bracket).
func (m *matcher) matchBracketClass(c byte, p, ec int) bool {
	sig := true
	if m.p(p+1) == '^' {
		sig = false
		p++
	}
	for p++; p < ec; p++ {
		switch {
		case m.p(p) == patternEsc:
			p++
			if matchClass(c, m.p(p)) {
				return sig
			}
		case m.p(p+1) == '-' && p+2 < ec:
			p += 2
			if m.p(p-2) <= c && c <= m.p(p) {
				return sig
			}
		case m.p(p) == c:
			return sig
		}
	}
	return !sig
}

func (m *matcher) singleMatch(c byte, p, ep int) bool {
	switch m.p(p) {
	case '.':
		return true
	case patternEsc:
		return matchClass(c, m.p(p+1))
	case '[':
		return m.matchBracketClass(c, p, ep-1)
	}
	return m.p(p) == c
}

// match matches the pattern from p against the subject from s and returns
// where the match ends in the subject, or -1.
func (m *matcher) match(s, p int) int {
	step(m.L, 1)
	if m.depth++; m.depth > maxMatchDepth {
		m.L.RaiseError("pattern too complex")
	}
	defer func() { m.depth-- }()
	for {
		switch m.p(p) {
		case '(':
			if m.p(p+1) == ')' {
				return m.startCapture(s, p+2, capPosition)
			}
			return m.startCapture(s, p+1, capUnfinished)
		case ')':
			return m.endCapture(s, p+1)
		case 0:
			if p >= len(m.pat) {
				return s
			}
		case patternEsc:
			switch next := m.p(p + 1); {
			case next == 'b':
				if s = m.matchBalance(s, p+2); s < 0 {
					return -1
				}
				p += 4
				continue
			case next == 'f':
				p += 2
				if m.p(p) != '[' {
					m.L.RaiseError("missing '[' after '%%f' in pattern")
				}
				ep := m.classEnd(p)
				var prev byte
				if s > 0 {
					prev = m.src[s-1]
				}
				if m.matchBracketClass(prev, p, ep-1) || !m.matchBracketClass(m.s(s), p, ep-1) {
					return -1
				}
				p = ep
				continue
			case '0' <= next && next <= '9':
				if s = m.matchCapture(s, next); s < 0 {
					return -1
				}
				p += 2
				continue
			}
		case '$':
			if p+1 == len(m.pat) {
				if s == len(m.src) {
					return s
				}
				return -1
			}
		}
		// a single character class, and what repeats it
		ep := m.classEnd(p)
		ok := s < len(m.src) && m.singleMatch(m.src[s], p, ep)
		switch m.p(ep) {
		case '?':
			if ok {
				if res := m.match(s+1, ep+1); res >= 0 {
					return res
				}
			}
			p = ep + 1
			continue
		case '*':
			return m.maxExpand(s, p, ep)
		case '+':
			if !ok {
				return -1
			}
			return m.maxExpand(s+1, p, ep)
		case '-':
			return m.minExpand(s, p, ep)
		}
		if !ok {
			return -1
		}
		s, p = s+1, ep
	}
}

func (m *matcher) maxExpand(s, p, ep int) int {
	i := 0
	for s+i < len(m.src) && m.singleMatch(m.src[s+i], p, ep) {
		step(m.L, 1)
		i++
	}
	for ; i >= 0; i-- {
		if res := m.match(s+i, ep+1); res >= 0 {
			return res
		}
	}
	return -1
}

func (m *matcher) minExpand(s, p, ep int) int {
	for {
		if res := m.match(s, ep+1); res >= 0 {
			return res
		}
		if s < len(m.src) && m.singleMatch(m.src[s], p, ep) {
			s++
		} else {
			return -1
		}
	}
}

func (m *matcher) startCapture(s, p, what int) int {
	if m.level >= maxCaptures {
		m.L.RaiseError("too many captures")
	}
	m.caps[m.level].init, m.caps[m.level].len = s, what
	m.level++
	res := m.match(s, p)
	if res < 0 {
		m.level--
	}
	return res
}

func (m *matcher) endCapture(s, p int) int {
	l := m.captureToClose()
	m.caps[l].len = s - m.caps[l].init
	res := m.match(s, p)
	if res < 0 {
		m.caps[l].len = capUnfinished
	}
	return res
}

func (m *matcher) captureToClose() int {
	for l := m.level - 1; l >= 0; l-- {
		if m.caps[l].len == capUnfinished {
			return l
		}
	}
	m.L.RaiseError("invalid pattern capture")
	return 0
}

func (m *matcher) matchBalance(s, p int) int {
	if p+1 >= len(m.pat) {
		m.L.RaiseError("unbalanced pattern")
	}
	b, e := m.p(p), m.p(p+1)
	if m.s(s) != b {
		return -1
	}
	cont := 1
	for s++; s < len(m.src); s++ {
		step(m.L, 1)
		switch m.src[s] {
		case e:
			if cont--; cont == 0 {
				return s + 1
			}
		case b:
			cont++
		}
	}
	return -1
}

func (m *matcher) matchCapture(s int, c byte) int {
	l := m.checkCapture(c)
	n := m.caps[l].len
	if len(m.src)-s >= n && m.src[s:s+n] == m.src[m.caps[l].init:m.caps[l].init+n] {
		return s + n
	}
	return -1
}

func (m *matcher) checkCapture(c byte) int {
	l := int(c) - '1'
	if l < 0 || l >= m.level || m.caps[l].len == capUnfinished {
		m.L.RaiseError("invalid capture index")
	}
	return l
}

// capture returns capture i of the match from s to e: the whole match if
// the pattern has no captures and i is 0.
func (m *matcher) capture(i, s, e int) lua.LValue {
	if i >= m.level {
		if i != 0 {
			m.L.RaiseError("invalid capture index")
		}
		return lua.LString(m.src[s:e])
	}
	c := m.caps[i]
	switch c.len {
	case capUnfinished:
		m.L.RaiseError("unfinished capture")
	case capPosition:
		return lua.LNumber(c.init + 1)
	}
	return lua.LString(m.src[c.init : c.init+c.len])
}

// pushCaptures pushes the captures of the match from s to e (the whole
// match if there are none; nothing for string.find, which passes whole
// false) and returns how many.
func (m *matcher) pushCaptures(s, e int, whole bool) int {
	n := m.level
	if n == 0 && whole {
		n = 1
	}
	for i := range n {
		m.L.Push(m.capture(i, s, e))
	}
	return n
}

// reset prepares the matcher for an attempt at another position.
func (m *matcher) reset() {
	m.level, m.depth = 0, 0
}
