package script

import (
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockd/lockd/resp"
)

// testHeapBytes is the heap budget of the tests that exhaust it: small, for a
// shared machine.
const testHeapBytes = 32 << 20

// heapGrowth runs f while sampling the process's heap every 100µs, and
// returns how far above its level at the start the heap went.
func heapGrowth(t testing.TB, f func()) int64 {
	t.Helper()
	runtime.GC()
	sample := []metrics.Sample{{Name: heapMetric}}
	read := func() int64 {
		metrics.Read(sample)
		return int64(sample[0].Value.Uint64())
	}
	base := read()
	var peak int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Microsecond)
		defer tick.Stop()
		for {
			if g := read() - base; g > peak {
				peak = g
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	if g := read() - base; g > peak {
		peak = g
	}
	return peak
}

// TestBudgets: a script that runs, recurses or allocates without end fails
// with an error, the heap stays within a small multiple of its budget, and
// the process goes on.
func TestBudgets(t *testing.T) {
	lim := Limits{Instructions: 1_000_000, HeapBytes: testHeapBytes, MaxString: 1 << 20}
	unlimited := Limits{Instructions: 1 << 40, HeapBytes: testHeapBytes, MaxString: 1 << 20, Timeout: time.Minute} // the time limit only for a machine so loaded that the heap grows slowly
	for _, tc := range []struct {
		name string
		body string
		lim  Limits
		want string
	}{
		{"infinite loop", "while true do end", lim, "ERR Script exceeded the limit of 1000000 instructions script: "},
		{"infinite loop caught by pcall", "while true do pcall(function() while true do end end) end", lim, "ERR Script exceeded the limit of 1000000 instructions script: "},
		{"pcall around everything", "pcall(function() while true do end end) return 'survived'", lim, "ERR Script exceeded the limit of 1000000 instructions"},
		{"error handler that loops", "xpcall(function() error('x') end, function() while true do end end)", lim, "ERR Script exceeded the limit of 1000000 instructions"},
		{"loop in a coroutine", "coroutine.wrap(function() while true do end end)()", lim, "ERR Script exceeded the limit of 1000000 instructions script: "},
		{"loop in a resumed coroutine", "local co = coroutine.create(function() while true do end end) return coroutine.resume(co)", lim, "ERR Script exceeded the limit of 1000000 instructions"},
		{"loop in a metamethod", "local t = setmetatable({}, {__index = function() while true do end end}) return t.x", lim, "ERR Script exceeded the limit of 1000000 instructions script: "},
		{"loop in a sort comparator", "local t = {3, 2, 1} table.sort(t, function(a, b) while true do end end)", lim, "ERR Script exceeded the limit of 1000000 instructions script: "},
		{"loop in a gsub callback", "string.gsub('abc', '%w', function() while true do end end)", lim, "ERR Script exceeded the limit of 1000000 instructions script: "},
		{"time", "while true do end", Limits{Instructions: 1 << 40, Timeout: 50 * time.Millisecond}, "ERR Script exceeded the time limit of 50ms script: "},
		{"infinite recursion", "local function f() return 1 + f() end return f()", lim, "ERR stack overflow script: "},
		{"infinite recursion through pcall", "local function f() pcall(f) f() end f()", Limits{Instructions: 1_000_000, Timeout: 200 * time.Millisecond}, "ERR "},
		{"infinite recursion through metamethods", "local t = setmetatable({}, {}) getmetatable(t).__index = function(s, k) return s[k] end return t.x", lim, "ERR "},
		{"string doubling", "local s = 'x' while true do s = s .. s end", unlimited, "ERR user_script:1: resulting string too large script: "},
		{"long concatenation chains", "local s = string.rep('x', 2^16) while true do s = s..s..s..s..s..s..s..s..s..s..s..s..s..s..s..s end", unlimited, "ERR user_script:1: resulting string too large script: "},
		{"doubling in a metamethod", "local mt = {} mt.__concat = function(a, b) return a.s .. a.s end local s = setmetatable({s = 'x'}, mt) while true do s = setmetatable({s = s .. 'y'}, mt) end", unlimited, "ERR user_script:1: resulting string too large script: "},
		{"long strings in a table", "local t = {} local s = string.rep('x', 2^19) local i = 0 while true do i = i + 1 t[i] = s .. i end", unlimited, "ERR Script exceeded the memory limit of 33554432 bytes script: "},
		{"long strings from string.rep", "local t = {} local i = 0 while true do i = i + 1 t[i] = string.rep('x', 2^19) end", unlimited, "ERR Script exceeded the memory limit of 33554432 bytes script: "},
		{"table growth", "local t = {} local i = 0 while true do i = i + 1 t[i] = i end", unlimited, "ERR Script exceeded the memory limit of 33554432 bytes script: "},
		{"table of strings", "local t = {} local i = 0 while true do i = i + 1 t[i] = 'value' .. i end", unlimited, "ERR Script exceeded the memory limit of 33554432 bytes script: "},
		{"one far index", "local t = {} t[2^31] = 1 t[2^25] = 1 t[4194305] = 1 return #t", unlimited, ""},
		{"string.rep of 2^31", "return string.rep('x', 2^31)", lim, "ERR user_script:1: resulting string too large script: "},
		{"string.rep just past MaxString", "return string.rep('xy', 2^19 + 1)", lim, "ERR user_script:1: resulting string too large script: "},
		{"gsub that grows", "return string.gsub(string.rep('x', 2^16), 'x', string.rep('y', 2^10))", lim, "ERR user_script:1: resulting string too large script: "},
		{"table.concat past MaxString", "local t = {} for i = 1, 2048 do t[i] = string.rep('z', 1024) end return table.concat(t, ',')", lim, "ERR user_script:1: resulting string too large script: "},
		{"format past MaxString", "local s = string.rep('q', 2^19) return string.format('%s%s%s', s, s, s)", lim, "ERR user_script:1: resulting string too large script: "},
		{"format width", "return string.format('%0999999d', 1)", lim, "ERR user_script:1: invalid format (width or precision too long) script: "},
		{"unpack of a huge range", "return unpack({}, 1, 2^40)", lim, "ERR user_script:1: too many results to unpack script: "},
		{"string.byte of a long string", "return string.byte(string.rep('x', 10000), 1, -1)", lim, "ERR user_script:1: string slice too long script: "},
		{"backtracking pattern", "return string.find(string.rep('a', 3000), string.rep('a*', 12) .. 'b')", lim, "ERR Script exceeded the limit of 1000000 instructions script: "},
		{"deeply recursive pattern", "return string.find(string.rep('a', 500), string.rep('a?', 500))", lim, "ERR user_script:1: pattern too complex script: "},
		{"huge table.insert shift", "local t = {} table.insert(t, -2^40, 'x')", lim, "ERR Script exceeded the limit of 1000000 instructions script: "},
		{"a huge reply", "local t = {} for i = 1, 400000 do t[i] = i end return t", lim, "ERR Script exceeded the limit of 1000000 instructions"},
		{"coroutines without end", "local all = {} while true do local co = coroutine.create(function() coroutine.yield() end) coroutine.resume(co) all[#all + 1] = co end", Limits{Instructions: 1 << 40, HeapBytes: testHeapBytes}, "ERR Script exceeded the memory limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v resp.Value
			growth := heapGrowth(t, func() { v = evalWithin(t, nil, tc.body, nil, nil, tc.lim) })
			if tc.want == "" {
				if v.IsError() {
					t.Errorf("got %v", v)
				}
			} else if !isError(v, tc.want) {
				t.Errorf("got %v, want %q...", v, tc.want)
			}
			if growth > 3*testHeapBytes+(8<<20) {
				t.Errorf("the heap grew by %d MiB (budget %d MiB)", growth>>20, testHeapBytes>>20)
			}
			t.Logf("heap grew by %.1f MiB: %v", float64(growth)/(1<<20), v)
		})
	}
}

// TestSyntaxNesting: a script nested deeper than the compiler can take is
// refused at compile time, with Lua's words.
func TestSyntaxNesting(t *testing.T) {
	for _, body := range []string{
		"return " + strings.Repeat("'x' .. ", 300) + "'y'",
		"return " + strings.Repeat("{", 300) + strings.Repeat("}", 300),
		"return " + strings.Repeat("f(", 300) + strings.Repeat(")", 300),
		"local x = 0 " + strings.Repeat("if x then ", 300) + strings.Repeat("end ", 300),
		"return 1" + strings.Repeat(" + 1", 100000),
	} {
		err := Compile(body)
		if err == nil || !strings.HasPrefix(err.Error(), "ERR Error compiling script (new function): user_script:1: chunk has too many syntax levels") {
			t.Errorf("%.40s...: %v", body, err)
		}
	}
	if err := Compile("return " + strings.Repeat("(", 100000) + "1" + strings.Repeat(")", 100000)); err != nil { // parentheses do not nest the tree
		t.Errorf("parentheses: %v", err)
	}
	if err := Compile("return " + strings.Repeat("{", 150) + strings.Repeat("}", 150)); err != nil {
		t.Errorf("150 levels: %v", err)
	}
}

// TestConcatenations: concatenation chains compile to calls of strConcat, no
// concatenation instruction is left, and they still give what Lua gives,
// metamethods and errors included.
func TestConcatenations(t *testing.T) {
	for body, want := range map[string]string{
		"return 'a' .. 'b' .. 'c' .. 'd'":                                     "abcd",
		"return ('a' .. 'b') .. ('c' .. 'd')":                                 "abcd",
		"local x = 'q' return 'a' .. (x and 'c' .. 'd') .. 'e'":               "acde",
		"return 'a' .. (false or 'c' .. 'd')":                                 "acd",
		"return 1 .. 2 .. 3":                                                  "123",
		"local t = {'x', 'y'} return t[1] .. '-' .. t[2] .. '-' .. #t":        "x-y-2",
		"local function f() return 'f' end return f() .. f() .. (f() .. f())": "ffff",
		"return 'n' .. ('a' .. 'b' == 'ab' and 'yes' .. '!' or 'no')":         "nyes!",
		"return " + strings.Repeat("'x' .. ", 150) + "'y'":                    strings.Repeat("x", 150) + "y",
		"local m = setmetatable({}, {__concat = function(a, b) return (type(a) == 'table' and 'M' or a) .. (type(b) == 'table' and 'M' or b) end}) return 'a' .. 'b' .. m .. 'c' .. 'd'": "abMcd",
		"local m = setmetatable({}, {__concat = function(a, b) return 'M' end}) return m .. 'c' .. 'd'":                                                                                  "M",
		"local s = 'x' for i = 1, 19 do s = s .. s end return #s == 2^19 and 'ok' or 'no'":                                                                                               "ok",
		"local function f() return 'a', 'b' end return f() .. f()":                                                                                                                       "aa",
		"local x = 'v' local function g() return function() return x .. x end end return g()()":                                                                                          "vv",
		"local (concat) = 1": "",
	} {
		if body == "local (concat) = 1" {
			if err := Compile(body); err == nil {
				t.Errorf("the hidden name is spelled by a script")
			}
			continue
		}
		if v := eval(t, nil, body, nil, nil); v.Kind != resp.Bulk || v.Str != want {
			t.Errorf("%.60s: got %v, want %q", body, v, want)
		}
	}
	p, err := compile("local a, b, c = 'a', 'b', 'c' return a .. b .. c .. (function() return a .. b .. c end)()")
	if err != nil || hasConcat(p) {
		t.Fatalf("compiled %v, %v", p, err)
	}
}

// TestHeapOvershoot measures how far past HeapBytes a loop that keeps 8 MiB
// strings gets with the default limits. It allocates about a gigabyte: -short skips it.
func TestHeapOvershoot(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates about 1 GiB")
	}
	var v resp.Value
	growth := heapGrowth(t, func() {
		v = evalWithin(t, nil, "local t = {} local s = string.rep('x', 2^23) local i = 0 while true do i = i + 1 t[i] = s .. i end", nil, nil, Limits{Instructions: 1 << 40})
	})
	if !isError(v, "ERR Script exceeded the memory limit of 268435456 bytes") {
		t.Fatalf("got %v", v)
	}
	if growth > 3*DefaultHeapBytes {
		t.Errorf("the heap grew by %d MiB", growth>>20)
	}
	t.Logf("with the default budget of %d MiB, a loop keeping 8 MiB strings stopped after the heap grew by %d MiB", DefaultHeapBytes>>20, growth>>20)
}
