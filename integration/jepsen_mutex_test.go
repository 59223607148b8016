package integration

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockd/lockd/integration/check"
	"github.com/redis/go-redis/v9"
)

// The multi-lock and lock-delay workloads of the Jepsen suite (PROTOCOL.md,
// MLOCK and DELAY), run alongside the lock and lease workloads under the same
// nemesis:
//   - group clients send MLOCK of two or three names of a group of four
//     (one in four with a WAIT of 50-200 ms), MUNLOCK, and LOCK, UNLOCK and
//     linearizable OWNER on single names of the group, to their home node;
//     the group moves to fresh names every mutexRotate ops. Checked with
//     check.CheckGroups (the names of one MLOCK move together), with final
//     reads after recovery, and their tokens with the others' by
//     check.CheckFencing.
//   - a lock-delay pair: one client takes LOCK name a PX 300 DELAY 700 (every
//     other round MLOCK of two names) and walks away; the other polls LOCK
//     name b (MLOCK) until it is granted; repeated on fresh names, each op on
//     a node picked at random. Checked with check.CheckLockDelay.

const (
	mutexClients   = 4
	mutexGroupSize = 4
	mutexRotate    = 300 // group ops per generation of names
	delayPX        = 300 // ms
	delayDelay     = 700 // ms
	// delayPollFor bounds how long the second client of the pair polls a
	// name before it gives up on it (a fault may stop the cluster longer).
	delayPollFor = 10 * time.Second
)

// mutexWorkload is the state the group clients and the lock-delay pair share.
type mutexWorkload struct {
	c      *cluster
	seed   int64
	nodes  int            // nodes 1..nodes serve the clients (members added later do not)
	groups *check.History // group clients' ops, for CheckGroups
	delays *check.History // the pair's ops, for CheckLockDelay

	begun   atomic.Int64 // group ops begun
	nextPID atomic.Int64 // next porcupine client id of groups
	// Counted for the report.
	waits, rounds, unheld, gaveUp atomic.Int64

	mu         sync.Mutex
	unexpected []string
}

// startMutexWorkload starts the group clients and the lock-delay pair on wg
// until ctx is done, recording on hist's clock; on a failed test their
// histories are written to dir.
func startMutexWorkload(t testing.TB, ctx context.Context, wg *sync.WaitGroup, c *cluster, hist *check.History, seed int64, dir string) *mutexWorkload {
	mw := &mutexWorkload{c: c, seed: seed, nodes: len(c.nodes), groups: hist.Sibling(), delays: hist.Sibling()}
	mw.nextPID.Store(mutexClients - 1)
	t.Cleanup(func() {
		if t.Failed() {
			writeHistory(t, filepath.Join(dir, "mutex-history.jsonl"), mw.groups.Ops())
			writeHistory(t, filepath.Join(dir, "lockdelay-history.jsonl"), mw.delays.Ops())
		}
	})
	for id := range mutexClients {
		gc := mw.newGroupClient(id)
		wg.Go(func() { defer gc.close(); gc.run(ctx) })
	}
	rdbs := map[int]*redis.Client{} // made here: the nemesis adds to c.nodes later
	for i := 1; i <= mw.nodes; i++ {
		rdbs[i] = jepsenClient(c.nodes[i].client, c.clientTLS())
	}
	wg.Go(func() { mw.runDelayPair(ctx, rdbs) })
	return mw
}

func (mw *mutexWorkload) noteUnexpected(what string, err error) {
	noteUnexpected(&mw.mu, &mw.unexpected, what, err)
}

// finish records an op's error (see settle) and returns its outcome.
func (mw *mutexWorkload) finish(p check.Pending, what string, err error) outcome {
	return settle(p, what, err, mw.noteUnexpected)
}

// groupClient is one client of the group workload, owner "m<id>".
type groupClient struct {
	mw    *mutexWorkload
	id    int
	pid   int // porcupine client id; a fresh one after each indeterminate op
	owner string
	rdb   *redis.Client         // its home node
	lin   map[int]*redis.Client // linearizable reads, per node
	rng   *rand.Rand
	held  map[string]bool // names it believes it may hold
}

func (mw *mutexWorkload) newGroupClient(id int) *groupClient {
	gc := &groupClient{
		mw: mw, id: id, pid: id, owner: fmt.Sprintf("m%d", id), lin: map[int]*redis.Client{},
		rng: rand.New(rand.NewSource(mw.seed*3571 + int64(id))), held: map[string]bool{},
		rdb: jepsenClient(mw.c.nodes[1+id%mw.nodes].client, mw.c.clientTLS()),
	}
	for i := 1; i <= mw.nodes; i++ {
		gc.lin[i] = linearizableClient(mw.c.nodes[i].client, mw.c.clientTLS())
	}
	return gc
}

func (gc *groupClient) close() {
	gc.rdb.Close()
	for _, r := range gc.lin {
		r.Close()
	}
}

// group returns the names of the current generation's group.
func (mw *mutexWorkload) group() []string {
	gen := mw.begun.Load() / mutexRotate
	names := make([]string, mutexGroupSize)
	for k := range names {
		names[k] = fmt.Sprintf("m%d-g%d-n%d", mw.seed, gen, k)
	}
	return names
}

// run sends ops until ctx is done.
func (gc *groupClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		names := gc.mw.group()
		var mine []string
		for _, n := range names {
			if gc.held[n] {
				mine = append(mine, n)
			}
		}
		var o outcome
		switch r := gc.rng.Float64(); {
		case r < 0.1:
			o = gc.read(names[gc.rng.Intn(len(names))])
		case len(mine) > 0 && r < 0.3:
			if gc.rng.Intn(2) == 0 { // sometimes with a name it does not hold
				mine = append(mine, names[gc.rng.Intn(len(names))])
				slices.Sort(mine)
				mine = slices.Compact(mine)
			}
			o = gc.munlock(mine)
		case len(mine) > 0 && r < 0.45:
			o = gc.unlock(mine[gc.rng.Intn(len(mine))])
		case r < 0.8:
			perm := gc.rng.Perm(len(names))[:2+gc.rng.Intn(2)]
			some := make([]string, len(perm))
			for i, k := range perm {
				some[i] = names[k]
			}
			o = gc.mlock(some, gc.rng.Intn(4) == 0)
		default:
			o = gc.lock(names[gc.rng.Intn(len(names))])
		}
		pause := time.Duration(5+gc.rng.Intn(20)) * time.Millisecond
		if o != outcomeOK {
			pause = time.Duration(100+gc.rng.Intn(200)) * time.Millisecond
		}
		wait(ctx, pause)
	}
}

// begin records the call of op and counts it.
func (gc *groupClient) begin(op check.Op) check.Pending {
	gc.mw.begun.Add(1)
	op.Client, op.Owner = gc.pid, gc.owner
	return gc.mw.groups.BeginOp(op)
}

// fail finishes an op that got an error; after an indeterminate op the
// client continues as a new porcupine client.
func (gc *groupClient) fail(p check.Pending, what string, err error) outcome {
	o := gc.mw.finish(p, what, err)
	if o == outcomeUnknown {
		gc.pid = int(gc.mw.nextPID.Add(1))
	}
	return o
}

func (gc *groupClient) mlock(names []string, withWait bool) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	args := []any{"MLOCK", len(names)}
	for _, n := range names {
		args = append(args, n)
	}
	args = append(args, gc.owner)
	if withWait {
		gc.mw.waits.Add(1)
		args = append(args, "WAIT", 50+gc.rng.Intn(150))
	}
	p := gc.begin(check.Op{Kind: check.KindMLock, Names: names, Wait: withWait})
	tokens, err := gc.rdb.Do(ctx, args...).Int64Slice()
	if errors.Is(err, redis.Nil) {
		p.MLocked(nil)
		return outcomeOK
	}
	if err != nil {
		o := gc.fail(p, "MLOCK", err)
		if o == outcomeUnknown {
			for _, n := range names {
				gc.held[n] = true // maybe: release them later
			}
		}
		return o
	}
	p.MLocked(tokens)
	for _, n := range names {
		gc.held[n] = true
	}
	return outcomeOK
}

func (gc *groupClient) munlock(names []string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	args := []any{"MUNLOCK", len(names)}
	for _, n := range names {
		args = append(args, n)
	}
	args = append(args, gc.owner)
	p := gc.begin(check.Op{Kind: check.KindMUnlock, Names: names})
	n, err := gc.rdb.Do(ctx, args...).Int64()
	if err != nil {
		return gc.fail(p, "MUNLOCK", err)
	}
	p.MUnlocked(int(n))
	for _, name := range names {
		delete(gc.held, name)
	}
	return outcomeOK
}

func (gc *groupClient) lock(name string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	p := gc.begin(check.Op{Kind: check.KindLock, Name: name})
	tok, err := lockCmd(ctx, gc.rdb, name, gc.owner)
	if err != nil {
		o := gc.fail(p, "LOCK", err)
		if o == outcomeUnknown {
			gc.held[name] = true
		}
		return o
	}
	p.Locked(tok)
	if tok > 0 {
		gc.held[name] = true
	}
	return outcomeOK
}

func (gc *groupClient) unlock(name string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	p := gc.begin(check.Op{Kind: check.KindUnlock, Name: name})
	n, err := gc.rdb.Do(ctx, "UNLOCK", name, gc.owner).Int64()
	if err != nil {
		return gc.fail(p, "UNLOCK", err)
	}
	p.Unlocked(n == 1)
	delete(gc.held, name)
	return outcomeOK
}

// read sends OWNER in linearizable mode to a node picked at random; a
// refused or timed-out read is dropped (see lockClient.linearizableRead).
func (gc *groupClient) read(name string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	p := gc.begin(check.Op{Kind: check.KindOwner, Name: name})
	o, err := ownerOf(ctx, gc.lin[1+gc.rng.Intn(len(gc.lin))], name)
	if err != nil {
		p.Unknown()
		if !expectedErr(err) {
			gc.mw.noteUnexpected("OWNER (linearizable)", err)
		}
		return outcomeFailed
	}
	p.Read(o)
	return outcomeOK
}

// runDelayPair repeats, on fresh names until ctx is done: client a takes
// LOCK name a PX delayPX DELAY delayDelay (every other round MLOCK 2 x y a
// PX ... DELAY ...) and walks away; client b polls LOCK name b (MLOCK 2 x y
// b) until it is granted (or delayPollFor passes). Each op goes to one of
// rdbs (a client per node) picked at random; it closes them.
func (mw *mutexWorkload) runDelayPair(ctx context.Context, rdbs map[int]*redis.Client) {
	rng := rand.New(rand.NewSource(mw.seed*7727 + 1))
	defer func() {
		for _, r := range rdbs {
			r.Close()
		}
	}()
	for round := 0; ctx.Err() == nil; round++ {
		names := []string{fmt.Sprintf("d%d-r%d", mw.seed, round)}
		if round%2 == 1 {
			names = []string{names[0] + "-x", names[0] + "-y"}
		}
		granted, err := mw.delayLock(rdbs[1+rng.Intn(len(rdbs))], 0, names, "a", true)
		switch {
		case err != nil && classify(err) == outcomeFailed:
			wait(ctx, time.Duration(100+rng.Intn(200))*time.Millisecond)
			continue
		case err == nil && !granted:
			mw.unheld.Add(1) // nobody had touched the names: a bug, reported by check
			continue
		}
		mw.rounds.Add(1)
		deadline := time.Now().Add(delayPollFor)
		for ctx.Err() == nil {
			if granted, err := mw.delayLock(rdbs[1+rng.Intn(len(rdbs))], 1, names, "b", false); err == nil && granted {
				break
			}
			if time.Now().After(deadline) {
				mw.gaveUp.Add(1)
				break
			}
			wait(ctx, time.Duration(20+rng.Intn(20))*time.Millisecond)
		}
	}
}

// delayLock sends LOCK (one name) or MLOCK (more) for owner through rdb,
// with PX delayPX DELAY delayDelay if hold, records it in the lock-delay
// history as client, and says whether it was granted.
func (mw *mutexWorkload) delayLock(rdb *redis.Client, client int, names []string, owner string, hold bool) (bool, error) {
	op := check.Op{Client: client, Kind: check.KindLock, Owner: owner}
	args := []any{"LOCK", names[0], owner}
	if len(names) > 1 {
		op.Kind, op.Names = check.KindMLock, names
		args = []any{"MLOCK", len(names)}
		for _, n := range names {
			args = append(args, n)
		}
		args = append(args, owner)
	} else {
		op.Name = names[0]
	}
	if hold {
		op.PX, op.Delay = delayPX, delayDelay
		args = append(args, "PX", delayPX, "DELAY", delayDelay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	p := mw.delays.BeginOp(op)
	cmd := rdb.Do(ctx, args...)
	if op.Kind == check.KindLock {
		tok, err := cmd.Int64()
		switch {
		case errors.Is(err, redis.Nil):
			p.Locked(0)
			return false, nil
		case err != nil:
			mw.finish(p, "LOCK", err)
			return false, err
		}
		p.Locked(tok)
		return tok > 0, nil
	}
	tokens, err := cmd.Int64Slice()
	switch {
	case errors.Is(err, redis.Nil):
		p.MLocked(nil)
		return false, nil
	case err != nil:
		mw.finish(p, "MLOCK", err)
		return false, err
	}
	p.MLocked(tokens)
	return true, nil
}

// groupNames returns every name of the group history, sorted.
func groupNames(ops []check.Op) []string {
	set := map[string]bool{}
	for _, op := range ops {
		set[op.Name] = op.Name != ""
		for _, n := range op.Names {
			set[n] = true
		}
	}
	var names []string
	for n, ok := range set {
		if ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// asLocks returns ops with each MLOCK as one LOCK per name (same times,
// outcome and token), for the cluster-wide fencing check; MUNLOCKs are left
// out (CheckFencing looks at grants only).
func asLocks(ops []check.Op) []check.Op {
	var out []check.Op
	for _, op := range ops {
		if op.Kind != check.KindMLock {
			out = append(out, op)
			continue
		}
		for i, n := range op.Names {
			l := op
			l.Kind, l.Name, l.Names, l.Tokens = check.KindLock, n, nil, nil
			if op.Tokens != nil {
				l.Token = op.Tokens[i]
			}
			out = append(out, l)
		}
	}
	return out
}

// check reads every group name once more through leader (the cluster has
// been restarted), checks both histories and their tokens along with
// others (the rest of the run's LOCKs), and reports.
func (mw *mutexWorkload) check(t testing.TB, leader *redis.Client, seed int64, timeout time.Duration, dir string, others []check.Op) {
	t.Helper()
	err := mw.groups.FinalReads(int(mw.nextPID.Add(1)), groupNames(mw.groups.Ops()), finalOwner(leader))
	if err != nil {
		t.Errorf("multi-lock final reads: %v", err)
	}
	ops, delays := mw.groups.Ops(), mw.delays.Ops()
	start := time.Now()
	gsum, err := check.CheckGroups(ops, check.GroupOptions{
		Timeout: timeout, VisualizationPath: filepath.Join(dir, "multilock.html"), RequireFinalReads: true,
	})
	if err != nil {
		t.Errorf("multi-lock: %v", err)
	}
	took := time.Since(start)
	sum, err := check.CheckLockDelay(delays)
	if err != nil {
		t.Errorf("lock-delay: %v", err)
	}
	if err := check.CheckFencing(slices.Concat(asLocks(ops), delays, others)); err != nil {
		t.Errorf("fencing with MLOCK and the lock-delay pair: %v", err)
	}
	if n := mw.unheld.Load(); n > 0 {
		t.Errorf("lock-delay: %d first LOCKs of a fresh name got null (see lockdelay-history.jsonl)", n)
	}
	if len(mw.unexpected) > 0 {
		t.Errorf("multi-lock and lock-delay clients: unexpected errors (not -TRYAGAIN, timeout or network):\n  %s", strings.Join(mw.unexpected, "\n  "))
	}

	byKind := map[string]int{}
	final := 0
	for _, op := range ops {
		if op.Final {
			final++
			continue
		}
		byKind[fmt.Sprintf("%s/%s", op.Kind, op.Status)]++
	}
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, byKind[k]))
	}
	t.Logf("REPORT seed %d: multi-lock: %d ops (+%d final reads) in %d groups (%d MLOCK sent with WAIT): %s; check took %v",
		seed, len(ops)-final, final, gsum.Groups, mw.waits.Load(), strings.Join(kinds, " "), took.Round(time.Millisecond))
	t.Logf("REPORT seed %d: multi-lock: %d null replies to LOCK and MLOCK, %d of them while an MLOCK WAIT on one of their names was in flight (allowed on a free name)",
		seed, gsum.Nulls, gsum.Reservable)
	t.Logf("REPORT seed %d: lock-delay: %d rounds of LOCK or MLOCK PX %d DELAY %d, %d ops; %d holds judged, %d grants to the other owner after them, the closest %v after the delay could end; %d polls gave up after %v",
		seed, mw.rounds.Load(), delayPX, delayDelay, len(delays), sum.Holds, sum.Grants, sum.MinMargin, mw.gaveUp.Load(), delayPollFor)
}
