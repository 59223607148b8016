package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Bounds of Lock's waiting and retrying.
const (
	// maxWaitStep is the longest WAIT one LOCK asks for.
	maxWaitStep = 30 * time.Second
	// minBackoff and maxBackoff bound the pause after a -TRYAGAIN.
	minBackoff = 10 * time.Millisecond
	maxBackoff = 500 * time.Millisecond
	// cleanupTimeout bounds the UNLOCK sent after a LOCK whose outcome is
	// unknown.
	cleanupTimeout = time.Second
)

// Client takes locks on lockd as one owner. It is safe for concurrent use.
type Client struct {
	rdb      redis.UniversalClient
	owner    string
	waitStep time.Duration

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

// WithWaitStep sets the longest WAIT one LOCK of Lock asks for (at least
// 1ms). The default is 30s, or 3/4 of rdb's ReadTimeout when rdb is a
// *redis.Client with a shorter one, so that a waiting LOCK never outlasts
// go-redis's read deadline. A cancellation without a deadline is noticed when
// the current step ends.
func WithWaitStep(d time.Duration) Option {
	return func(c *Client) { c.waitStep = max(d, time.Millisecond) }
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
// down to milliseconds and renewed in the background until Unlock.
//
// When the outcome of the LOCK is unknown (a network error, ctx ending, a
// -TRYAGAIN), TryLock sends a best-effort UNLOCK before it returns the error.
func (c *Client) TryLock(ctx context.Context, name string, ttl time.Duration) (*Lock, error) {
	return c.try(ctx, mutex, name, ttl)
}

// try is TryLock for a hold of kind k.
func (c *Client) try(ctx context.Context, k kind, name string, ttl time.Duration) (*Lock, error) {
	if err := checkTTL(ttl); err != nil {
		return nil, err
	}
	key := k.slotKey(name)
	s, err := c.takeSlot(ctx, key, false)
	if err != nil {
		return nil, err
	}
	sent := time.Now()
	token, err := c.lock(ctx, k, name, ttl, 0)
	switch {
	case err == nil:
		return c.newLock(k, name, ttl, token, sent, s), nil
	case errors.Is(err, redis.Nil):
		c.dropSlot(key, s)
		return nil, ErrNotAcquired
	default:
		return nil, c.abandon(ctx, k, name, s, err, !isRefusal(err))
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
	if err := checkTTL(ttl); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := c.takeSlot(ctx, k.slotKey(name), true)
	if err != nil {
		return nil, err
	}
	backoff := minBackoff
	unsure := false  // a LOCK whose outcome is unknown was sent since the last definite answer
	refresh := false // re-take a lock granted after a long wait, to learn when its lease ends
	for {
		var wait time.Duration
		if !refresh {
			if err := ctx.Err(); err != nil {
				return nil, c.abandon(ctx, k, name, s, err, unsure)
			}
			wait = c.waitFor(ctx)
		}
		sent := time.Now()
		token, err := c.lock(ctx, k, name, ttl, wait)
		switch {
		case err == nil:
			if err := ctx.Err(); err != nil {
				return nil, c.abandon(ctx, k, name, s, err, true)
			}
			if wait > 0 && ttl > 0 && time.Since(sent) > ttl/3 {
				// The lease began somewhere between sent and now; a LOCK
				// without WAIT resets it from a known time.
				refresh = true
				continue
			}
			return c.newLock(k, name, ttl, token, sent, s), nil
		case errors.Is(err, redis.Nil):
			unsure, backoff = false, minBackoff
			if wait == 0 && !refresh {
				// ctx's deadline is too close for another WAIT.
				<-ctx.Done()
				return nil, c.abandon(ctx, k, name, s, ctx.Err(), false)
			}
			refresh = false
		case isTryAgain(err):
			unsure = true
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, c.abandon(ctx, k, name, s, ctx.Err(), unsure)
			}
			backoff = min(2*backoff, maxBackoff)
		default:
			return nil, c.abandon(ctx, k, name, s, err, !isRefusal(err))
		}
	}
}

// waitFor is the WAIT for the next LOCK of Lock: the wait step, or less to
// leave the reply time to arrive before ctx's deadline. 0 means no WAIT.
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

// lock sends k's lock command (LOCK name owner, ...) [PX ttl] [WAIT wait]:
// the token, or redis.Nil.
func (c *Client) lock(ctx context.Context, k kind, name string, ttl, wait time.Duration) (int64, error) {
	args := k.lockArgs(name, c.owner)
	if ttl > 0 {
		args = append(args, "PX", ttl.Milliseconds())
	}
	if wait > 0 {
		args = append(args, "WAIT", wait.Milliseconds())
	}
	return c.rdb.Do(ctx, args...).Int64()
}

// abandon ends a failed TryLock or Lock (of kind k): when unsure, a LOCK
// may have been granted without the reply reaching us, so it sends a
// best-effort UNLOCK (safe while this Client's slot for name is held: no
// Lock of ours has it); then it frees the slot. It returns ctx.Err() once ctx has ended, else err.
func (c *Client) abandon(ctx context.Context, k kind, name string, s *slot, err error, unsure bool) error {
	if unsure {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		c.rdb.Do(uctx, k.unlock, name, c.owner) // best effort; a lease ends on its own
		cancel()
	}
	c.dropSlot(k.slotKey(name), s)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return wrapErr(k.lock, name, err)
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

func checkTTL(ttl time.Duration) error {
	if ttl < 0 || (ttl > 0 && ttl < time.Millisecond) {
		return ErrInvalidTTL
	}
	return nil
}
