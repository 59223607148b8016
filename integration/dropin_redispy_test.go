package integration

import (
	"context"
	"strconv"
	"testing"
)

// redis-py's Lock (redis.lock.Lock, through r.lock) against a follower:
// blocking acquire that waits for a release and one that times out, extend
// (added and replacing), reacquire, release, `with`, locked()/owned(),
// LockNotOwnedError for a lock whose lease ran out and which another owner
// took, and a lock that outlives the leader's death. The script is
// clients/redispy_lock.py.
func TestRedisPyLockOnFollower(t *testing.T) {
	needRedisPy(t)
	script := clientScript(t, "redispy_lock.py")
	c, f, host, port := followerCluster(t)
	d := startDriven(t, redisPyPython, script, host, port, "py-lock")

	newLead := killLeaderAt(t, c, d, f)
	// The lock taken through the follower is on the new leader, as it was.
	if v, err := c.client(newLead).Get(context.Background(), "py-lock-failover").Result(); err != nil || v != d.printed("failover-value") {
		t.Fatalf("GET py-lock-failover on the new leader = %q, %v; want %q", v, err, d.printed("failover-value"))
	}
	d.resume()

	s := d.steps()
	t.Logf("redis-py %s", s.get("version"))
	s.want([][2]string{
		{"a-acquire", "True"}, {"a-locked", "True"}, {"a-owned", "True"}, {"b-owned", "False"}, {"value-is-a", "True"},
		{"b-timeout", "False"}, {"b-nonblocking", "False"},
		{"b-was-refused", "True"}, {"b-acquire-after-release", "True"}, {"a-owned-after", "False"}, {"b-owned-after", "True"},
		{"extend-add", "True"}, {"extend-replace", "True"}, {"reacquire", "True"},
		{"with-held", "LockError"}, {"released-exists", "0"},
		{"with-owned", "True"}, {"with-after-exists", "0"},
		{"short-acquire", "True"}, {"other-acquire", "True"},
		{"expired-extend", "LockNotOwnedError"}, {"expired-reacquire", "LockNotOwnedError"}, {"expired-release", "LockNotOwnedError"},
		{"other-owned", "True"},
		{"failover-acquire", "True"}, {"failover-owned", "True"}, {"failover-other", "False"}, {"failover-extend", "True"},
		{"failover-released-exists", "0"},
	})
	// blocking_timeout=0.5 with sleep=0.05: redis-py gives up once the next
	// try would come after the deadline.
	if secs, err := strconv.ParseFloat(s.get("b-timeout-s"), 64); err != nil || secs < 0.4 || secs > 3 {
		t.Errorf("b-timeout-s = %q; want about 0.5", s.get("b-timeout-s"))
	}
	s.within("pttl-after-add", 30000, 40000)   // 30 s lease + 10 s
	s.within("pttl-after-replace", 4000, 5000) // replaced by 5 s
	s.within("pttl-after-reacquire", 25000, 30000)
	s.within("with-pttl", 0, 10000)
	s.within("failover-pttl", 30000, 50000) // what was left of 20 s + 30 s
	if s.get("failover-token-after") != s.get("failover-token-before") {
		t.Errorf("the fencing token changed across the failover: %s, then %s", s.get("failover-token-before"), s.get("failover-token-after"))
	}
}
