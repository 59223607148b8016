package script

import (
	"reflect"
	"testing"

	"github.com/lockd/lockd/resp"
)

// The scripts of the lock libraries lockd stands in for, verbatim.

// redis-py 4.3.4, redis/lock.py (MIT licence).
const (
	redisPyRelease = `
        local token = redis.call('get', KEYS[1])
        if not token or token ~= ARGV[1] then
            return 0
        end
        redis.call('del', KEYS[1])
        return 1
    `
	redisPyExtend = `
        local token = redis.call('get', KEYS[1])
        if not token or token ~= ARGV[1] then
            return 0
        end
        local expiration = redis.call('pttl', KEYS[1])
        if not expiration then
            expiration = 0
        end
        if expiration < 0 then
            return 0
        end

        local newttl = ARGV[2]
        if ARGV[3] == "0" then
            newttl = ARGV[2] + expiration
        end
        redis.call('pexpire', KEYS[1], newttl)
        return 1
    `
	redisPyReacquire = `
        local token = redis.call('get', KEYS[1])
        if not token or token ~= ARGV[1] then
            return 0
        end
        redis.call('pexpire', KEYS[1], ARGV[2])
        return 1
    `
)

// go-redsync v4.18.1, scripts.go (BSD-3-Clause licence), with the SHA-1s it
// ships for them.
const (
	redsyncDelete = `
	local val = redis.call("GET", KEYS[1])
	if val == ARGV[1] then
		return redis.call("DEL", KEYS[1])
	elseif val == false then
		return -1
	else
		return 0
	end
`
	redsyncDeleteSHA      = "e950836ed1e694540c503ef9972b8de518044d3b"
	redsyncTouchWithSetNX = `
	if redis.call("GET", KEYS[1]) == ARGV[1] then
		return redis.call("PEXPIRE", KEYS[1], ARGV[2])
	elseif redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2], "NX") then
		return 1
	else
		return 0
	end
`
	redsyncTouchWithSetNXSHA = "b6b55c439e02c6f52ffb8be7ec8c0d0ac816ea79"
	redsyncTouch             = `
	if redis.call("GET", KEYS[1]) == ARGV[1] then
		return redis.call("PEXPIRE", KEYS[1], ARGV[2])
	else
		return 0
	end
`
	redsyncTouchSHA = "d75bb8b5bd13532ddedd17762e772346e39b321e"
)

// node-redlock 5.0.0-beta.2, dist/cjs/index.js (MIT licence).
const (
	redlockAcquire = `
  -- Return 0 if an entry already exists.
  for i, key in ipairs(KEYS) do
    if redis.call("exists", key) == 1 then
      return 0
    end
  end

  -- Create an entry for each provided key.
  for i, key in ipairs(KEYS) do
    redis.call("set", key, ARGV[1], "PX", ARGV[2])
  end

  -- Return the number of entries added.
  return #KEYS
`
	redlockExtend = `
  -- Return 0 if an entry exists with a *different* lock value.
  for i, key in ipairs(KEYS) do
    if redis.call("get", key) ~= ARGV[1] then
      return 0
    end
  end

  -- Update the entry for each provided key.
  for i, key in ipairs(KEYS) do
    redis.call("set", key, ARGV[1], "PX", ARGV[2])
  end

  -- Return the number of entries updated.
  return #KEYS
`
	redlockRelease = `
  local count = 0
  for i, key in ipairs(KEYS) do
    -- Only remove entries for *this* lock value.
    if redis.call("get", key) == ARGV[1] then
      redis.pcall("del", key)
      count = count + 1
    end
  end

  -- Return the number of entries removed.
  return count
`
)

// held is a fake Redis where key is locked with token for ttl milliseconds
// (no expiry if ttl is 0).
func held(key, token string, ttl int64) *fakeRedis {
	f := newFakeRedis()
	f.vals[key] = token
	if ttl > 0 {
		f.exp[key] = f.now + ttl
	}
	return f
}

func (f *fakeRedis) ttl(key string) int64 {
	if e, ok := f.exp[key]; ok {
		return e - f.now
	}
	return -1
}

// TestLockLibraries: each library's scripts do what the library expects,
// against a fake Redis.
func TestLockLibraries(t *testing.T) {
	one, zero := resp.IntValue(1), resp.IntValue(0)
	for _, tc := range []struct {
		name       string
		f          *fakeRedis
		body       string
		keys, args []string
		want       resp.Value
		check      func(*fakeRedis) bool
	}{
		{"redis-py release by the owner", held("l", "t1", 5000), redisPyRelease, []string{"l"}, []string{"t1"}, one,
			func(f *fakeRedis) bool { _, ok := f.vals["l"]; return !ok }},
		{"redis-py release by another", held("l", "t1", 5000), redisPyRelease, []string{"l"}, []string{"t2"}, zero,
			func(f *fakeRedis) bool { return f.vals["l"] == "t1" }},
		{"redis-py release of a free lock", newFakeRedis(), redisPyRelease, []string{"l"}, []string{"t1"}, zero, nil},
		{"redis-py extend, adding", held("l", "t1", 5000), redisPyExtend, []string{"l"}, []string{"t1", "1000", "0"}, one,
			func(f *fakeRedis) bool { return f.ttl("l") == 6000 }},
		{"redis-py extend, replacing", held("l", "t1", 5000), redisPyExtend, []string{"l"}, []string{"t1", "1000", "1"}, one,
			func(f *fakeRedis) bool { return f.ttl("l") == 1000 }},
		{"redis-py extend of a lock without expiry", held("l", "t1", 0), redisPyExtend, []string{"l"}, []string{"t1", "1000", "0"}, zero,
			func(f *fakeRedis) bool { return f.ttl("l") == -1 }},
		{"redis-py extend by another", held("l", "t1", 5000), redisPyExtend, []string{"l"}, []string{"t2", "1000", "0"}, zero,
			func(f *fakeRedis) bool { return f.ttl("l") == 5000 }},
		{"redis-py reacquire", held("l", "t1", 5000), redisPyReacquire, []string{"l"}, []string{"t1", "30000"}, one,
			func(f *fakeRedis) bool { return f.ttl("l") == 30000 }},
		{"redis-py reacquire by another", held("l", "t1", 5000), redisPyReacquire, []string{"l"}, []string{"t2", "30000"}, zero, nil},
		{"redsync delete by the owner", held("l", "v", 8000), redsyncDelete, []string{"l"}, []string{"v"}, one,
			func(f *fakeRedis) bool { _, ok := f.vals["l"]; return !ok }},
		{"redsync delete by another", held("l", "v", 8000), redsyncDelete, []string{"l"}, []string{"w"}, zero, nil},
		{"redsync delete of a free lock", newFakeRedis(), redsyncDelete, []string{"l"}, []string{"v"}, resp.IntValue(-1), nil},
		{"redsync touch", held("l", "v", 8000), redsyncTouch, []string{"l"}, []string{"v", "9000"}, one,
			func(f *fakeRedis) bool { return f.ttl("l") == 9000 }},
		{"redsync touch by another", held("l", "v", 8000), redsyncTouch, []string{"l"}, []string{"w", "9000"}, zero, nil},
		{"redsync touch with SETNX, held", held("l", "v", 8000), redsyncTouchWithSetNX, []string{"l"}, []string{"v", "9000"}, one,
			func(f *fakeRedis) bool { return f.ttl("l") == 9000 }},
		{"redsync touch with SETNX, lost and free", newFakeRedis(), redsyncTouchWithSetNX, []string{"l"}, []string{"v", "9000"}, one,
			func(f *fakeRedis) bool { return f.vals["l"] == "v" && f.ttl("l") == 9000 }},
		{"redsync touch with SETNX, taken", held("l", "w", 8000), redsyncTouchWithSetNX, []string{"l"}, []string{"v", "9000"}, zero,
			func(f *fakeRedis) bool { return f.vals["l"] == "w" }},
		{"redlock acquire", newFakeRedis(), redlockAcquire, []string{"a", "b"}, []string{"v", "10000"}, resp.IntValue(2),
			func(f *fakeRedis) bool { return f.vals["a"] == "v" && f.vals["b"] == "v" && f.ttl("b") == 10000 }},
		{"redlock acquire, one taken", held("b", "w", 5000), redlockAcquire, []string{"a", "b"}, []string{"v", "10000"}, zero,
			func(f *fakeRedis) bool { _, ok := f.vals["a"]; return !ok && f.vals["b"] == "w" }},
		{"redlock extend", held("a", "v", 100), redlockExtend, []string{"a"}, []string{"v", "10000"}, one,
			func(f *fakeRedis) bool { return f.ttl("a") == 10000 }},
		{"redlock extend, lost", held("a", "w", 100), redlockExtend, []string{"a"}, []string{"v", "10000"}, zero,
			func(f *fakeRedis) bool { return f.ttl("a") == 100 }},
		{"redlock release", held("a", "v", 100), redlockRelease, []string{"a", "b"}, []string{"v"}, one,
			func(f *fakeRedis) bool { _, ok := f.vals["a"]; return !ok }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := eval(t, tc.f, tc.body, tc.keys, tc.args)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v (calls %q)", got, tc.want, tc.f.calls)
			}
			if tc.check != nil && !tc.check(tc.f) {
				t.Errorf("after the script: values %v, expiries %v (calls %q)", tc.f.vals, tc.f.exp, tc.f.calls)
			}
		})
	}
}

// TestScriptSHAs: SHA1Hex names scripts as Redis and the libraries do.
func TestScriptSHAs(t *testing.T) {
	for body, sha := range map[string]string{
		redsyncDelete:         redsyncDeleteSHA,
		redsyncTouchWithSetNX: redsyncTouchWithSetNXSHA,
		redsyncTouch:          redsyncTouchSHA,
		"":                    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
	} {
		if got := SHA1Hex(body); got != sha {
			t.Errorf("SHA1Hex(%.20q) = %s, want %s", body, got, sha)
		}
	}
}
