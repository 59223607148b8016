package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Bounds of the waiting and retrying of Lock (and ReadLock, ..., LockAll).
const (
	// maxWaitStep is the longest WAIT one LOCK (or MLOCK, ...) asks for.
	maxWaitStep = 30 * time.Second
	// minBackoff and maxBackoff bound the pause after a -TRYAGAIN.
	minBackoff = 10 * time.Millisecond
	maxBackoff = 500 * time.Millisecond
	// cleanupTimeout bounds the UNLOCK (or MUNLOCK, ...) sent after a LOCK
	// (MLOCK, ...) whose outcome is unknown.
	cleanupTimeout = time.Second
)

// Client takes locks on lockd as one owner. It is safe for concurrent use.
type Client struct {
	rdb      redis.UniversalClient
	owner    string
	waitStep time.Duration
	delay    time.Duration // with delaySet: the DELAY of every LOCK and MLOCK
	delaySet bool

	mu    sync.Mutex
	slots map[string]*slot // names a Lock of this Client holds or is taking
}

// slot keeps two Locks of one Client off one name at a time: the server
// cannot tell them apart (same owner: the second LOCK would be a re-grant),
// so the Client must.
type slot struct {
	held chan struct{} // capacity 1; full while a Lock of this Client has, or is taking, the name
	refs int           // holders and waiters; the slot is dropped at 0
}

// Option configures a Client.
type Option func(*Client)

// WithOwner sets the owner string sent with every command (default: a new
// random UUID). It must be unique to this Client: two Clients with one owner
// share every lock they take.
func WithOwner(owner string) Option {
	return func(c *Client) { c.owner = owner }
}

// WithWaitStep sets the longest WAIT one LOCK of Lock (or MLOCK of LockAll,
// ...) asks for (at least 1ms). The default is 30s, or 3/4 of rdb's
// ReadTimeout when rdb is a *redis.Client with a shorter one, so that a
// waiting LOCK never outlasts go-redis's read deadline. A cancellation
// without a deadline is noticed when the current step ends.
func WithWaitStep(d time.Duration) Option {
	return func(c *Client) { c.waitStep = max(d, time.Millisecond) }
}

// WithLockDelay makes every LOCK and MLOCK this Client sends (TryLock, Lock,
// TryLockAll, LockAll) carry DELAY ms: when such a hold's lease runs out
// without an Unlock, the server keeps the name from every owner for d after
// the lease's end (see PROTOCOL.md, Lock-delay). d is 0..1h; a part of a
// millisecond is rounded up (a positive d under 1ms sends DELAY 1), as a
// delay is a safety margin. WithLockDelay(0) sends DELAY 0, no delay even on
// a node started with --lock-delay; without WithLockDelay the node's
// --lock-delay applies. A d out of range makes those four methods return
// ErrInvalidDelay before sending anything. Read/write locks and semaphores
// take no lock-delay: their commands never carry DELAY.
func WithLockDelay(d time.Duration) Option {
	return func(c *Client) { c.delay, c.delaySet = d, true }
}

// New returns a Client that sends its commands through rdb, which should
// point at one lockd node (any node will do). The Client does not own rdb:
// close rdb after the last Unlock.
func New(rdb redis.UniversalClient, opts ...Option) *Client {
	c := &Client{
		rdb:      rdb,
		owner:    uuid.NewString(),
		waitStep: defaultWaitStep(rdb),
		slots:    make(map[string]*slot),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// defaultWaitStep fits one WAIT inside rdb's read timeout, when it is known.
func defaultWaitStep(rdb redis.UniversalClient) time.Duration {
	o, ok := rdb.(interface{ Options() *redis.Options })
	if !ok {
		return maxWaitStep
	}
	// After go-redis fills in defaults, ReadTimeout is > 0, or 0 for no
	// timeout, or -1 for no deadlines at all.
	if rt := o.Options().ReadTimeout; rt > 0 {
		return max(min(maxWaitStep, rt*3/4), time.Millisecond)
	}
	return maxWaitStep
}

// Owner is the owner string this Client sends.
func (c *Client) Owner() string { return c.owner }

// TryLock sends one LOCK name owner PX ttl and returns the lock, or
// ErrNotAcquired when another owner holds it (or another Lock of this
// Client does; no command is sent then). A ttl of 0 takes a lock without a
// lease, which never expires and is not renewed; a positive ttl is rounded
// down to milliseconds and renewed in the background until Unlock. With
// WithLockDelay the LOCK also carries DELAY ms.
//
// When the outcome of the LOCK is unknown (a network error, ctx ending, a
// -TRYAGAIN), TryLock sends a best-effort UNLOCK before it returns the error.
func (c *Client) TryLock(ctx context.Context, name string, ttl time.Duration) (*Lock, error) {
	return c.try(ctx, mutex, name, ttl)
}

// try is TryLock for a hold of kind k.
func (c *Client) try(ctx context.Context, k kind, name string, ttl time.Duration) (*Lock, error) {
	return first(c.tryReq(ctx, c.single(k, name, ttl)))
}

// tryReq sends r's command once, without WAIT: TryLock and TryLockAll.
func (c *Client) tryReq(ctx context.Context, r *request) ([]*Lock, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if err := r.takeSlots(ctx, false); err != nil {
		return nil, err
	}
	sent := time.Now()
	tokens, err := r.send(ctx, 0)
	switch {
	case err == nil:
		return r.grant(tokens, sent), nil
	case errors.Is(err, redis.Nil):
		r.dropSlots()
		return nil, ErrNotAcquired
	default:
		return nil, r.abandon(ctx, err, !isRefusal(err))
	}
}

// Lock takes the lock, waiting for it on the server (LOCK ... WAIT ms, first
// come first served) in steps of at most the wait step (see WithWaitStep),
// each no longer than what remains of ctx's deadline. It returns ctx.Err()
// when ctx ends first: a grant that arrives after that is released. It
// retries -TRYAGAIN after a pause of 10ms doubling up to 500ms; repeating a
// LOCK is safe, as the same owner gets the same grant. Another Lock of this
// Client on the same name is waited for locally, in no particular order.
// ttl is as for TryLock.
func (c *Client) Lock(ctx context.Context, name string, ttl time.Duration) (*Lock, error) {
	return c.wait(ctx, mutex, name, ttl)
}

// wait is Lock for a hold of kind k.
func (c *Client) wait(ctx context.Context, k kind, name string, ttl time.Duration) (*Lock, error) {
	return first(c.waitReq(ctx, c.single(k, name, ttl)))
}

// waitReq sends r's command with WAIT until it is granted or ctx ends: Lock
// and LockAll.
func (c *Client) waitReq(ctx context.Context, r *request) ([]*Lock, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := r.takeSlots(ctx, true); err != nil {
		return nil, err
	}
	backoff := minBackoff
	unsure := false  // a command whose outcome is unknown was sent since the last definite answer
	granted := false // a grant arrived: after a later null, some of MLOCK's names may still be ours
	refresh := false // re-take a lock granted after a long wait, to learn when its lease ends
	for {
		var wait time.Duration
		if !refresh {
			if err := ctx.Err(); err != nil {
				return nil, r.abandon(ctx, err, unsure)
			}
			wait = c.waitFor(ctx)
		}
		sent := time.Now()
		tokens, err := r.send(ctx, wait)
		switch {
		case err == nil:
			if err := ctx.Err(); err != nil {
				return nil, r.abandon(ctx, err, true)
			}
			if wait > 0 && r.ttl > 0 && time.Since(sent) > r.ttl/3 {
				// The lease began somewhere between sent and now; a command
				// without WAIT resets it from a known time.
				granted, refresh = true, true
				continue
			}
			return r.grant(tokens, sent), nil
		case errors.Is(err, redis.Nil):
			// A null after a grant (a refresh that found a lease run out
			// and a name taken) may leave some of MLOCK's names ours: a
			// later abandon releases them (for one name the UNLOCK is
			// merely answered 0).
			unsure, backoff = granted, minBackoff
			if wait == 0 && !refresh {
				// ctx's deadline is too close for another WAIT.
				<-ctx.Done()
				return nil, r.abandon(ctx, ctx.Err(), unsure)
			}
			refresh = false
		case isTryAgain(err):
			unsure = true
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, r.abandon(ctx, ctx.Err(), unsure)
			}
			backoff = min(2*backoff, maxBackoff)
		default:
			return nil, r.abandon(ctx, err, !isRefusal(err))
		}
	}
}

// first is the one Lock of a single-name request.
func first(locks []*Lock, err error) (*Lock, error) {
	if err != nil {
		return nil, err
	}
	return locks[0], nil
}

// waitFor is the WAIT for the next command of Lock or LockAll: the wait
// step, or less to leave the reply time to arrive before ctx's deadline. 0
// means no WAIT.
func (c *Client) waitFor(ctx context.Context) time.Duration {
	wait := c.waitStep
	if dl, ok := ctx.Deadline(); ok {
		rem := time.Until(dl)
		rem -= min(max(rem/10, 10*time.Millisecond), time.Second)
		wait = min(wait, rem)
	}
	if wait < time.Millisecond {
		return 0
	}
	return wait.Truncate(time.Millisecond)
}

// takeSlot reserves name within this Client: at once or ErrNotAcquired, or,
// when wait is set, once the current holder drops it or ctx ends.
func (c *Client) takeSlot(ctx context.Context, name string, wait bool) (*slot, error) {
	c.mu.Lock()
	s := c.slots[name]
	if s == nil {
		s = &slot{held: make(chan struct{}, 1)}
		c.slots[name] = s
	}
	s.refs++
	c.mu.Unlock()
	if !wait {
		select {
		case s.held <- struct{}{}:
			return s, nil
		default:
			c.unref(name, s)
			return nil, ErrNotAcquired
		}
	}
	select {
	case s.held <- struct{}{}:
		return s, nil
	case <-ctx.Done():
		c.unref(name, s)
		return nil, ctx.Err()
	}
}

// dropSlot frees a slot that takeSlot returned.
func (c *Client) dropSlot(name string, s *slot) {
	<-s.held
	c.unref(name, s)
}

func (c *Client) unref(name string, s *slot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.refs--; s.refs == 0 {
		delete(c.slots, name)
	}
}

// maxDelay is the longest lock-delay the server takes.
const maxDelay = time.Hour

func checkTTL(ttl time.Duration) error {
	if ttl < 0 || (ttl > 0 && ttl < time.Millisecond) {
		return ErrInvalidTTL
	}
	return nil
}

// delayMS is the Client's lock-delay in whole milliseconds, rounded up, or
// ErrInvalidDelay.
func (c *Client) delayMS() (int64, error) {
	if c.delay < 0 || c.delay > maxDelay {
		return 0, ErrInvalidDelay
	}
	return int64((c.delay + time.Millisecond - 1) / time.Millisecond), nil
}
