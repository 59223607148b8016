package script

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lockd/lockd/resp"
)

// TestCompileErrors: a script that does not compile is refused, by Compile
// and by Run, with Redis's wording.
func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		body, want string
	}{
		{"return =", "ERR Error compiling script (new function): user_script:1: syntax error near '='"},
		{"local x = 1\nif x then", "ERR Error compiling script (new function): user_script:2: syntax error near '<eof>'"},
		{"return 'unfinished", "ERR Error compiling script (new function): user_script:1: unterminated string near '<eof>'"},
		{"break", "ERR Error compiling script (new function): user_script:1: no loop to break"},
		{"#!python\nreturn 1", "ERR Unexpected engine in script shebang: #!python"},
		{"#!lua", "ERR Invalid script shebang"},
		{"#!lua flags=no-such\nreturn 1", "ERR Unexpected flag in script shebang: no-such"},
		{"#!lua option\nreturn 1", "ERR Unknown lua shebang option: option"},
		{"#!lua\nreturn =", "ERR Error compiling script (new function): user_script:2: syntax error near '='"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			err := Compile(tc.body)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Compile: %v, want %q", err, tc.want)
			}
			if v := eval(t, nil, tc.body, nil, nil); !reflect.DeepEqual(v, resp.ErrorValue(tc.want)) {
				t.Errorf("Run: %v", v)
			}
		})
	}
	if err := Compile(redisPyRelease); err != nil {
		t.Fatal(err)
	}
}

// TestRuntimeErrors: an error the script does not catch is the reply, with
// the SHA and the line, as Redis 7 words it.
func TestRuntimeErrors(t *testing.T) {
	for _, tc := range []struct {
		body, want string
	}{
		{"error('boom')", "ERR user_script:1: boom"},
		{"\n\nerror('boom', 0)", "ERR boom"},
		{"local function f() error('deep', 2) end f()", "ERR user_script:1: deep"},
		{"error({err = 'MYERR custom'})", "MYERR custom"},
		{"error(42)", "ERR user_script:1: 42"},
		{"error()", "ERR nil"},
		{"error({})", "ERR Error running script: the error object is a table without an err field"},
		{"return nil + 1", "ERR user_script:1: cannot perform add operation between nil and number"},
		{"local t = nil\nreturn t.x", "ERR user_script:2: attempt to index a non-table object(nil) with key 'x'"},
		{"assert(false)", "ERR user_script:1: assertion failed!"},
		{"assert(nil, 'said so')", "ERR user_script:1: said so"},
		{"return string.rep()", "ERR user_script:1: bad argument #1 to 'rep' (string expected, got no value)"},
		{"return ('x'):rep('y')", "ERR user_script:1: bad argument #2 to 'rep' (number expected, got string)"},
		{"\nredis.call('set', 'k', 'v', 'ex')", "ERR syntax error"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			v := eval(t, nil, tc.body, nil, nil)
			line := strings.Count(tc.body, "\n") + 1
			suffix := " script: " + SHA1Hex(tc.body) + ", on @user_script:" + itoa(line) + "."
			if !reflect.DeepEqual(v, resp.ErrorValue(tc.want+suffix)) {
				t.Errorf("got %v, want %q", v, tc.want+suffix)
			}
		})
	}
}

func itoa(n int) string {
	return strings.TrimSpace(resp.IntValue(int64(n)).String()[len("(integer)"):])
}

// TestCompiledOnce: a script is compiled once and then served from the
// cache, which stays within its bounds.
func TestCompiledOnce(t *testing.T) {
	body := fmt.Sprintf("return 'cached %s %d'", t.Name(), time.Now().UnixNano()) // new to the process's cache under -count too
	sha := SHA1Hex(body)
	if protos.get(sha) != nil {
		t.Fatal("cached before its first run")
	}
	eval(t, nil, body, nil, nil)
	p := protos.get(sha)
	if p == nil {
		t.Fatal("not cached after a run")
	}
	eval(t, nil, body, nil, nil)
	if protos.get(sha) != p {
		t.Fatal("compiled again")
	}

	c := newProtoCache(3, 100)
	for i, size := range []int{10, 10, 10, 10} {
		c.put(string(rune('a'+i)), p, size)
	}
	if c.get("a") != nil || c.get("d") == nil || c.order.Len() != 3 {
		t.Fatalf("the least recently used is not the one evicted: %d entries", c.order.Len())
	}
	c.put("big", p, 101)
	if c.get("big") != nil {
		t.Fatal("a body larger than the cache was kept")
	}
	c.put("e", p, 90)
	if c.bytes > 100 || c.get("e") == nil {
		t.Fatalf("%d bytes cached", c.bytes)
	}
}
