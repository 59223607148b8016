package server

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lockd/lockd/internal/glob"
)

// setKeys sets the names in one pipeline and reads the replies.
func setKeys(t testing.TB, c *rawConn, names []string) {
	t.Helper()
	var b strings.Builder
	for _, n := range names {
		b.WriteString(encode("SET", n, "v"))
	}
	c.send(b.String())
	for range names {
		if got := c.reply(); got != okReply {
			t.Fatalf("SET: %q", got)
		}
	}
}

// scanPage sends SCAN with args and returns the next cursor and the names.
func scanPage(t testing.TB, c *rawConn, args ...string) (string, []string) {
	t.Helper()
	v, ok := c.value(append([]string{"SCAN"}, args...)...).([]any)
	if !ok || len(v) != 2 {
		t.Fatalf("SCAN %q: %#v", args, v)
	}
	cursor, ok1 := v[0].(string)
	page, ok2 := v[1].([]any)
	if !ok1 || !ok2 {
		t.Fatalf("SCAN %q: %#v", args, v)
	}
	names := make([]string, len(page))
	for i, n := range page {
		names[i] = n.(string)
	}
	return cursor, names
}

// scanAll scans from "0" to "0" with opts and returns every name returned,
// counted; between pages it calls between, when set.
func scanAll(t testing.TB, c *rawConn, between func(page int), opts ...string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	cursor := "0"
	for page := 0; ; page++ {
		if page > 100_000 {
			t.Fatal("SCAN does not end")
		}
		next, names := scanPage(t, c, append([]string{cursor}, opts...)...)
		for _, n := range names {
			seen[n]++
		}
		if next == "0" {
			return seen
		}
		if between != nil {
			between(page)
		}
		cursor = next
	}
}

func TestScan(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	var keys []string
	for i := range 2000 {
		keys = append(keys, fmt.Sprint("key:", i))
	}
	setKeys(t, c, keys)
	setKeys(t, c, []string{"other:1", "other:2"})

	t.Run("a scan returns every key exactly once", func(t *testing.T) {
		for _, opts := range [][]string{nil, {"COUNT", "1"}, {"COUNT", "100"}, {"count", "100000"}, {"TYPE", "string", "COUNT", "7"}} {
			seen := scanAll(t, c, nil, opts...)
			if len(seen) != 2002 {
				t.Fatalf("SCAN %q: %d keys, want 2002", opts, len(seen))
			}
			for n, times := range seen {
				if times != 1 {
					t.Fatalf("SCAN %q: %s %d times", opts, n, times)
				}
			}
		}
	})
	t.Run("MATCH filters the keys looked at; COUNT counts them all", func(t *testing.T) {
		seen := scanAll(t, c, nil, "MATCH", "key:1??", "COUNT", "50")
		if len(seen) != 100 {
			t.Fatalf("SCAN MATCH key:1??: %d keys, want 100", len(seen))
		}
		for n := range seen {
			if !glob.Match("key:1??", n) {
				t.Fatalf("SCAN MATCH key:1?? returned %s", n)
			}
		}
		if seen := scanAll(t, c, nil, "MATCH", "other:[^2]"); len(seen) != 1 || seen["other:1"] != 1 {
			t.Fatalf("SCAN MATCH other:[^2]: %v", seen)
		}
		_, first := scanPage(t, c, "0", "MATCH", "other:*", "COUNT", "5")
		if len(first) > 5 {
			t.Fatalf("a page of COUNT 5 returned %d keys", len(first))
		}
	})
	t.Run("TYPE of another type returns no key", func(t *testing.T) {
		if seen := scanAll(t, c, nil, "TYPE", "list", "MATCH", "*"); len(seen) != 0 {
			t.Fatalf("SCAN TYPE list: %d keys", len(seen))
		}
	})
	t.Run("keys added and removed during a scan", func(t *testing.T) {
		w := dial(t, srv)
		added := 0
		seen := scanAll(t, c, func(page int) {
			// Remove key:1500 to key:1999 and add new keys, between pages.
			for i := range 10 {
				if k := 1500 + page*10 + i; k < 2000 {
					w.expect(integer(1), "DEL", fmt.Sprint("key:", k))
				}
			}
			setKeys(t, w, []string{fmt.Sprint("new:", page)})
			added++
		}, "COUNT", "20")
		for i := range 1500 {
			if seen[fmt.Sprint("key:", i)] == 0 {
				t.Fatalf("key:%d, held throughout, was not returned", i)
			}
		}
		if added < 1500/20 {
			t.Fatalf("%d pages of COUNT 20 over 1500 keys or more", added)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"abc"}, "-ERR invalid cursor\r\n"},
			{[]string{"-1"}, "-ERR invalid cursor\r\n"},
			{[]string{"18446744073709551616"}, "-ERR invalid cursor\r\n"},
			{[]string{"0", "COUNT", "0"}, syntaxErr},
			{[]string{"0", "COUNT", "x"}, notIntErr},
			{[]string{"0", "MATCH"}, syntaxErr},
			{[]string{"0", "FOO", "x"}, syntaxErr},
			{[]string{"0", "TYPE", "blob"}, "-ERR unknown type name 'blob'\r\n"},
			{nil, arityErr("scan")},
		} {
			c.expect(tc.want, append([]string{"SCAN"}, tc.args...)...)
		}
		c.expect(arityErr("keys"), "KEYS")
	})
	t.Run("a cursor past the last key ends the scan", func(t *testing.T) {
		if next, _ := scanPage(t, c, strconv.FormatUint(1<<64-1, 10)); next != "0" {
			t.Fatalf("SCAN from the last cursor: next %s", next)
		}
	})
}

func TestKeys(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	setKeys(t, c, []string{"key_x", "key_y", "key_z", "foo_a", "foo_b", "foo_c", "{a}x", "{a}y", "{b}a"})
	for _, tc := range []struct {
		pattern string
		want    []string
	}{
		{"foo*", []string{"foo_a", "foo_b", "foo_c"}},
		{"*", []string{"foo_a", "foo_b", "foo_c", "key_x", "key_y", "key_z", "{a}x", "{a}y", "{b}a"}},
		{"{a}*", []string{"{a}x", "{a}y"}},
		{"*{b}*", []string{"{b}a"}},
		{"key_[xz]", []string{"key_x", "key_z"}},
		{"nothing*", nil},
	} {
		v, ok := c.value("KEYS", tc.pattern).([]any)
		if !ok {
			t.Fatalf("KEYS %s: %#v", tc.pattern, v)
		}
		var got []string
		for _, n := range v {
			got = append(got, n.(string))
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("KEYS %s: %q, want %q", tc.pattern, got, tc.want)
		}
	}
}
