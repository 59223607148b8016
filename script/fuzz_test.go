package script

import (
	"runtime"
	"testing"
	"time"

	"github.com/lockd/lockd/resp"
)

// FuzzRun feeds arbitrary scripts and arguments to Run: it must never
// panic, always answer, leave no goroutine behind and stay within its
// budgets (the time budget with a margin for the watchdog's period and a
// loaded machine).
func FuzzRun(f *testing.F) {
	for _, body := range []string{
		redisPyRelease, redisPyExtend, redsyncTouchWithSetNX, redlockAcquire, redlockRelease,
		"return redis.call('set', KEYS[1], ARGV[1], 'PX', 100)",
		"local s = ARGV[1] while true do s = s .. s end",
		"return string.gsub(ARGV[1], '(%w+)', '%1%1')",
		"return string.format('%5.2f %q', tonumber(ARGV[1]) or 0, KEYS[1])",
		"local t = {} for i = 1, 100 do t[i] = {i, tostring(i)} end return t",
		"return {ok = ARGV[1]}",
		"return pcall(error, {err = ARGV[1]})",
		"return string.rep(ARGV[1], 1e6)",
		"while true do end",
		"return coroutine.wrap(function() return KEYS[1] end)()",
	} {
		f.Add(body, "key", "arg")
	}
	lim := Limits{Instructions: 200_000, Timeout: 2 * time.Second, HeapBytes: 64 << 20, MaxString: 1 << 20}
	f.Fuzz(func(t *testing.T, body, key, arg string) {
		before := runtime.NumGoroutine()
		start := time.Now()
		v := Run(body, []string{key}, []string{arg}, newFakeRedis(), lim)
		if elapsed := time.Since(start); elapsed > lim.Timeout+3*time.Second {
			t.Fatalf("ran %v: %v", elapsed, v)
		}
		if v.Kind > resp.Array {
			t.Fatalf("not a reply: %#v", v)
		}
		if err := Compile(body); err != nil && (v.Kind != resp.Error || v.Str != err.Error()) || err == nil && isError(v, "ERR Error compiling script") {
			t.Fatalf("Compile says %v, Run says %v", err, v)
		}
		waitGoroutines(t, before)
	})
}
