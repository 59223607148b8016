// Package client is a small Go client for lockd over go-redis.
//
// A Client is one owner: a random UUID (or WithOwner) sent with every
// command. TryLock sends one LOCK; Lock waits for the lock on the server
// (LOCK ... WAIT) until ctx ends, retrying -TRYAGAIN. Both return a *Lock
// with the grant's fencing token; pass Token to the resource the lock
// protects.
//
//	c := client.New(rdb)
//	l, err := c.Lock(ctx, "orders-42", 30*time.Second)
//	if err != nil {
//		return err
//	}
//	defer l.Unlock(context.WithoutCancel(ctx))
//	// work, passing l.Token() along and stopping when <-l.Lost() fires
//
// The same holds come from read/write locks (TryReadLock, ReadLock,
// TryWriteLock, WriteLock: RWLOCK ... READ|WRITE) and semaphores
// (TryAcquire, Acquire: SEMLOCK name owner limit): each returns a *Lock
// whose Unlock, Lost and renewal use that kind's commands (RWUNLOCK,
// SEMRENEW, ...).
//
// TryLockAll and LockAll take up to 64 LOCK keys at once or none (MLOCK
// numnames name ... owner, LockAll with WAIT as Lock): one *Lock per name,
// in the order given, each with its own token, renewal and Unlock, as if
// taken by TryLock; UnlockAll releases several with one MUNLOCK. A Client
// takes its per-name reservations (below) for them in name order, so calls
// of one Client that share names do not deadlock one another.
//
// WithLockDelay gives every LOCK and MLOCK the Client sends a lock-delay
// (DELAY ms, 0..1h, rounded up to milliseconds): a hold whose lease runs out
// without Unlock keeps its name from every owner that long after. Read/write
// locks and semaphores have no lock-delay.
//
// A lock taken with a positive ttl has a lease that one goroutine per Lock
// renews (RENEW PX ttl, every ttl/3, each bounded by ttl/4). The renewer
// stops at Unlock, or when the lock is lost: then Lost is closed. A lock with
// ttl 0 has no lease and no renewer. Unlock (or UnlockAll) must be called
// for every Lock, lost or not; it is the documented way to stop its
// goroutine.
//
// The server cannot tell two locks of one owner apart, so a Client lets at
// most one of its Locks hold or take a name at a time: TryLock and
// TryLockAll report ErrNotAcquired, Lock and LockAll wait for the other to
// Unlock.
//
// Errors are sentinels compared with errors.Is: ErrNotAcquired, ErrNotHeld,
// ErrTryAgain (which also wraps the server's -TRYAGAIN reply),
// ErrInvalidTTL, ErrInvalidDelay and ErrInvalidNames (the last three before
// anything is sent); ctx's error is returned as it is; other errors of
// go-redis and the server are wrapped.
//
// Timeouts: go-redis bounds reads by its ReadTimeout and, only with
// ContextTimeoutEnabled, by ctx's deadline. Lock keeps every WAIT inside
// both (see WithWaitStep), and renewal never waits on go-redis longer than
// its own bound. For TryLock and Unlock to honor ctx's deadline on a stalled
// connection, set ContextTimeoutEnabled on rdb.
//
// All methods are safe for concurrent use by any goroutine.
package client
