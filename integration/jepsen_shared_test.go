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

// The Jepsen suite's read/write lock and semaphore workload. A few clients
// take and release read/write locks (RWLOCK READ or WRITE, no lease, a short
// WAIT now and then) on two names, a few take and release permits of two
// semaphores of limit 2 (SEMLOCK, SEMUNLOCK), and both now and then read
// RWINFO or SEMINFO in linearizable mode on a random node. Names change every
// jepsenConfig.rotate ops, as the lock workload's do. After recovery every name
// is read once more (final reads), and the history, kept apart from the lock
// workload's (the namespace is apart), is checked with porcupine against the
// model in check/sharedmodel.go: never a writer with a reader or a second
// writer, never more than 2 permits held, rising tokens, no stale INFO, every
// acknowledged grant and release durable. Its grants join the cluster-wide
// fencing check (runJepsen).
//
// A client uses one owner per mode on each read/write lock ("...-r" reads,
// "...-w" writes), so it can never hold a name in the other mode than it asks
// for, and any -ERR reply is a finding.

const (
	sharedRWClients  = 3
	sharedSemClients = 3
	sharedNames      = 2 // read/write locks, and semaphores, in use at once
	sharedSemLimit   = 2
)

// sharedWorkload is the state the read/write lock and semaphore clients share.
type sharedWorkload struct {
	c       *cluster
	hist    *check.History
	seed    int64
	rotate  int64 // ops per generation of names
	dir     string
	begun   atomic.Int64
	nextPID atomic.Int64 // next porcupine client id for a client that lost an op
	// INFO reads in linearizable mode: sent, and answered (and checked).
	infoSent, infoOK atomic.Int64

	mu         sync.Mutex
	unexpected []string // first unexpected errors, for the report
}

// startSharedWorkload starts the workload's clients on wg, recording into
// hist (a Sibling of the other workloads' histories, so the fencing check can
// compare their times); they stop when ctx is done. On a failed test the
// history is kept in dir (shared-history.jsonl).
func startSharedWorkload(t testing.TB, ctx context.Context, wg *sync.WaitGroup, c *cluster, cfg jepsenConfig, dir string, hist *check.History) *sharedWorkload {
	sw := &sharedWorkload{c: c, hist: hist, seed: cfg.seed, rotate: cfg.rotate, dir: dir}
	n := sharedRWClients + sharedSemClients
	sw.nextPID.Store(int64(n - 1))
	for id := range n {
		sc := sw.newClient(id, id >= sharedRWClients)
		wg.Go(func() { defer sc.close(); sc.run(ctx) })
	}
	t.Cleanup(func() {
		if t.Failed() {
			writeHistory(t, filepath.Join(dir, "shared-history.jsonl"), sw.hist.Ops())
		}
	})
	return sw
}

func (sw *sharedWorkload) noteUnexpected(what string, err error) {
	noteUnexpected(&sw.mu, &sw.unexpected, what, err)
}

// name returns one of the current generation's read/write lock (or semaphore) names.
func (sw *sharedWorkload) name(rng *rand.Rand, sem bool) string {
	return fmt.Sprintf("%s-g%d-k%d", sw.prefix(sem), sw.begun.Load()/sw.rotate, rng.Intn(sharedNames))
}

func (sw *sharedWorkload) prefix(sem bool) string {
	if sem {
		return fmt.Sprintf("sem%d", sw.seed)
	}
	return fmt.Sprintf("rw%d", sw.seed)
}

// current says whether name belongs to the current generation.
func (sw *sharedWorkload) current(name string) bool {
	return strings.Contains(name, fmt.Sprintf("-g%d-", sw.begun.Load()/sw.rotate))
}

// sharedClient is one client: of read/write locks, or of semaphores (sem). It
// sends its grants and releases to its home node and its INFO reads, in
// linearizable mode, to a node picked at random.
type sharedClient struct {
	sw   *sharedWorkload
	id   int
	pid  int // porcupine client id; a fresh one after each indeterminate op
	sem  bool
	home int
	nodeConns
	rng  *rand.Rand
	held map[sharedHold]bool // holds this client may have
}

// sharedHold is a hold one of a client's owners may have: on a read/write
// lock, its writer or its reader; on a semaphore, its one owner (write false).
type sharedHold struct {
	name  string
	write bool
}

func (sw *sharedWorkload) newClient(id int, sem bool) *sharedClient {
	sc := &sharedClient{
		sw: sw, id: id, pid: id, sem: sem, home: 1 + id%len(sw.c.nodes),
		nodeConns: dialNodes(sw.c),
		rng:       rand.New(rand.NewSource(sw.seed*3571 + int64(id))), held: map[sharedHold]bool{},
	}
	return sc
}

func (sc *sharedClient) owner(h sharedHold) string {
	switch {
	case sc.sem:
		return fmt.Sprintf("sem-c%d", sc.id)
	case h.write:
		return fmt.Sprintf("rw-c%d-w", sc.id)
	}
	return fmt.Sprintf("rw-c%d-r", sc.id)
}

// run sends ops until ctx is done.
func (sc *sharedClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		name := sc.sw.name(sc.rng, sc.sem)
		var mine []sharedHold // holds on name this client may have
		if sc.rng.Intn(3) > 0 {
			// Mostly work on a name this client holds, so holds change hands.
			for _, h := range slices.SortedFunc(maps.Keys(sc.held), func(a, b sharedHold) int { return strings.Compare(a.name, b.name) }) {
				if sc.sw.current(h.name) {
					name = h.name
					break
				}
			}
		}
		for h := range sc.held {
			if h.name == name {
				mine = append(mine, h)
			}
		}
		var o outcome
		switch r := sc.rng.Float64(); {
		case r < 0.1:
			o = sc.info(name)
		case len(mine) > 0 && r < 0.75:
			o = sc.unlock(mine[sc.rng.Intn(len(mine))])
		default:
			o = sc.lock(sharedHold{name: name, write: !sc.sem && sc.rng.Intn(3) == 0})
		}
		pause := time.Duration(5+sc.rng.Intn(20)) * time.Millisecond
		if o != outcomeOK {
			pause = time.Duration(100+sc.rng.Intn(200)) * time.Millisecond
		}
		wait(ctx, pause)
	}
}

// finish records an op's error and returns its outcome; after an
// indeterminate op the client continues as a new porcupine client.
func (sc *sharedClient) finish(p check.Pending, what string, err error) outcome {
	o := settle(p, what, err, sc.sw.noteUnexpected)
	if o == outcomeUnknown {
		sc.pid = int(sc.sw.nextPID.Add(1))
	}
	return o
}

// lock sends RWLOCK name owner READ|WRITE or SEMLOCK name owner 2, with a
// short WAIT one time in four.
func (sc *sharedClient) lock(h sharedHold) outcome {
	op := check.Op{Client: sc.pid, Kind: check.KindRWLock, Name: h.name, Owner: sc.owner(h), Write: h.write}
	args := []any{"RWLOCK", h.name, op.Owner, "READ"}
	switch {
	case sc.sem:
		op.Kind, op.Limit = check.KindSemLock, sharedSemLimit
		args = []any{"SEMLOCK", h.name, op.Owner, sharedSemLimit}
	case h.write:
		args[3] = "WRITE"
	}
	if sc.rng.Intn(4) == 0 {
		op.Wait = true
		args = append(args, "WAIT", 50+sc.rng.Intn(250))
	}
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	sc.sw.begun.Add(1)
	p := sc.sw.hist.BeginOp(op)
	tok, err := sc.rdbs[sc.home].Do(ctx, args...).Int64()
	if errors.Is(err, redis.Nil) {
		tok, err = 0, nil
	}
	if err != nil {
		o := sc.finish(p, op.Kind.String(), err)
		if o == outcomeUnknown {
			sc.held[h] = true // maybe: try to release it later
		}
		return o
	}
	p.Locked(tok)
	if tok > 0 {
		sc.held[h] = true
	} else {
		delete(sc.held, h) // a holder would have been granted again
	}
	return outcomeOK
}

func (sc *sharedClient) unlock(h sharedHold) outcome {
	kind, cmd := check.KindRWUnlock, "RWUNLOCK"
	if sc.sem {
		kind, cmd = check.KindSemUnlock, "SEMUNLOCK"
	}
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	sc.sw.begun.Add(1)
	owner := sc.owner(h)
	p := sc.sw.hist.Begin(sc.pid, kind, h.name, owner)
	n, err := sc.rdbs[sc.home].Do(ctx, cmd, h.name, owner).Int64()
	if err != nil {
		return sc.finish(p, cmd, err)
	}
	p.Unlocked(n == 1)
	delete(sc.held, h)
	return outcomeOK
}

// info sends RWINFO or SEMINFO in linearizable mode to a node picked at
// random; a refused or timed-out read is dropped (recorded indeterminate).
func (sc *sharedClient) info(name string) outcome {
	sw := sc.sw
	node := 1 + sc.rng.Intn(len(sc.lin))
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	sw.begun.Add(1)
	sw.infoSent.Add(1)
	kind := infoKind(sc.sem)
	p := sw.hist.Begin(sc.pid, kind, name, "")
	holders, err := sharedInfo(ctx, sc.lin[node], kind, name)
	if err != nil {
		p.Unknown()
		if !expectedErr(err) {
			sw.noteUnexpected(kind.String()+" (linearizable)", err)
		}
		return outcomeFailed
	}
	sw.infoOK.Add(1)
	p.Info(holders)
	return outcomeOK
}

func infoKind(sem bool) check.Kind {
	if sem {
		return check.KindSemInfo
	}
	return check.KindRWInfo
}

// sharedInfo sends RWINFO or SEMINFO name and reads its holders: each
// [owner, mode, token, ttl_ms], or [owner, token, ttl_ms] for a semaphore.
func sharedInfo(ctx context.Context, rdb *redis.Client, kind check.Kind, name string) ([]check.Holder, error) {
	v, err := rdb.Do(ctx, kind.String(), name).Slice()
	if err != nil {
		return nil, err
	}
	holders := make([]check.Holder, 0, len(v))
	for _, e := range v {
		f, ok := e.([]any)
		want := 4
		if kind == check.KindSemInfo {
			want = 3
		}
		if !ok || len(f) != want {
			return nil, fmt.Errorf("%s %s: entry %v is not %d fields", kind, name, e, want)
		}
		var h check.Holder
		owner, ok1 := f[0].(string)
		token, ok2 := f[want-2].(int64)
		ttl, ok3 := f[want-1].(int64)
		if want == 4 {
			mode, _ := f[1].(string)
			ok1 = ok1 && (mode == "read" || mode == "write")
			h.Write = mode == "write"
		}
		if !ok1 || !ok2 || !ok3 || ttl != -1 {
			return nil, fmt.Errorf("%s %s: entry %v is not an owner, a mode (RWINFO), a token and ttl -1 (no lease was taken)", kind, name, e)
		}
		h.Owner, h.Token = owner, token
		holders = append(holders, h)
	}
	return holders, nil
}

// verify reads every name once more through leader (after recovery, with
// every node converged), checks the history and logs the REPORT lines.
func (sw *sharedWorkload) verify(t testing.TB, leader *redis.Client, linTimeout time.Duration) {
	t.Helper()
	names := map[check.Kind][]string{}
	for _, n := range usedNames(sw.hist.Ops()) {
		k := infoKind(strings.HasPrefix(n, "sem"))
		names[k] = append(names[k], n)
	}
	for _, k := range []check.Kind{check.KindRWInfo, check.KindSemInfo} {
		err := sw.hist.FinalInfo(int(sw.nextPID.Add(1)), k, names[k], func(name string) ([]check.Holder, error) {
			var err error
			for range 5 {
				ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
				var hs []check.Holder
				hs, err = sharedInfo(ctx, leader, k, name)
				cancel()
				if err == nil {
					return hs, nil
				}
			}
			return nil, err
		})
		if err != nil {
			t.Errorf("read/write lock and semaphore final reads: %v", err)
		}
	}
	ops := sw.hist.Ops()
	start := time.Now()
	err := check.CheckLinearizable(ops, check.LinearizabilityOptions{
		Timeout:           linTimeout,
		VisualizationPath: filepath.Join(sw.dir, "shared-linearizability.html"),
		RequireFinalReads: true,
	})
	sw.report(t, ops, time.Since(start))
	if err != nil {
		t.Errorf("read/write locks and semaphores: %v", err)
	}
	if len(sw.unexpected) > 0 {
		t.Errorf("read/write locks and semaphores: unexpected errors (not -TRYAGAIN, timeout or network):\n  %s", strings.Join(sw.unexpected, "\n  "))
	}
}

// report logs the numbers of the workload.
func (sw *sharedWorkload) report(t testing.TB, ops []check.Op, took time.Duration) {
	t.Helper()
	byKind := map[string]int{}
	unknownByName := map[string]int{}
	var final, indeterminate, waits, shared, full int
	for _, op := range ops {
		if op.Final {
			final++
			continue
		}
		key := fmt.Sprintf("%s/%s", op.Kind, op.Status)
		if op.Kind == check.KindRWLock && op.Write {
			key = "RWLOCK-WRITE/" + op.Status.String()
		}
		byKind[key]++
		if op.Status == check.StatusUnknown && op.Kind != check.KindRWInfo && op.Kind != check.KindSemInfo {
			indeterminate++
			unknownByName[op.Name]++
		}
		if op.Wait && op.Status == check.StatusOK {
			waits++
		}
		if op.Status == check.StatusOK && op.Holders != "" {
			switch n := strings.Count(op.Holders, " ") + 1; {
			case op.Kind == check.KindRWInfo && n > 1:
				shared++
			case op.Kind == check.KindSemInfo && n == sharedSemLimit:
				full++
			}
		}
	}
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, byKind[k]))
	}
	t.Logf("REPORT seed %d: read/write locks and semaphores: %d ops checked (+%d final reads) on %d names: %s",
		sw.seed, len(ops)-final, final, len(usedNames(ops)), strings.Join(kinds, " "))
	t.Logf("REPORT seed %d: read/write locks and semaphores: indeterminate grants and releases %d (at most %d on one name); WAIT ops answered %d; linearizable INFO reads %d sent, %d answered (checked), %d showing 2+ readers, %d showing a full semaphore; check took %v",
		sw.seed, indeterminate, slices.Max(append(slices.Collect(maps.Values(unknownByName)), 0)), waits,
		sw.infoSent.Load(), sw.infoOK.Load(), shared, full, took.Round(time.Millisecond))
}
