package client

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// errStopped: Unlock stopped the renewer during a RENEW.
var errStopped = errors.New("renewal stopped")

// Lock is a lock this Client holds. Its methods are safe for concurrent
// use. Call Unlock (or UnlockAll) exactly once for every Lock, also after
// Lost is closed: until then the Client keeps the name to itself and the
// renewer runs.
type Lock struct {
	c     *Client
	kind  kind
	name  string
	token int64
	ttl   time.Duration
	slot  *slot

	lost     chan struct{} // closed by markLost
	lostOnce sync.Once
	stop     chan struct{} // closed by Unlock: the renewer returns
	done     chan struct{} // closed when the renewer has returned
	unlocked atomic.Bool
}

// newLock returns the Lock granted by a LOCK sent at sent, and starts its
// renewer when it has a lease.
func (c *Client) newLock(k kind, name string, ttl time.Duration, token int64, sent time.Time, s *slot) *Lock {
	l := &Lock{
		c: c, kind: k, name: name, token: token, ttl: ttl, slot: s,
		lost: make(chan struct{}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if ttl > 0 {
		go l.renew(sent)
	} else {
		close(l.done)
	}
	return l
}

// Name is the lock's name.
func (l *Lock) Name() string { return l.name }

// Token is the fencing token of this grant: larger than that of every
// earlier grant of any lock in the cluster. Pass it to the resource the lock
// protects, which should refuse a smaller token than it has seen.
func (l *Lock) Token() int64 { return l.token }

// Lost is closed once this process can no longer count on holding the lock:
// a RENEW answered 0 (the lock is not this owner's any more), or no RENEW
// succeeded before the lease ran out by this process's conservative count
// (ttl from sending the last LOCK or RENEW that succeeded; the server counts
// from later), or Unlock was called. Work that needs the lock should stop
// when Lost is closed. A lock without a lease is lost only by Unlock.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Unlock stops the renewer, closes Lost, and sends UNLOCK. It returns
// ErrNotHeld when the server says this owner no longer held the lock (its
// lease ran out, or it was released otherwise), or when called again. Even
// when the UNLOCK fails the Client frees the name for its other Locks; the
// lease then ends on the server on its own.
func (l *Lock) Unlock(ctx context.Context) error {
	if !l.finish() {
		return ErrNotHeld
	}
	defer l.c.dropSlot(l.kind.slotKey(l.name), l.slot)
	n, err := l.c.rdb.Do(ctx, l.kind.unlock, l.name, l.c.owner).Int64()
	if err != nil {
		return wrapErr(l.kind.unlock, l.name, err)
	}
	if n != 1 {
		return ErrNotHeld
	}
	return nil
}

// finish is the first part of Unlock: it marks l unlocked, closes Lost and
// stops the renewer, waiting for it to return. It reports false, doing
// nothing, when l was unlocked before.
func (l *Lock) finish() bool {
	if l.unlocked.Swap(true) {
		return false
	}
	l.markLost()
	close(l.stop)
	<-l.done // prompt: the renewer watches stop in every wait
	return true
}

func (l *Lock) markLost() { l.lostOnce.Do(func() { close(l.lost) }) }

// renew is the lock's one renewer goroutine. It sends RENEW PX ttl ttl/3
// after the last LOCK or RENEW that succeeded was sent, each bounded by ttl/4
// and by the lease's end, retrying a failed one every ttl/12. It returns when
// Unlock closes stop, or after closing Lost: a RENEW answered 0, or the lease
// ran out (see Lost).
func (l *Lock) renew(sent time.Time) {
	defer close(l.done)
	interval := l.ttl / 3
	expiry := sent.Add(l.ttl)
	t := time.NewTimer(time.Until(sent.Add(interval)))
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		left := time.Until(expiry)
		if left <= 0 {
			l.markLost()
			return
		}
		sent := time.Now()
		held, err := l.renewOnce(min(l.ttl/4, left))
		switch {
		case errors.Is(err, errStopped):
			return
		case err == nil && held:
			expiry = sent.Add(l.ttl)
			t.Reset(time.Until(sent.Add(interval)))
		case err == nil:
			l.markLost()
			return
		default:
			t.Reset(min(interval/4, max(time.Until(expiry), 0)))
		}
	}
}

// renewOnce sends one RENEW and waits for its answer for at most timeout,
// or until Unlock. The command runs on its own goroutine so that no go-redis
// setting can hold the renewer past timeout; an abandoned one ends by its
// context's deadline (with go-redis's ContextTimeoutEnabled) or rdb's
// ReadTimeout.
func (l *Lock) renewOnce(timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	type result struct {
		n   int64
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := l.c.rdb.Do(ctx, l.kind.renew, l.name, l.c.owner, "PX", l.ttl.Milliseconds()).Int64()
		res <- result{n, err}
	}()
	select {
	case r := <-res:
		return r.n == 1, r.err
	case <-ctx.Done():
		return false, ctx.Err()
	case <-l.stop:
		return false, errStopped
	}
}
