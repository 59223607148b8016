package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

// go-redsync v4 over go-redis v9 with its default options (RESP3 through
// HELLO 3) against a follower: Lock, TryLock refused while held, Extend,
// Unlock, ErrLockAlreadyExpired for an Unlock after the lease ran out,
// ErrTaken once another owner has it, and a mutex that outlives the
// leader's death.
func TestRedsyncOnFollower(t *testing.T) {
	c, f, _, _ := followerCluster(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: c.nodes[f].client})
	t.Cleanup(func() { rdb.Close() })
	if ci, err := rdb.ClientInfo(ctx).Result(); err != nil || ci.Resp != 3 {
		t.Fatalf("CLIENT INFO = %+v, %v; want a RESP3 connection", ci, err)
	}
	rs := redsync.New(goredis.NewPool(rdb))
	// probe reads the key from the follower, on a connection of the
	// harness's own.
	probe := c.client(f)
	value := func(name string) string {
		t.Helper()
		v, err := probe.Get(ctx, name).Result()
		if errors.Is(err, redis.Nil) {
			return ""
		}
		if err != nil {
			t.Fatalf("GET %s: %v", name, err)
		}
		return v
	}
	pttl := func(name string) time.Duration {
		t.Helper()
		d, err := probe.PTTL(ctx, name).Result()
		if err != nil {
			t.Fatalf("PTTL %s: %v", name, err)
		}
		return d
	}

	t.Run("lock-extend-unlock", func(t *testing.T) {
		m := rs.NewMutex("rs-orders", redsync.WithExpiry(10*time.Second))
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock: %v", err)
		}
		if v := value("rs-orders"); v != m.Value() {
			t.Fatalf("the key holds %q; want the mutex's value %q", v, m.Value())
		}
		if d := pttl("rs-orders"); d <= 9*time.Second || d > 10*time.Second {
			t.Fatalf("PTTL after Lock = %v; want in (9s, 10s]", d)
		}
		other := rs.NewMutex("rs-orders", redsync.WithExpiry(10*time.Second))
		var taken *redsync.ErrTaken
		if err := other.TryLock(); !errors.As(err, &taken) {
			t.Fatalf("TryLock of a held mutex: %v; want ErrTaken", err)
		}
		if v := value("rs-orders"); v != m.Value() {
			t.Fatalf("after the refused TryLock the key holds %q; want %q", v, m.Value())
		}
		// Shorten the lease behind redsync's back: Extend gives it the
		// mutex's expiry again.
		if err := probe.PExpire(ctx, "rs-orders", 2*time.Second).Err(); err != nil {
			t.Fatal(err)
		}
		until := m.Until()
		if ok, err := m.Extend(); !ok || err != nil {
			t.Fatalf("Extend = %v, %v; want true", ok, err)
		}
		if d := pttl("rs-orders"); d <= 9*time.Second {
			t.Fatalf("PTTL after Extend = %v; want above 9s", d)
		}
		if !m.Until().After(until) {
			t.Fatalf("Until after Extend = %v; want after %v", m.Until(), until)
		}
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Fatalf("Unlock = %v, %v; want true", ok, err)
		}
		if v := value("rs-orders"); v != "" {
			t.Fatalf("after Unlock the key holds %q; want none", v)
		}
		if err := other.TryLock(); err != nil {
			t.Fatalf("TryLock after Unlock: %v", err)
		}
		if ok, err := other.Unlock(); !ok || err != nil {
			t.Fatalf("Unlock = %v, %v; want true", ok, err)
		}
	})

	t.Run("lease-runs-out", func(t *testing.T) {
		// A short expiry: redsync gives each SET NX timeoutFactor (5%) of
		// it, 75 ms, and retries; the default 32 tries are plenty.
		m := rs.NewMutex("rs-short", redsync.WithExpiry(1500*time.Millisecond))
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock: %v", err)
		}
		poll(t, 5*time.Second, "the 1.5 s lease to run out", func() bool { return value("rs-short") == "" })
		if ok, err := m.Unlock(); ok || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
			t.Fatalf("Unlock after the lease ran out = %v, %v; want false, ErrLockAlreadyExpired", ok, err)
		}
		var taken *redsync.ErrTaken
		if ok, err := m.Extend(); ok || !errors.As(err, &taken) {
			t.Fatalf("Extend after the lease ran out = %v, %v; want false, ErrTaken", ok, err)
		}
		other := rs.NewMutex("rs-short", redsync.WithExpiry(10*time.Second))
		if err := other.TryLock(); err != nil {
			t.Fatalf("TryLock by another mutex after the lease ran out: %v", err)
		}
		if ok, err := m.Unlock(); ok || !errors.As(err, &taken) {
			t.Fatalf("Unlock of a mutex another owner took = %v, %v; want false, ErrTaken", ok, err)
		}
		if v := value("rs-short"); v != other.Value() {
			t.Fatalf("after the stale Unlock the key holds %q; want the new owner's %q", v, other.Value())
		}
		if ok, err := other.Unlock(); !ok || err != nil {
			t.Fatalf("Unlock = %v, %v; want true", ok, err)
		}
	})

	t.Run("leader-killed", func(t *testing.T) {
		m := rs.NewMutex("rs-failover", redsync.WithExpiry(20*time.Second))
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock: %v", err)
		}
		newLead := killLeader(t, c, f)
		if v, err := c.client(newLead).Get(ctx, "rs-failover").Result(); err != nil || v != m.Value() {
			t.Fatalf("GET on the new leader = %q, %v; want %q", v, err, m.Value())
		}
		other := rs.NewMutex("rs-failover", redsync.WithExpiry(20*time.Second))
		var taken *redsync.ErrTaken
		if err := other.TryLock(); !errors.As(err, &taken) {
			t.Fatalf("TryLock of the held mutex after the failover: %v; want ErrTaken", err)
		}
		if ok, err := m.Extend(); !ok || err != nil {
			t.Fatalf("Extend after the failover = %v, %v; want true", ok, err)
		}
		if d := pttl("rs-failover"); d <= 19*time.Second || d > 20*time.Second {
			t.Fatalf("PTTL after Extend = %v; want in (19s, 20s]", d)
		}
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Fatalf("Unlock after the failover = %v, %v; want true", ok, err)
		}
		if v := value("rs-failover"); v != "" {
			t.Fatalf("after Unlock the key holds %q; want none", v)
		}
	})
}
