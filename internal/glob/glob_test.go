package glob

import (
	"strings"
	"testing"
)

// Redis's patterns, from its docs and its tests (tests/unit/keyspace.tcl),
// and the edges of its stringmatchlen.
func TestGlobMatchesAsRedis(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		// KEYS's documentation.
		{"h?llo", "hello", true}, {"h?llo", "hallo", true}, {"h?llo", "hllo", false},
		{"h*llo", "hllo", true}, {"h*llo", "heeeello", true},
		{"h[ae]llo", "hello", true}, {"h[ae]llo", "hallo", true}, {"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true}, {"h[^e]llo", "hbllo", true}, {"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hallo", true}, {"h[a-b]llo", "hbllo", true}, {"h[a-b]llo", "hcllo", false},
		// keyspace.tcl: KEYS with pattern, with hashtag.
		{"foo*", "foo_a", true}, {"foo*", "key_x", false}, {"*", "key_x", true},
		{"{a}*", "{a}x", true}, {"{a}*", "{b}a", false}, {"*{b}*", "{b}c", true}, {"*{b}*", "{a}x", false},
		// scan.tcl: SCAN MATCH key:1??
		{"key:1??", "key:123", true}, {"key:1??", "key:12", false}, {"key:1??", "key:1234", false}, {"key:1??", "key:223", false},
		// Escapes: \x is x, inside brackets too; a trailing \ is itself.
		{`h\*llo`, "h*llo", true}, {`h\*llo`, "hello", false}, {`\?`, "?", true}, {`\?`, "a", false},
		{`[\]]`, "]", true}, {`[\-]`, "-", true}, {`a\`, `a\`, true},
		// '!' is not a negation in Redis; ranges go either way; [a-] is a range to ']'.
		{"[!a]", "b", false}, {"[!a]", "!", true}, {"[z-a]", "m", true}, {"[a-]", "]", true}, {"[a-]", "-", false},
		// An unclosed bracket ends the pattern; "[^" alone is any byte.
		{"[abc", "b", true}, {"[abc", "d", false}, {"x[^", "xq", true},
		// A run of '*' is one; '*' at the end takes the rest; '*' is not an empty name.
		{"a**b", "axxb", true}, {"a*", "a", true}, {"*", "", false}, {"", "", true}, {"**", "abc", true},
		{"*a*b*c*", "xaybzc", true}, {"*a*b*c*", "xaybz", false},
		// Case is significant.
		{"Foo", "foo", false},
		// Regressions for long nested loops: no match, and quickly.
		{"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 40), false},
		{strings.Repeat("*?", 50000), strings.Repeat("a", 50000), false}, // more than 1000 nested '*'
		{strings.Repeat("*?", 500), strings.Repeat("a", 1000), true},
	} {
		got, steps := MatchSteps(tc.pattern, tc.name)
		if got != tc.want {
			t.Errorf("%.40q matching %.40q: %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
		if bound := stepBound(tc.pattern, tc.name); steps > bound {
			t.Errorf("%.40q matching %.40q: %d steps, more than %d", tc.pattern, tc.name, steps, bound)
		}
	}
}

// stepBound is the work a match may take: a small multiple of the product
// of the lengths.
func stepBound(pattern, name string) int { return 2 * (len(pattern) + 2) * (len(name) + 2) }

// FuzzGlob: a match never panics, takes at most stepBound steps, and for
// short inputs agrees with a plain backtracking matcher of the same
// semantics, which tries every way a '*' can match (the guards against
// abusive patterns change no answer).
func FuzzGlob(f *testing.F) {
	for _, s := range [][2]string{
		{"h?llo", "hello"}, {"h[^e]llo", "hallo"}, {`[\]]`, "]"}, {"[a-]", "]"}, {"*a*b*c*", "xaybzc"},
		{"a*a*a*b", "aaaaaaaa"}, {"[abc", "b"}, {`a\`, `a\`}, {"x[^", "xq"}, {"*?*?", "ab"}, {"[\x80-a]", "\x00"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got, steps := MatchSteps(pattern, name)
		if bound := stepBound(pattern, name); steps > bound {
			t.Fatalf("%q matching %q: %d steps, more than %d", pattern, name, steps, bound)
		}
		if len(pattern) <= 12 && len(name) <= 12 {
			g := glob{pattern: pattern, name: name}
			if want := g.backtrack(0, 0); got != want {
				t.Fatalf("%q matching %q: %v; backtracking says %v", pattern, name, got, want)
			}
		}
	})
}

// backtrack is the reference matcher: name[s:] against pattern[p:], a
// non-empty name as Redis matches it.
func (g *glob) backtrack(p, s int) bool {
	switch {
	case s == 0 && len(g.name) == 0:
		return len(g.pattern) == 0
	case s == len(g.name): // only '*' may be left
		return strings.Trim(g.pattern[p:], "*") == ""
	case p == len(g.pattern):
		return false
	}
	switch g.pattern[p] {
	case '*':
		return g.backtrack(p+1, s) || g.backtrack(p, s+1)
	case '?':
		return g.backtrack(p+1, s+1)
	case '[':
		end, ok := g.class(p+1, g.name[s])
		return ok && g.backtrack(end+1, s+1)
	case '\\':
		if len(g.pattern)-p >= 2 {
			p++
		}
	}
	return g.pattern[p] == g.name[s] && g.backtrack(p+1, s+1)
}
