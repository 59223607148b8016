package script

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockd/lockd/resp"
)

// fakeRedis is a Caller backed by a map: the commands the lock libraries'
// scripts use, with Redis's replies and Redis 7's errors for a script.
// Time stands still at now (milliseconds), so that TTLs are exact.
type fakeRedis struct {
	now   int64
	vals  map[string]string
	exp   map[string]int64 // key -> expiry time in ms
	calls [][]string
}

func newFakeRedis() *fakeRedis {
	return &fakeRedis{now: 1_000_000, vals: map[string]string{}, exp: map[string]int64{}}
}

var (
	errUnknown = resp.ErrorValue("ERR Unknown Redis command called from script")
	errArity   = resp.ErrorValue("ERR Wrong number of args calling Redis command from script")
	errSyntax  = resp.ErrorValue("ERR syntax error")
	errInt     = resp.ErrorValue("ERR value is not an integer or out of range")
)

func (f *fakeRedis) Call(args []string) resp.Value {
	f.calls = append(f.calls, args)
	arity := map[string]int{"get": 2, "set": -3, "del": -2, "exists": -2, "pexpire": 3, "pttl": 2, "echo": 2, "ping": -1, "incr": 2}
	name := strings.ToLower(args[0])
	n, ok := arity[name]
	switch {
	case !ok:
		return errUnknown
	case n > 0 && len(args) != n, n < 0 && len(args) < -n:
		return errArity
	}
	switch name {
	case "get":
		if v, ok := f.vals[args[1]]; ok {
			return resp.BulkValue(v)
		}
		return resp.NilValue()
	case "set":
		return f.set(args[1], args[2], args[3:])
	case "del", "exists":
		c := int64(0)
		for _, k := range args[1:] {
			if _, ok := f.vals[k]; ok {
				c++
				if name == "del" {
					delete(f.vals, k)
					delete(f.exp, k)
				}
			}
		}
		return resp.IntValue(c)
	case "pexpire":
		ms, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return errInt
		}
		if _, ok := f.vals[args[1]]; !ok {
			return resp.IntValue(0)
		}
		f.exp[args[1]] = f.now + ms
		return resp.IntValue(1)
	case "pttl":
		if _, ok := f.vals[args[1]]; !ok {
			return resp.IntValue(-2)
		}
		if e, ok := f.exp[args[1]]; ok {
			return resp.IntValue(e - f.now)
		}
		return resp.IntValue(-1)
	case "echo":
		return resp.BulkValue(args[1])
	case "incr":
		v, err := strconv.ParseInt(f.vals[args[1]], 10, 64)
		if _, ok := f.vals[args[1]]; ok && err != nil {
			return errInt
		}
		f.vals[args[1]] = strconv.FormatInt(v+1, 10)
		return resp.IntValue(v + 1)
	}
	return resp.StatusValue("PONG")
}

func (f *fakeRedis) set(key, val string, opts []string) resp.Value {
	var nx, xx bool
	ttl := int64(-1)
	for i := 0; i < len(opts); i++ {
		switch strings.ToUpper(opts[i]) {
		case "NX":
			nx = true
		case "XX":
			xx = true
		case "PX", "EX":
			if i+1 == len(opts) {
				return errSyntax
			}
			n, err := strconv.ParseInt(opts[i+1], 10, 64)
			if err != nil || n <= 0 {
				return errInt
			}
			if strings.ToUpper(opts[i]) == "EX" {
				n *= 1000
			}
			ttl = n
			i++
		default:
			return errSyntax
		}
	}
	_, exists := f.vals[key]
	if (nx && exists) || (xx && !exists) {
		return resp.NilValue()
	}
	f.vals[key] = val
	delete(f.exp, key)
	if ttl > 0 {
		f.exp[key] = f.now + ttl
	}
	return resp.OK()
}

// eval runs body with the default limits against f, failing the test if
// the run leaves a goroutine behind.
func eval(t testing.TB, f Caller, body string, keys, args []string) resp.Value {
	t.Helper()
	return evalWithin(t, f, body, keys, args, Limits{})
}

func evalWithin(t testing.TB, f Caller, body string, keys, args []string, lim Limits) resp.Value {
	t.Helper()
	if f == nil {
		f = newFakeRedis()
	}
	before := runtime.NumGoroutine()
	v := Run(body, keys, args, f, lim)
	waitGoroutines(t, before)
	return v
}

// waitGoroutines waits, for a bounded time, for the number of goroutines to
// come back to n: a goroutine that has signalled its end may not have
// exited yet.
func waitGoroutines(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines outlive the run (%d before)", runtime.NumGoroutine(), n)
		}
		runtime.Gosched()
	}
}

// isError reports whether v is an error whose text starts with prefix and
// contains each of parts.
func isError(v resp.Value, prefix string, parts ...string) bool {
	if v.Kind != resp.Error || !strings.HasPrefix(v.Str, prefix) {
		return false
	}
	for _, p := range parts {
		if !strings.Contains(v.Str, p) {
			return false
		}
	}
	return true
}
