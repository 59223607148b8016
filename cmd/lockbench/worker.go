package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// waitTimeout is the timeout argument of WAIT in redis mode.
const waitTimeout = time.Second

// errorPause is how long a worker pauses after a failed call, so that a
// server that refuses everything (no leader, connection refused) is not
// hammered in a tight loop.
const errorPause = 5 * time.Millisecond

// compareAndDelete releases a redis lock only if the caller still owns it.
const compareAndDelete = `if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end`

// acquireResult is the answer to one acquire.
type acquireResult struct {
	granted   bool
	token     int64 // lockd and etcd: the fencing token of a grant (etcd: its revision)
	waitShort bool  // redis with WAIT: fewer replicas acknowledged than asked
}

// locker is one way of taking and releasing a lock; lockdLocker,
// redisLocker and etcdLocker are its implementations. Errors are call failures; "busy" and
// "not held" are results.
type locker interface {
	acquire(ctx context.Context, name, owner string) (acquireResult, error)
	// release reports whether the lock was still held by owner and removed.
	release(ctx context.Context, name, owner string) (released, waitShort bool, err error)
}

// lockdLocker speaks PROTOCOL.md: LOCK name owner PX ms / UNLOCK name owner.
type lockdLocker struct {
	rdb   *redis.Client
	ttlMs int64
}

func (l lockdLocker) acquire(ctx context.Context, name, owner string) (acquireResult, error) {
	token, err := l.rdb.Do(ctx, "LOCK", name, owner, "PX", l.ttlMs).Int64()
	if errors.Is(err, redis.Nil) {
		return acquireResult{}, nil
	}
	if err != nil {
		return acquireResult{}, err
	}
	if token <= 0 {
		return acquireResult{}, fmt.Errorf("LOCK returned non-positive token %d", token)
	}
	return acquireResult{granted: true, token: token}, nil
}

func (l lockdLocker) release(ctx context.Context, name, owner string) (bool, bool, error) {
	n, err := l.rdb.Do(ctx, "UNLOCK", name, owner).Int64()
	if err != nil {
		return false, false, err
	}
	return n == 1, false, nil
}

// redisLocker is the single-instance Redis recipe: SET NX PX to take, a
// compare-and-delete script to release, optionally WAIT after each write.
type redisLocker struct {
	rdb          *redis.Client
	ttlMs        int64
	sha          string // SHA1 of compareAndDelete, from SCRIPT LOAD
	waitReplicas int
}

func (l redisLocker) acquire(ctx context.Context, name, owner string) (acquireResult, error) {
	err := l.rdb.Do(ctx, "SET", name, owner, "NX", "PX", l.ttlMs).Err()
	if errors.Is(err, redis.Nil) {
		return acquireResult{}, nil
	}
	if err != nil {
		return acquireResult{}, err
	}
	short, err := l.wait(ctx)
	return acquireResult{granted: true, waitShort: short}, err
}

func (l redisLocker) release(ctx context.Context, name, owner string) (bool, bool, error) {
	n, err := l.rdb.Do(ctx, "EVALSHA", l.sha, 1, name, owner).Int64()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		n, err = l.rdb.Do(ctx, "EVAL", compareAndDelete, 1, name, owner).Int64()
	}
	if err != nil {
		return false, false, err
	}
	if n != 1 {
		return false, false, nil
	}
	short, err := l.wait(ctx)
	return true, short, err
}

// wait sends WAIT n 1000 when asked to; it reports whether fewer than n
// replicas acknowledged in time.
func (l redisLocker) wait(ctx context.Context) (bool, error) {
	if l.waitReplicas == 0 {
		return false, nil
	}
	acked, err := l.rdb.Do(ctx, "WAIT", l.waitReplicas, waitTimeout.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("WAIT: %w", err)
	}
	return acked < int64(l.waitReplicas), nil
}

// worker is one client's loop state.
type worker struct {
	l       locker
	owner   string
	names   []string // shared, read-only
	rng     *rand.Rand
	timeout time.Duration
	hist    *histShard
	c       counters
	// uncertain holds names whose last acquire or release failed: this owner
	// may still hold them, and a later LOCK would repeat the old grant with
	// its old token, which is not a regression.
	uncertain map[string]struct{}
	lastToken int64
}

// run loops until stop (or ctx ends). Operations started in [from, stop) are
// recorded. A lock granted before stop is always released (bounded by the
// call timeout), even past stop.
func (w *worker) run(ctx context.Context, from, stop time.Time) {
	for ctx.Err() == nil {
		start := time.Now()
		if !start.Before(stop) {
			return
		}
		name := w.names[w.rng.IntN(len(w.names))]
		if w.acquire(ctx, name, start, !start.Before(from)) {
			start = time.Now()
			w.release(ctx, name, start, !start.Before(from) && start.Before(stop))
		}
	}
}

// acquire takes name once and records the outcome; it reports whether the
// lock was granted (and so must be released).
func (w *worker) acquire(ctx context.Context, name string, start time.Time, measured bool) bool {
	cctx, cancel := context.WithTimeout(ctx, w.timeout)
	res, err := w.l.acquire(cctx, name, w.owner)
	cancel()
	elapsed := time.Since(start)
	if err != nil {
		w.uncertain[name] = struct{}{}
		if measured && ctx.Err() == nil {
			w.c.addError("acquire", err)
		}
		w.pause(ctx)
		return false
	}
	if res.granted {
		w.checkToken(name, res.token)
	}
	if measured {
		w.hist.record(true, elapsed)
		w.c.acquireMax = max(w.c.acquireMax, elapsed)
		if res.granted {
			w.c.granted++
		} else {
			w.c.busy++
		}
		if res.waitShort {
			w.c.waitShort++
		}
	}
	return res.granted
}

// release gives name back once and records the outcome.
func (w *worker) release(ctx context.Context, name string, start time.Time, measured bool) {
	cctx, cancel := context.WithTimeout(ctx, w.timeout)
	released, short, err := w.l.release(cctx, name, w.owner)
	cancel()
	elapsed := time.Since(start)
	if err != nil {
		w.uncertain[name] = struct{}{}
		if measured && ctx.Err() == nil {
			w.c.addError("release", err)
		}
		w.pause(ctx)
		return
	}
	if !measured {
		return
	}
	w.hist.record(false, elapsed)
	w.c.releaseMax = max(w.c.releaseMax, elapsed)
	if released {
		w.c.released++
	} else {
		w.c.releaseNotHeld++
	}
	if short {
		w.c.waitShort++
	}
}

// checkToken counts a regression when a fresh grant's fencing token is not
// larger than the previous one this worker saw. Grants happen one after the
// other in real time, so PROTOCOL.md requires them to increase; etcd's
// revisions must too (see etcdLocker). Redis mode has no tokens (always 0)
// and is never checked.
func (w *worker) checkToken(name string, token int64) {
	if token == 0 {
		return
	}
	if _, ok := w.uncertain[name]; ok {
		// Possibly a repeat of a grant whose answer was lost: same old token.
		delete(w.uncertain, name)
	} else if token <= w.lastToken {
		w.c.tokenRegressions++
	}
	w.lastToken = max(w.lastToken, token)
}

// pause waits errorPause or until ctx ends.
func (w *worker) pause(ctx context.Context) {
	t := time.NewTimer(errorPause)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
