package client

import (
	"context"
	"strings"
	"time"
)

// TryLockAll takes every lock of names or none, in one step: one MLOCK
// numnames name ... owner PX ttl (with WithLockDelay, DELAY ms). It returns
// one Lock per name, in the order given, each with its own fencing token
// (the server grants them in that order, so the tokens increase along
// names), its own lease renewed in the background as TryLock's is, and its
// own Unlock (or release them together with UnlockAll). When any name is
// held by another owner it returns ErrNotAcquired and holds none, and so it
// does, sending nothing, when another Lock of this Client has or is taking
// one of them. names must be 1..64 distinct names, else ErrInvalidNames
// before anything is sent; ttl is as for TryLock.
//
// When the outcome of the MLOCK is unknown (a network error, ctx ending, a
// -TRYAGAIN), TryLockAll sends a best-effort MUNLOCK before it returns the
// error.
func (c *Client) TryLockAll(ctx context.Context, names []string, ttl time.Duration) ([]*Lock, error) {
	return c.tryReq(ctx, c.multi(names, ttl))
}

// LockAll takes every lock of names, waiting for all of them on the server
// (MLOCK ... WAIT ms), as Lock waits for one: in steps of at most the wait
// step, until ctx ends (a grant that arrives after that is released with
// MUNLOCK), retrying -TRYAGAIN. The server grants all names at once or none;
// while it waits, the MLOCK reserves those of its names that are or become
// free, and other owners' LOCKs of them get null or queue behind it, so
// bound the wait with ctx by the holds it may meet (see PROTOCOL.md,
// Multi-locks). Names another Lock of this Client has or is taking are
// waited for locally first, in the order of the names (not as given), so
// that two calls of one Client sharing names cannot each keep a name the
// other waits for (a call for a name its own caller keeps in another Lock
// still waits until ctx ends, as Lock does). The result and the arguments
// are as for TryLockAll.
func (c *Client) LockAll(ctx context.Context, names []string, ttl time.Duration) ([]*Lock, error) {
	return c.waitReq(ctx, c.multi(names, ttl))
}

// multi is the request of TryLockAll and LockAll: names' LOCK keys, with
// MLOCK.
func (c *Client) multi(names []string, ttl time.Duration) *request {
	return &request{c: c, k: mutex, names: append([]string(nil), names...), multi: true, ttl: ttl}
}

// UnlockAll releases locks of this Client taken with TryLock, Lock,
// TryLockAll or LockAll with one MUNLOCK: it does what Unlock does for each
// (stops its renewer, closes Lost, frees the name in the Client) but sends
// one command, so the server releases all the names in one step and the
// caller waits for one round trip instead of one per lock. It returns
// ErrNotHeld when the server held fewer of them for this owner than it was
// given, or when a Lock was unlocked before (it is skipped). locks must be
// 1..64 Locks of this Client's LOCK keys with distinct names, else it
// returns ErrInvalidNames and does nothing.
func (c *Client) UnlockAll(ctx context.Context, locks []*Lock) error {
	names := make([]string, len(locks))
	for i, l := range locks {
		if l.c != c || l.kind.lock != mutex.lock {
			return ErrInvalidNames
		}
		names[i] = l.name
	}
	if err := checkNames(names); err != nil {
		return err
	}
	var live []*Lock
	for _, l := range locks {
		if l.finish() {
			live = append(live, l)
		}
	}
	if len(live) == 0 {
		return ErrNotHeld
	}
	names = names[:0]
	for _, l := range live {
		names = append(names, l.name)
		defer c.dropSlot(l.kind.slotKey(l.name), l.slot)
	}
	n, err := c.rdb.Do(ctx, munlockArgs(names, c.owner)...).Int64()
	if err != nil {
		return wrapErr("MUNLOCK", strings.Join(names, " "), err)
	}
	if n != int64(len(locks)) {
		return ErrNotHeld
	}
	return nil
}
