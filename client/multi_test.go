package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lockd/lockd/client"
	"github.com/redis/go-redis/v9"
)

// mustLockAll takes names with TryLockAll; they must be free.
func mustLockAll(t testing.TB, c *client.Client, names []string, ttl time.Duration) []*client.Lock {
	t.Helper()
	locks, err := c.TryLockAll(ctxTimeout(t, 5*time.Second), names, ttl)
	if err != nil {
		t.Fatalf("TryLockAll %v: %v", names, err)
	}
	t.Cleanup(func() {
		for _, l := range locks {
			l.Unlock(context.Background())
		}
	})
	return locks
}

// checkGrant checks that locks are one per name in the order given, with
// tokens increasing along them and above after, each held by c with that
// token as LOCKINFO shows it (rdb speaks RESP2).
func checkGrant(t testing.TB, rdb *redis.Client, c *client.Client, names []string, locks []*client.Lock, after int64) {
	t.Helper()
	if len(locks) != len(names) {
		t.Fatalf("%d locks for %d names", len(locks), len(names))
	}
	last := after
	for i, l := range locks {
		if l.Name() != names[i] || l.Token() <= last {
			t.Fatalf("lock %d: %s token %d, want %s with a token above %d", i, l.Name(), l.Token(), names[i], last)
		}
		last = l.Token()
		info, err := rdb.Do(ctxTimeout(t, 5*time.Second), "LOCKINFO", l.Name()).Slice()
		if err != nil || len(info) != 3 || info[0] != c.Owner() || info[1] != l.Token() {
			t.Fatalf("LOCKINFO %s: %v, %v; want owner %s, token %d", l.Name(), info, err, c.Owner(), l.Token())
		}
	}
}

// TryLockAll takes every name or none: one name held by another owner, or
// by another Lock of the same Client, leaves every name free. Tokens rise in
// the order the names are given, not in the order of the names.
func TestTryLockAllAllOrNone(t *testing.T) {
	srv := startNode(t)
	rdb := newRedis(t, srv, resp2) // LOCKINFO as an array
	holder := newClient(t, srv)
	c, log := loggedClient(t, srv)
	names := []string{"c", "a", "b"}

	held := mustTryLock(t, holder, "b", 0)
	ctx := ctxTimeout(t, 5*time.Second)
	if locks, err := c.TryLockAll(ctx, names, 10*time.Second); !errors.Is(err, client.ErrNotAcquired) || locks != nil {
		t.Fatalf("TryLockAll with b held by another owner: %v, %v; want ErrNotAcquired", locks, err)
	}
	for _, n := range names {
		if got, want := ownerOf(t, rdb, n), map[bool]string{true: holder.Owner()}[n == "b"]; got != want {
			t.Fatalf("OWNER %s = %q, want %q", n, got, want)
		}
	}
	unlock(t, held)

	locks := mustLockAll(t, c, names, 10*time.Second)
	checkGrant(t, rdb, c, names, locks, held.Token())

	sent := len(log.sent())
	for _, try := range [][]string{{"x", "a"}, {"b"}} {
		if got, err := c.TryLockAll(ctx, try, 10*time.Second); !errors.Is(err, client.ErrNotAcquired) || got != nil {
			t.Fatalf("TryLockAll %v while the same Client holds one: %v, %v; want ErrNotAcquired", try, got, err)
		}
	}
	if _, err := c.TryLock(ctx, "a", time.Second); !errors.Is(err, client.ErrNotAcquired) {
		t.Fatalf("TryLock a while TryLockAll's Lock holds it: %v, want ErrNotAcquired", err)
	}
	if got := log.sent()[sent:]; len(got) != 0 {
		t.Fatalf("sent %q for names the Client holds, want nothing", got)
	}
	if got := ownerOf(t, rdb, "x"); got != "" {
		t.Fatalf("OWNER x = %q, want none", got)
	}
	// The refused calls left no slot behind: x is free in the Client.
	unlock(t, mustTryLock(t, c, "x", time.Second))
}

// LockAll waits on the server (one MLOCK ... WAIT) while another owner holds
// one of its names, and gets all of them when that owner unlocks.
func TestLockAllWaitsForUnlock(t *testing.T) {
	srv := startNode(t)
	rdb := newRedis(t, srv, resp2) // LOCKINFO as an array
	holder := newClient(t, srv)
	waiter, log := loggedClient(t, srv)
	names := []string{"q2", "q1"}

	held := mustTryLock(t, holder, "q1", 0)
	type result struct {
		locks []*client.Lock
		err   error
	}
	res := make(chan result, 1)
	go func() {
		locks, err := waiter.LockAll(ctxTimeout(t, 10*time.Second), names, 10*time.Second)
		res <- result{locks, err}
	}()
	poll(t, "the waiter's MLOCK to queue", func() bool { return srv.Node().Table().Waiting() > 0 })
	select {
	case r := <-res:
		t.Fatalf("LockAll returned while q1 was held: %v, %v", r.locks, r.err)
	default:
	}
	if got := ownerOf(t, rdb, "q2"); got != "" {
		t.Fatalf("OWNER q2 while waiting = %q, want none (reserved, not granted)", got)
	}

	unlock(t, held)
	r := <-res // bounded by the waiter's 10s context
	if r.err != nil {
		t.Fatalf("LockAll: %v", r.err)
	}
	t.Cleanup(func() {
		for _, l := range r.locks {
			l.Unlock(context.Background())
		}
	})
	checkGrant(t, rdb, waiter, names, r.locks, held.Token())
	var mlocks int
	for _, cmd := range log.sent() {
		if strings.HasPrefix(cmd, "MLOCK 2 q2 q1 ") && strings.Contains(cmd, " WAIT ") {
			mlocks++
		}
	}
	if mlocks != 1 {
		t.Fatalf("waiter sent %q, want one MLOCK 2 q2 q1 ... WAIT (the server does the waiting)", log.sent())
	}
}

// Each Lock of TryLockAll is an ordinary held lock: renewed on its own past
// its ttl, and released by its own Unlock or by UnlockAll.
func TestLockAllRenewsAndUnlocks(t *testing.T) {
	for _, how := range []string{"Unlock", "UnlockAll"} {
		t.Run(how, func(t *testing.T) {
			srv := startNode(t)
			rdb := newRedis(t, srv, resp2) // LOCKINFO as an array
			c := newClient(t, srv)
			const ttl = 300 * time.Millisecond
			locks := mustLockAll(t, c, []string{"r1", "r2", "r3"}, ttl)
			select {
			case <-locks[0].Lost():
				t.Fatal("lock lost while renewed")
			case <-time.After(1 * time.Second):
			}
			for _, l := range locks {
				info, err := rdb.Do(ctxTimeout(t, 5*time.Second), "LOCKINFO", l.Name()).Slice()
				if err != nil || len(info) != 3 {
					t.Fatalf("LOCKINFO %s: %v, %v", l.Name(), info, err)
				}
				if owner, tok, left := info[0], info[1].(int64), info[2].(int64); owner != c.Owner() || tok != l.Token() || left <= 0 || left > 300 {
					t.Fatalf("LOCKINFO %s after 1s: %v, want %s, token %d, 0 < ttl <= 300", l.Name(), info, c.Owner(), l.Token())
				}
			}

			if how == "Unlock" {
				for _, l := range locks {
					unlock(t, l)
				}
			} else if err := c.UnlockAll(ctxTimeout(t, 5*time.Second), locks); err != nil {
				t.Fatalf("UnlockAll: %v", err)
			}
			for _, l := range locks {
				if got := ownerOf(t, rdb, l.Name()); got != "" || !closed(l.Lost()) {
					t.Fatalf("after %s: OWNER %s = %q, Lost closed %v; want none, closed", how, l.Name(), got, closed(l.Lost()))
				}
				if err := l.Unlock(ctxTimeout(t, 5*time.Second)); !errors.Is(err, client.ErrNotHeld) {
					t.Fatalf("Unlock %s again: %v, want ErrNotHeld", l.Name(), err)
				}
			}
			// The Client freed the names: they can be taken again.
			again := mustLockAll(t, c, []string{"r3", "r1"}, ttl)
			// UnlockAll of a Lock released before reports ErrNotHeld and
			// still releases the rest.
			if err := c.UnlockAll(ctxTimeout(t, 5*time.Second), append(again, locks[1])); !errors.Is(err, client.ErrNotHeld) {
				t.Fatalf("UnlockAll with a released Lock: %v, want ErrNotHeld", err)
			}
			if got := ownerOf(t, rdb, "r3") + ownerOf(t, rdb, "r1"); got != "" {
				t.Fatalf("r3 and r1 still held by %q", got)
			}
		})
	}
}

// Two LockAll calls of one Client asking for a and b in opposite orders do
// not deadlock in the Client: it takes its slots in name order. Each queues
// behind a Lock of the same Client on a; the first queued gets a first.
func TestLockAllSameClientNoDeadlock(t *testing.T) {
	srv := startNode(t)
	c := newClient(t, srv)
	first := mustTryLock(t, c, "a", 0)
	ctx := ctxTimeout(t, 5*time.Second)
	res := make(chan error, 2)
	lockAll := func(names ...string) {
		locks, err := c.LockAll(ctx, names, 10*time.Second)
		if err == nil {
			err = c.UnlockAll(ctx, locks)
		}
		res <- err
	}
	go lockAll("a", "b")
	poll(t, "LockAll a b to wait for a in the Client", func() bool { return client.SlotRefs(c, "a") == 2 })
	go lockAll("b", "a")
	poll(t, "LockAll b a to wait for a in the Client", func() bool { return client.SlotRefs(c, "a") == 3 })
	unlock(t, first)
	for range 2 {
		if err := <-res; err != nil { // bounded by ctx
			t.Fatalf("LockAll: %v", err)
		}
	}
}

// Arguments the server would refuse, or that would mean nothing, are
// refused before anything is sent.
func TestMultiBadArguments(t *testing.T) {
	srv := startNode(t)
	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprint("n", i)
	}
	cases := []struct {
		name  string
		opts  []client.Option
		names []string
		ttl   time.Duration
		want  error
	}{
		{"no names", nil, nil, time.Second, client.ErrInvalidNames},
		{"65 names", nil, many, time.Second, client.ErrInvalidNames},
		{"a name twice", nil, []string{"a", "b", "a"}, time.Second, client.ErrInvalidNames},
		{"negative ttl", nil, []string{"a"}, -time.Second, client.ErrInvalidTTL},
		{"sub-millisecond ttl", nil, []string{"a"}, time.Microsecond, client.ErrInvalidTTL},
		{"negative delay", []client.Option{client.WithLockDelay(-time.Millisecond)}, []string{"a"}, time.Second, client.ErrInvalidDelay},
		{"delay over an hour", []client.Option{client.WithLockDelay(time.Hour + time.Millisecond)}, []string{"a"}, time.Second, client.ErrInvalidDelay},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, log := loggedClient(t, srv, tc.opts...)
			ctx := ctxTimeout(t, 5*time.Second)
			if _, err := c.TryLockAll(ctx, tc.names, tc.ttl); !errors.Is(err, tc.want) {
				t.Errorf("TryLockAll: %v, want %v", err, tc.want)
			}
			if _, err := c.LockAll(ctx, tc.names, tc.ttl); !errors.Is(err, tc.want) {
				t.Errorf("LockAll: %v, want %v", err, tc.want)
			}
			if tc.want != client.ErrInvalidNames {
				if _, err := c.TryLock(ctx, "a", tc.ttl); !errors.Is(err, tc.want) {
					t.Errorf("TryLock: %v, want %v", err, tc.want)
				}
				if _, err := c.Lock(ctx, "a", tc.ttl); !errors.Is(err, tc.want) {
					t.Errorf("Lock: %v, want %v", err, tc.want)
				}
			}
			if got := log.sent(); len(got) != 0 {
				t.Errorf("sent %q, want nothing", got)
			}
		})
	}

	t.Run("UnlockAll", func(t *testing.T) {
		c, log := loggedClient(t, srv)
		other := newClient(t, srv)
		ctx := ctxTimeout(t, 5*time.Second)
		mine := mustTryLock(t, c, "u1", 10*time.Second)
		theirs := mustTryLock(t, other, "u2", 10*time.Second)
		rw, err := c.TryReadLock(ctx, "u3", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rw.Unlock(context.Background()) })
		sent := len(log.sent())
		for _, locks := range [][]*client.Lock{nil, {mine, theirs}, {mine, rw}, {mine, mine}} {
			if err := c.UnlockAll(ctx, locks); !errors.Is(err, client.ErrInvalidNames) {
				t.Errorf("UnlockAll of %d locks: %v, want ErrInvalidNames", len(locks), err)
			}
		}
		if got := log.sent()[sent:]; len(got) != 0 {
			t.Errorf("sent %q, want nothing", got)
		}
		for _, l := range []*client.Lock{mine, theirs, rw} {
			if closed(l.Lost()) {
				t.Errorf("%s lost after a refused UnlockAll", l.Name())
			}
		}
	})

	t.Run("refused by the server", func(t *testing.T) {
		c := newClient(t, srv)
		rdb := newRedis(t, srv)
		_, err := c.TryLockAll(ctxTimeout(t, 5*time.Second), []string{"ok", strings.Repeat("n", 1000)}, time.Second)
		var re redis.Error
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "invalid lock name") {
			t.Fatalf("TryLockAll with a too long name: %v, want the server's -ERR invalid lock name", err)
		}
		if got := ownerOf(t, rdb, "ok"); got != "" {
			t.Fatalf("OWNER ok = %q, want none", got)
		}
		unlock(t, mustTryLock(t, c, "ok", time.Second))
	})
}

// Without a leader TryLockAll reports ErrTryAgain and, as the MLOCK may yet
// be granted, sends a best-effort MUNLOCK of its names; LockAll retries
// until ctx ends.
func TestLockAllTryAgain(t *testing.T) {
	srv := leaderless(t, 100*time.Millisecond)
	c, log := loggedClient(t, srv)
	_, err := c.TryLockAll(ctxTimeout(t, 5*time.Second), []string{"t1", "t2"}, time.Second)
	if !errors.Is(err, client.ErrTryAgain) || !strings.Contains(err.Error(), "TRYAGAIN") {
		t.Fatalf("TryLockAll without a leader: %v, want ErrTryAgain with the server's text", err)
	}
	if got := log.sent(); len(got) != 2 || !strings.HasPrefix(got[1], "MUNLOCK 2 t1 t2 "+c.Owner()) {
		t.Fatalf("sent %q, want the MLOCK, then MUNLOCK 2 t1 t2 owner", got)
	}

	_, err = c.LockAll(ctxTimeout(t, 600*time.Millisecond), []string{"t1", "t2"}, time.Second)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LockAll without a leader: %v, want context.DeadlineExceeded", err)
	}
	var mlocks int
	for _, cmd := range log.sent()[2:] {
		if strings.HasPrefix(cmd, "MLOCK ") {
			mlocks++
		}
	}
	if mlocks < 2 {
		t.Fatalf("LockAll sent %q, want MLOCK retried after -TRYAGAIN", log.sent()[2:])
	}
}

// Locks granted to LockAll after a WAIT longer than ttl/3 are taken again at
// once with MLOCK without WAIT (the same tokens: a re-grant), so that their
// leases are counted from a known time, as Lock's are.
func TestLockAllLongWaitRefreshesLeases(t *testing.T) {
	srv := startNode(t)
	rdb := newRedis(t, srv, resp2) // LOCKINFO as an array
	holder := newClient(t, srv)
	waiter, log := loggedClient(t, srv)
	held := mustTryLock(t, holder, "w2", 0)
	names := []string{"w1", "w2"}

	const ttl = 300 * time.Millisecond
	res := make(chan []*client.Lock, 1)
	start := time.Now()
	go func() {
		locks, err := waiter.LockAll(ctxTimeout(t, 10*time.Second), names, ttl)
		if err != nil {
			t.Error(err)
		}
		res <- locks
	}()
	poll(t, "the waiter to wait longer than ttl/3", func() bool {
		return srv.Node().Table().Waiting() > 0 && time.Since(start) > ttl/2
	})
	unlock(t, held)
	locks := <-res
	if locks == nil {
		t.FailNow()
	}
	t.Cleanup(func() { waiter.UnlockAll(context.Background(), locks) })
	var sent []string // the MLOCKs; the renewers' RENEWs may follow
	for _, cmd := range log.sent() {
		if strings.HasPrefix(cmd, "MLOCK ") {
			sent = append(sent, cmd)
		}
	}
	if len(sent) != 2 || !strings.Contains(sent[0], " WAIT ") || strings.Contains(sent[1], " WAIT ") {
		t.Fatalf("waiter sent %q, want MLOCK ... WAIT, then one MLOCK without WAIT to restart the leases", sent)
	}
	checkGrant(t, rdb, waiter, names, locks, held.Token())
}
