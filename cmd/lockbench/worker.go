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

// pipeliner is a locker that can send many acquires, or many releases, in
// one round trip (a go-redis pipeline, for -pipeline > 1); lockdLocker and
// redisLocker are pipeliners. Each name gets its own outcome, as if it had
// been sent alone: res[i] or released[i] when errs[i] is nil. names are
// distinct; the result slices are as long as names.
type pipeliner interface {
	acquireAll(ctx context.Context, names []string, owner string, res []acquireResult, errs []error)
	releaseAll(ctx context.Context, names []string, owner string, released []bool, errs []error)
}

// lockdLocker speaks PROTOCOL.md: LOCK name owner PX ms / UNLOCK name owner.
type lockdLocker struct {
	rdb   *redis.Client
	ttlMs int64
}

func (l lockdLocker) acquire(ctx context.Context, name, owner string) (acquireResult, error) {
	return lockReply(l.rdb.Do(ctx, "LOCK", name, owner, "PX", l.ttlMs).Int64())
}

func (l lockdLocker) release(ctx context.Context, name, owner string) (bool, bool, error) {
	released, err := unlockReply(l.rdb.Do(ctx, "UNLOCK", name, owner).Int64())
	return released, false, err
}

func (l lockdLocker) acquireAll(ctx context.Context, names []string, owner string, res []acquireResult, errs []error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(names))
	for i, name := range names {
		cmds[i] = pipe.Do(ctx, "LOCK", name, owner, "PX", l.ttlMs)
	}
	_, _ = pipe.Exec(ctx) // Exec's error is the first command's; each is read below
	for i, cmd := range cmds {
		res[i], errs[i] = lockReply(cmd.Int64())
	}
}

func (l lockdLocker) releaseAll(ctx context.Context, names []string, owner string, released []bool, errs []error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(names))
	for i, name := range names {
		cmds[i] = pipe.Do(ctx, "UNLOCK", name, owner)
	}
	_, _ = pipe.Exec(ctx)
	for i, cmd := range cmds {
		released[i], errs[i] = unlockReply(cmd.Int64())
	}
}

// lockReply interprets the answer to LOCK: a positive token is a grant, a
// null is "busy".
func lockReply(token int64, err error) (acquireResult, error) {
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

// unlockReply interprets the answer to UNLOCK or to the compare-and-delete
// script: 1 is released, anything else "not held".
func unlockReply(n int64, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	return n == 1, nil
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
	res, err := setReply(l.rdb.Do(ctx, "SET", name, owner, "NX", "PX", l.ttlMs).Err())
	if err != nil || !res.granted {
		return res, err
	}
	res.waitShort, err = l.wait(ctx)
	return res, err
}

func (l redisLocker) release(ctx context.Context, name, owner string) (bool, bool, error) {
	n, err := l.rdb.Do(ctx, "EVALSHA", l.sha, 1, name, owner).Int64()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		n, err = l.rdb.Do(ctx, "EVAL", compareAndDelete, 1, name, owner).Int64()
	}
	released, err := unlockReply(n, err)
	if err != nil || !released {
		return false, false, err
	}
	short, err := l.wait(ctx)
	return true, short, err
}

// acquireAll and releaseAll serve -pipeline, which config.validate allows
// only without -wait-replicas: they never send WAIT.
func (l redisLocker) acquireAll(ctx context.Context, names []string, owner string, res []acquireResult, errs []error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(names))
	for i, name := range names {
		cmds[i] = pipe.Do(ctx, "SET", name, owner, "NX", "PX", l.ttlMs)
	}
	_, _ = pipe.Exec(ctx) // Exec's error is the first command's; each is read below
	for i, cmd := range cmds {
		res[i], errs[i] = setReply(cmd.Err())
	}
}

// releaseAll sends the compare-and-delete script by SHA for every name in
// one pipeline and, like release, falls back to EVAL (in a second pipeline)
// for those answered NOSCRIPT (a server restarted or flushed since setup's
// SCRIPT LOAD).
func (l redisLocker) releaseAll(ctx context.Context, names []string, owner string, released []bool, errs []error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(names))
	for i, name := range names {
		cmds[i] = pipe.Do(ctx, "EVALSHA", l.sha, 1, name, owner)
	}
	_, _ = pipe.Exec(ctx)
	var again []int // indexes answered NOSCRIPT
	for i, cmd := range cmds {
		n, err := cmd.Int64()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			again = append(again, i)
			continue
		}
		released[i], errs[i] = unlockReply(n, err)
	}
	if len(again) == 0 {
		return
	}
	pipe = l.rdb.Pipeline()
	for _, i := range again {
		cmds[i] = pipe.Do(ctx, "EVAL", compareAndDelete, 1, names[i], owner)
	}
	_, _ = pipe.Exec(ctx)
	for _, i := range again {
		released[i], errs[i] = unlockReply(cmds[i].Int64())
	}
}

// setReply interprets the answer to SET NX PX (its error): OK is a grant
// (redis has no token), a null is "busy".
func setReply(err error) (acquireResult, error) {
	if errors.Is(err, redis.Nil) {
		return acquireResult{}, nil
	}
	if err != nil {
		return acquireResult{}, err
	}
	return acquireResult{granted: true}, nil
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

	// -pipeline > 1: p is l as a pipeliner, and pipeline the number of
	// acquires sent together. p is nil for one command per round trip.
	p        pipeliner
	pipeline int
	picked   map[int]struct{} // scratch of pickDistinct
}

// run loops until stop (or ctx ends). Operations started in [from, stop) are
// recorded. A lock granted before stop is always released (bounded by the
// call timeout), even past stop.
func (w *worker) run(ctx context.Context, from, stop time.Time) {
	if w.p != nil {
		w.runPipelined(ctx, from, stop)
		return
	}
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
		w.failed(ctx, "acquire", name, err, measured)
		w.pause(ctx)
		return false
	}
	if res.granted {
		w.checkToken(name, res.token, w.lastToken)
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
		w.failed(ctx, "release", name, err, measured)
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
// larger than floor, the largest token this worker saw in grants that were
// answered before this one was asked for. lockd's tokens are larger than
// every token granted before (README), so grants that follow each other in
// real time must increase; etcd's revisions must too (see etcdLocker). Redis
// mode has no tokens (always 0) and is never checked.
//
// One command at a time, floor is the previous grant's token. In a pipeline
// the grants are concurrent: tokens of different names in one pipeline are
// not ordered among themselves, but each must exceed every token of the
// worker's earlier pipelines, so floor is lastToken as it was before the
// pipeline was sent.
func (w *worker) checkToken(name string, token, floor int64) {
	if token == 0 {
		return
	}
	if _, ok := w.uncertain[name]; ok {
		// Possibly a repeat of a grant whose answer was lost: same old token.
		delete(w.uncertain, name)
	} else if token <= floor {
		w.c.tokenRegressions++
	}
	w.lastToken = max(w.lastToken, token)
}

// runPipelined is run for -pipeline > 1: each round picks w.pipeline
// distinct names, sends their acquires in one pipeline and then the releases
// of the granted ones in another. Counting is per command, as in run; every
// answered command of a pipeline is recorded with the pipeline's round-trip
// time as its latency. After a round with any failed command the worker
// pauses once.
func (w *worker) runPipelined(ctx context.Context, from, stop time.Time) {
	n := w.pipeline
	names := make([]string, n)
	res := make([]acquireResult, n)
	errs := make([]error, n)
	granted := make([]string, 0, n)
	released := make([]bool, n)
	for ctx.Err() == nil {
		start := time.Now()
		if !start.Before(stop) {
			return
		}
		w.pickDistinct(names)
		failed := w.acquireAll(ctx, names, res, errs, start, !start.Before(from))
		granted = granted[:0]
		for i, name := range names {
			if errs[i] == nil && res[i].granted {
				granted = append(granted, name)
			}
		}
		if len(granted) > 0 {
			start = time.Now()
			k := len(granted)
			if w.releaseAll(ctx, granted, released[:k], errs[:k], start, !start.Before(from) && start.Before(stop)) {
				failed = true
			}
		}
		if failed {
			w.pause(ctx)
		}
	}
}

// failed records a call on name that failed: its lock state is now unknown,
// and the error counts when measured and the run is not ending.
func (w *worker) failed(ctx context.Context, op, name string, err error, measured bool) {
	w.uncertain[name] = struct{}{}
	if measured && ctx.Err() == nil {
		w.c.addError(op, err)
	}
}

// acquireAll takes names in one pipeline and records each outcome as acquire
// does; res[i] is names[i]'s answer when errs[i] is nil. It reports whether
// any command failed.
func (w *worker) acquireAll(ctx context.Context, names []string, res []acquireResult, errs []error, start time.Time, measured bool) (failed bool) {
	cctx, cancel := context.WithTimeout(ctx, w.timeout)
	w.p.acquireAll(cctx, names, w.owner, res, errs)
	cancel()
	elapsed := time.Since(start)
	floor := w.lastToken // the grants below are concurrent: see checkToken
	var answered int64
	for i, name := range names {
		if err := errs[i]; err != nil {
			failed = true
			w.failed(ctx, "acquire", name, err, measured)
			continue
		}
		answered++
		r := res[i]
		if r.granted {
			w.checkToken(name, r.token, floor)
		}
		if !measured {
			continue
		}
		if r.granted {
			w.c.granted++
		} else {
			w.c.busy++
		}
		if r.waitShort {
			w.c.waitShort++
		}
	}
	if measured && answered > 0 {
		w.hist.recordN(true, elapsed, answered)
		w.c.acquireMax = max(w.c.acquireMax, elapsed)
	}
	return failed
}

// releaseAll gives names back in one pipeline and records each outcome as
// release does (errs is scratch); it reports whether any command failed.
func (w *worker) releaseAll(ctx context.Context, names []string, released []bool, errs []error, start time.Time, measured bool) (failed bool) {
	cctx, cancel := context.WithTimeout(ctx, w.timeout)
	w.p.releaseAll(cctx, names, w.owner, released, errs)
	cancel()
	elapsed := time.Since(start)
	var answered int64
	for i, name := range names {
		if err := errs[i]; err != nil {
			failed = true
			w.failed(ctx, "release", name, err, measured)
			continue
		}
		answered++
		if !measured {
			continue
		}
		if released[i] {
			w.c.released++
		} else {
			w.c.releaseNotHeld++
		}
	}
	if measured && answered > 0 {
		w.hist.recordN(false, elapsed, answered)
		w.c.releaseMax = max(w.c.releaseMax, elapsed)
	}
	return failed
}

// pickDistinct fills out with len(out) distinct names drawn uniformly at
// random (Robert Floyd's sampling), in random order; len(out) <= len(w.names).
func (w *worker) pickDistinct(out []string) {
	n, k := len(w.names), len(out)
	if w.picked == nil {
		w.picked = make(map[int]struct{}, k)
	}
	clear(w.picked)
	for i, j := 0, n-k; j < n; i, j = i+1, j+1 {
		t := w.rng.IntN(j + 1)
		if _, dup := w.picked[t]; dup {
			t = j // j was not drawable before this step, so it is new
		}
		w.picked[t] = struct{}{}
		out[i] = w.names[t]
	}
	w.rng.Shuffle(k, func(a, b int) { out[a], out[b] = out[b], out[a] })
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
