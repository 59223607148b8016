package client_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockd/lockd/client"
	"github.com/redis/go-redis/v9"
)

func TestTryLockGrantsAndRefuses(t *testing.T) {
	srv := startNode(t)
	rdb := newRedis(t, srv)
	a, b := newClient(t, srv), newClient(t, srv)
	if a.Owner() == "" || a.Owner() == b.Owner() {
		t.Fatalf("owners %q and %q: want two distinct UUIDs", a.Owner(), b.Owner())
	}

	la := mustTryLock(t, a, "job", 10*time.Second)
	if la.Token() <= 0 || la.Name() != "job" {
		t.Fatalf("got lock %q token %d, want job with a positive token", la.Name(), la.Token())
	}
	if got := ownerOf(t, rdb, "job"); got != a.Owner() {
		t.Fatalf("OWNER job = %q, want %q", got, a.Owner())
	}
	ctx := ctxTimeout(t, 5*time.Second)
	if _, err := b.TryLock(ctx, "job", 10*time.Second); !errors.Is(err, client.ErrNotAcquired) {
		t.Fatalf("TryLock by another owner: %v, want ErrNotAcquired", err)
	}
	if _, err := a.TryLock(ctx, "job", 10*time.Second); !errors.Is(err, client.ErrNotAcquired) {
		t.Fatalf("TryLock by the same Client: %v, want ErrNotAcquired", err)
	}
	if closed(la.Lost()) {
		t.Fatal("Lost closed while the lock is held")
	}

	unlock(t, la)
	if got := ownerOf(t, rdb, "job"); got != "" {
		t.Fatalf("OWNER job after Unlock = %q, want none", got)
	}
	lb := mustTryLock(t, b, "job", 10*time.Second)
	if lb.Token() <= la.Token() {
		t.Fatalf("token after release %d, want more than %d", lb.Token(), la.Token())
	}
}

func TestTokensIncrease(t *testing.T) {
	srv := startNode(t)
	rdb := newRedis(t, srv)
	clients := []*client.Client{
		newClient(t, srv),
		newClient(t, srv, client.WithOwner("worker-7")),
	}
	if got := clients[1].Owner(); got != "worker-7" {
		t.Fatalf("Owner() = %q, want worker-7", got)
	}
	var last int64
	for i := range 10 {
		c := clients[i%2]
		name := []string{"a", "b", "c"}[i%3]
		l := mustTryLock(t, c, name, time.Minute)
		if got := ownerOf(t, rdb, name); got != c.Owner() {
			t.Fatalf("OWNER %s = %q, want %q", name, got, c.Owner())
		}
		if l.Token() <= last {
			t.Fatalf("grant %d: token %d, want more than %d", i, l.Token(), last)
		}
		last = l.Token()
		unlock(t, l)
	}
}

func TestInvalidTTL(t *testing.T) {
	srv := startNode(t)
	c := newClient(t, srv)
	for _, ttl := range []time.Duration{-time.Second, 500 * time.Microsecond} {
		t.Run(ttl.String(), func(t *testing.T) {
			ctx := ctxTimeout(t, 5*time.Second)
			if _, err := c.TryLock(ctx, "x", ttl); !errors.Is(err, client.ErrInvalidTTL) {
				t.Errorf("TryLock: %v, want ErrInvalidTTL", err)
			}
			if _, err := c.Lock(ctx, "x", ttl); !errors.Is(err, client.ErrInvalidTTL) {
				t.Errorf("Lock: %v, want ErrInvalidTTL", err)
			}
		})
	}
}

func TestServerErrorIsWrapped(t *testing.T) {
	srv := startNode(t)
	c := newClient(t, srv)
	_, err := c.TryLock(ctxTimeout(t, 5*time.Second), strings.Repeat("n", 1000), time.Second)
	var re redis.Error
	if err == nil || !errors.As(err, &re) || !strings.Contains(err.Error(), "invalid lock name") {
		t.Fatalf("TryLock with a too long name: %v, want the server's -ERR invalid lock name", err)
	}
}

// Lock waits on the server (one LOCK ... WAIT) while another owner holds the
// lock, and gets it, with a larger token, when that owner unlocks.
func TestLockWaitsForUnlock(t *testing.T) {
	srv := startNode(t)
	admin := newRedis(t, srv)
	holder := newClient(t, srv)
	hook := &lockCounter{}
	wrdb := newRedis(t, srv, func(o *redis.Options) { o.ClientName = "waiter" })
	wrdb.AddHook(hook)
	waiter := client.New(wrdb)

	held := mustTryLock(t, holder, "q", 10*time.Second)
	type result struct {
		l   *client.Lock
		err error
	}
	res := make(chan result, 1)
	go func() {
		l, err := waiter.Lock(ctxTimeout(t, 10*time.Second), "q", 10*time.Second)
		res <- result{l, err}
	}()
	poll(t, "the waiter's LOCK to reach the server", func() bool {
		list, err := admin.Do(ctxTimeout(t, 5*time.Second), "CLIENT", "LIST").Text()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, " name=waiter ") && strings.Contains(line, " cmd=lock ") {
				return hook.waiting.Load() == 1
			}
		}
		return false
	})
	select {
	case r := <-res:
		t.Fatalf("Lock returned while the lock was held: %v, %v", r.l, r.err)
	default:
	}

	unlock(t, held)
	r := <-res // bounded by the waiter's 10s context
	if r.err != nil {
		t.Fatalf("Lock: %v", r.err)
	}
	t.Cleanup(func() { r.l.Unlock(context.Background()) })
	if r.l.Token() <= held.Token() {
		t.Fatalf("waiter's token %d, want more than the holder's %d", r.l.Token(), held.Token())
	}
	if got := ownerOf(t, admin, "q"); got != waiter.Owner() {
		t.Fatalf("OWNER q = %q, want the waiter %q", got, waiter.Owner())
	}
	if n := hook.sent.Load(); n != 1 {
		t.Fatalf("waiter sent %d LOCKs, want 1 (the server does the waiting)", n)
	}
}

func TestLockHonorsDeadline(t *testing.T) {
	srv := startNode(t)
	rdb := newRedis(t, srv)
	holder, waiter := newClient(t, srv), newClient(t, srv)
	held := mustTryLock(t, holder, "d", 0)

	const timeout = 300 * time.Millisecond
	start := time.Now()
	l, err := waiter.Lock(ctxTimeout(t, timeout), "d", 10*time.Second)
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || l != nil {
		t.Fatalf("Lock: %v, %v; want context.DeadlineExceeded", l, err)
	}
	if elapsed < timeout || elapsed > timeout+2*time.Second {
		t.Fatalf("Lock returned after %v, want just after %v", elapsed, timeout)
	}
	// The waiter left no request queued on the server behind it.
	unlock(t, held)
	if got := ownerOf(t, rdb, "d"); got != "" {
		t.Fatalf("OWNER d after the holder's Unlock = %q, want none", got)
	}
}

func TestLockCancel(t *testing.T) {
	srv := startNode(t)
	holder := newClient(t, srv)
	hook := &lockCounter{}
	wrdb := newRedis(t, srv)
	wrdb.AddHook(hook)
	waiter := client.New(wrdb, client.WithWaitStep(100*time.Millisecond))
	held := mustTryLock(t, holder, "c", 0)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := make(chan error, 1)
	go func() {
		_, err := waiter.Lock(ctx, "c", time.Second)
		res <- err
	}()
	poll(t, "the waiter to repeat its WAIT", func() bool { return hook.sent.Load() >= 2 })
	cancel()
	select {
	case err := <-res:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Lock: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock did not return after cancel")
	}
	unlock(t, held)
}

// One Client never holds a name twice: the server would re-grant the same
// token to its owner, so the Client keeps its own Locks apart.
func TestSameClientLocksExclude(t *testing.T) {
	srv := startNode(t)
	c := newClient(t, srv)
	first := mustTryLock(t, c, "s", 10*time.Second)
	if l, err := c.Lock(ctxTimeout(t, 200*time.Millisecond), "s", 10*time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock of the same Client: %v, %v; want context.DeadlineExceeded", l, err)
	}
	res := make(chan *client.Lock, 1)
	go func() {
		l, err := c.Lock(ctxTimeout(t, 10*time.Second), "s", 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		res <- l
	}()
	unlock(t, first)
	second := <-res
	if second == nil {
		t.FailNow()
	}
	defer unlock(t, second)
	if second.Token() <= first.Token() {
		t.Fatalf("second token %d, want more than %d", second.Token(), first.Token())
	}
}

// Goroutines of two Clients take turns on one lock, never two at once, with
// increasing tokens.
func TestMutualExclusion(t *testing.T) {
	srv := startNode(t)
	clients := []*client.Client{newClient(t, srv), newClient(t, srv)}
	var inside, last atomic.Int64
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			c := clients[g%2]
			for range 5 {
				l, err := c.Lock(ctxTimeout(t, 20*time.Second), "m", 5*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("%d holders at once", n)
				}
				if prev := last.Swap(l.Token()); l.Token() <= prev {
					t.Errorf("token %d after %d", l.Token(), prev)
				}
				inside.Add(-1)
				if err := l.Unlock(ctxTimeout(t, 5*time.Second)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

func TestTryAgain(t *testing.T) {
	srv := leaderless(t, 100*time.Millisecond)
	hook := &lockCounter{}
	rdb := newRedis(t, srv)
	rdb.AddHook(hook)
	c := client.New(rdb)

	_, err := c.TryLock(ctxTimeout(t, 5*time.Second), "t", time.Second)
	if !errors.Is(err, client.ErrTryAgain) || !strings.Contains(err.Error(), "TRYAGAIN") {
		t.Fatalf("TryLock without a leader: %v, want ErrTryAgain with the server's text", err)
	}
	hook.sent.Store(0)
	_, err = c.Lock(ctxTimeout(t, 600*time.Millisecond), "t", time.Second)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock without a leader: %v, want context.DeadlineExceeded", err)
	}
	if n := hook.sent.Load(); n < 2 {
		t.Fatalf("Lock sent %d LOCKs, want retries after -TRYAGAIN", n)
	}
}

// A 300ms lease stays held well past its ttl while renewed.
func TestRenewalKeepsLease(t *testing.T) {
	srv := startNode(t)
	rdb := newRedis(t, srv, resp2) // LOCKINFO as an array
	c := newClient(t, srv)
	l := mustTryLock(t, c, "r", 300*time.Millisecond)
	select {
	case <-l.Lost():
		t.Fatal("lock lost while renewed")
	case <-time.After(time.Second):
	}
	if got := ownerOf(t, rdb, "r"); got != c.Owner() {
		t.Fatalf("OWNER r after 1s = %q, want %q", got, c.Owner())
	}
	info, err := rdb.Do(ctxTimeout(t, 5*time.Second), "LOCKINFO", "r").Slice()
	if err != nil || len(info) != 3 {
		t.Fatalf("LOCKINFO r: %v, %v", info, err)
	}
	if tok, ttl := info[1].(int64), info[2].(int64); tok != l.Token() || ttl <= 0 || ttl > 300 {
		t.Fatalf("LOCKINFO r: token %d ttl %dms, want token %d and 0 < ttl <= 300", tok, ttl, l.Token())
	}
	unlock(t, l)
}

func TestNoLease(t *testing.T) {
	srv := startNode(t)
	rdb := newRedis(t, srv, resp2) // LOCKINFO as an array
	l := mustTryLock(t, newClient(t, srv), "forever", 0)
	info, err := rdb.Do(ctxTimeout(t, 5*time.Second), "LOCKINFO", "forever").Slice()
	if err != nil || len(info) != 3 || info[2] != int64(-1) {
		t.Fatalf("LOCKINFO forever: %v, %v; want ttl -1", info, err)
	}
	unlock(t, l)
	if !closed(l.Lost()) {
		t.Fatal("Lost open after Unlock")
	}
}

func TestUnlockClosesLost(t *testing.T) {
	srv := startNode(t)
	rdb := newRedis(t, srv)
	l := mustTryLock(t, newClient(t, srv), "u", 10*time.Second)
	if closed(l.Lost()) {
		t.Fatal("Lost closed before Unlock")
	}
	unlock(t, l)
	if !closed(l.Lost()) {
		t.Fatal("Lost open after Unlock")
	}
	if got := ownerOf(t, rdb, "u"); got != "" {
		t.Fatalf("OWNER u after Unlock = %q, want none", got)
	}
	if err := l.Unlock(ctxTimeout(t, 5*time.Second)); !errors.Is(err, client.ErrNotHeld) {
		t.Fatalf("second Unlock: %v, want ErrNotHeld", err)
	}
}

// A RENEW answered 0 closes Lost: here the lock is released behind the
// Client's back.
func TestLostWhenRenewRefused(t *testing.T) {
	srv := startNode(t)
	rdb := newRedis(t, srv)
	c := newClient(t, srv)
	l := mustTryLock(t, c, "x", 300*time.Millisecond)
	if n, err := rdb.Do(ctxTimeout(t, 5*time.Second), "UNLOCK", "x", c.Owner()).Int64(); n != 1 || err != nil {
		t.Fatalf("UNLOCK: %v, %v", n, err)
	}
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost still open after the lock was released")
	}
	if err := l.Unlock(ctxTimeout(t, 5*time.Second)); !errors.Is(err, client.ErrNotHeld) {
		t.Fatalf("Unlock of a lost lock: %v, want ErrNotHeld", err)
	}
}

// When the node goes away, renewal fails and Lost closes within the lease.
func TestLostWhenServerCloses(t *testing.T) {
	srv := startNode(t)
	c := newClient(t, srv)
	const ttl = 300 * time.Millisecond
	l := mustTryLock(t, c, "gone", ttl)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		srv.Close()
		close(done)
	}()
	defer func() { <-done }()
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost still open 5s after the node closed")
	}
	// Lost closes by the lease's end as counted from the last RENEW sent
	// before the close, which is at most ttl after start; allow scheduling.
	elapsed := time.Since(start)
	t.Logf("Lost closed %v after the node began to close", elapsed)
	if elapsed > ttl+200*time.Millisecond {
		t.Fatalf("Lost closed %v after the node closed, want within %v", elapsed, ttl)
	}
	err := l.Unlock(ctxTimeout(t, 5*time.Second))
	if err == nil {
		t.Fatal("Unlock on a closed node succeeded")
	}
}

// A lock granted after a WAIT longer than ttl/3 is taken again at once
// (same owner, same token) so that its lease is counted from a known time.
func TestLongWaitRefreshesLease(t *testing.T) {
	srv := startNode(t)
	rdb := newRedis(t, srv)
	holder := newClient(t, srv)
	hook := &lockCounter{}
	wrdb := newRedis(t, srv)
	wrdb.AddHook(hook)
	waiter := client.New(wrdb)
	held := mustTryLock(t, holder, "w", 0)

	const ttl = 300 * time.Millisecond
	res := make(chan *client.Lock, 1)
	start := time.Now()
	go func() {
		l, err := waiter.Lock(ctxTimeout(t, 10*time.Second), "w", ttl)
		if err != nil {
			t.Error(err)
		}
		res <- l
	}()
	poll(t, "the waiter to wait longer than ttl/3", func() bool {
		return hook.waiting.Load() == 1 && time.Since(start) > ttl/2
	})
	unlock(t, held)
	l := <-res
	if l == nil {
		t.FailNow()
	}
	defer unlock(t, l)
	if n := hook.sent.Load(); n != 2 {
		t.Fatalf("waiter sent %d LOCKs, want 2 (the WAIT, then one to restart the lease)", n)
	}
	if got := ownerOf(t, rdb, "w"); got != waiter.Owner() {
		t.Fatalf("OWNER w = %q, want %q", got, waiter.Owner())
	}
	if l.Token() <= held.Token() || closed(l.Lost()) {
		t.Fatalf("token %d (holder's %d), lost %v", l.Token(), held.Token(), closed(l.Lost()))
	}
}
