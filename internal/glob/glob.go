// Package glob is Redis's glob-style patterns (KEYS, SCAN MATCH, ACL key
// patterns), with the semantics of its stringmatchlen (src/util.c), byte for byte:
//
//   - any run of bytes, also none
//     ?       any one byte
//     [abc]   one of the bytes listed; [^abc] one byte not listed ('!' is
//     an ordinary byte); [a-z] a range, either way round ([z-a] too;
//     bytes compared as signed, as Redis on x86-64); \x inside
//     brackets is x; an unclosed bracket ends the pattern
//     \x      x itself
//
// Its guards against abusive patterns are kept too: a run of '*' counts as
// one; once the rest of a pattern after a '*' matches nowhere in the rest
// of the name, no earlier '*' tries a longer run; more than 1000 nested
// '*' match nothing. A match so takes O(len(pattern) × len(name)) steps.
package glob

// Match reports whether name matches pattern.
func Match(pattern, name string) bool {
	ok, _ := MatchSteps(pattern, name)
	return ok
}

// MatchSteps is Match that also returns the number of steps taken:
// the bytes of the pattern and the name looked at, in all.
func MatchSteps(pattern, name string) (bool, int) {
	g := glob{pattern: pattern, name: name}
	return g.match(0, 0, 0), g.steps
}

// glob is one match in progress, on the goroutine that called Match.
type glob struct {
	pattern, name string
	skipLonger    bool // no '*' needs to try a longer run (see match)
	steps         int
}

// at is pattern[i], or 0 past its end (C's terminating NUL, which Redis's
// code reads there).
func (g *glob) at(i int) byte {
	if i < len(g.pattern) {
		return g.pattern[i]
	}
	return 0
}

// match reports whether name[s:] matches pattern[p:]; nesting is the
// number of '*' that led here.
func (g *glob) match(p, s, nesting int) bool {
	if nesting > 1000 {
		return false
	}
	for p < len(g.pattern) && s < len(g.name) {
		g.steps++
		switch g.pattern[p] {
		case '*':
			for p < len(g.pattern) && g.at(p+1) == '*' {
				p++
			}
			if p == len(g.pattern)-1 {
				return true
			}
			for ; s < len(g.name); s++ {
				g.steps++
				if g.match(p+1, s, nesting+1) {
					return true
				}
				if g.skipLonger {
					return false
				}
			}
			// The rest of the pattern matches nowhere in the rest of the
			// name: a longer run for an earlier '*' cannot help either.
			g.skipLonger = true
			return false
		case '?':
			s++
		case '[':
			var ok bool
			if p, ok = g.class(p+1, g.name[s]); !ok {
				return false
			}
			s++
		case '\\':
			if len(g.pattern)-p >= 2 {
				p++
			}
			fallthrough
		default:
			if g.pattern[p] != g.name[s] {
				return false
			}
			s++
		}
		p++
		if s == len(g.name) {
			for g.at(p) == '*' {
				p++
			}
			break
		}
	}
	return p >= len(g.pattern) && s == len(g.name)
}

// class matches c against the bracket expression that starts at pattern[p]
// (after its '['), and returns whether it matched and the position of the
// expression's last byte: its ']', or the pattern's last byte when it is
// not closed.
func (g *glob) class(p int, c byte) (int, bool) {
	not := g.at(p) == '^'
	if not {
		p++
	}
	match := false
	for {
		g.steps++
		left := len(g.pattern) - p
		switch {
		case g.at(p) == '\\' && left >= 2:
			p++
			if g.pattern[p] == c {
				match = true
			}
		case g.at(p) == ']':
			return p, match != not
		case left <= 0:
			return p - 1, match != not
		case left >= 3 && g.pattern[p+1] == '-':
			// Redis compares C chars, signed on x86-64: bytes from 0x80
			// sort before 0x00 in a range.
			lo, hi, b := int8(g.pattern[p]), int8(g.pattern[p+2]), int8(c)
			if lo > hi {
				lo, hi = hi, lo
			}
			p += 2
			if lo <= b && b <= hi {
				match = true
			}
		default:
			if g.pattern[p] == c {
				match = true
			}
		}
		p++
	}
}
