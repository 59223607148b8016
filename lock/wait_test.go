package lock

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

func waitCmd(id uint64, name, owner string, ttl, wait int64) Command {
	return Command{Op: OpLockWait, ID: id, Name: name, Owner: owner, TTL: ttl, Wait: wait}
}

func cancelCmd(id uint64, name string, target uint64) Command {
	return Command{Op: OpCancel, ID: id, Name: name, Target: target}
}

func TestWaitersAreServedFirstComeFirstServed(t *testing.T) {
	tab := NewTable()
	run(t, tab,
		at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
		at(1, 1, waitCmd(2, "a", "y", 0, 1000)).returns(res(2, Queued)),
		at(1, 2, waitCmd(3, "a", "z", 500, 1000)).returns(res(3, Queued)),
		// The release hands the lock to y at once, with a new token.
		at(1, 3, unlockCmd(4, "a", "x")).returns(res(4, 1), res(2, 2)),
	)
	wantState(t, tab, map[string]Info{"a": {Owner: "y", Token: 2, Waiters: 1}})
	run(t, tab,
		at(1, 4, unlockCmd(5, "a", "y")).returns(res(5, 1), res(3, 3)),
	)
	wantState(t, tab, map[string]Info{"a": {Owner: "z", Token: 3, Deadline: 504}})
	if n := tab.Waiting(); n != 0 {
		t.Fatalf("Waiting() = %d after every waiter was served", n)
	}
}

func TestWaiterWhoseWaitRunsOutIsAnsweredNull(t *testing.T) {
	tab := NewTable()
	run(t, tab,
		at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
		at(1, 0, waitCmd(2, "a", "y", 0, 100)).returns(res(2, Queued)),
		at(1, 99, tickCmd()).returns(),
		at(1, 100, tickCmd()).returns(res(2, 0)),
		at(1, 101, unlockCmd(3, "a", "x")).returns(res(3, 1)),
	)
	wantState(t, tab, map[string]Info{})
	// The remembered result of the queued request is its final answer.
	run(t, tab, at(1, 102, waitCmd(2, "a", "y", 0, 100)).returns(res(2, 0)))
	wantState(t, tab, map[string]Info{})
}

func TestLeaseExpiryHandsTheLockToTheFirstWaiter(t *testing.T) {
	tab := NewTable()
	run(t, tab,
		at(1, 0, lockCmd(1, "a", "x", 100)).returns(res(1, 1)),
		at(1, 10, waitCmd(2, "a", "y", 300, 50)).returns(res(2, Queued)),   // gives up at 60
		at(1, 20, waitCmd(3, "a", "z", 300, 1000)).returns(res(3, Queued)), // still waiting at 100
		at(1, 100, tickCmd()).returns(res(2, 0), res(3, 2)),
	)
	wantState(t, tab, map[string]Info{"a": {Owner: "z", Token: 2, Deadline: 400}})
}

func TestCancelTakesAWaiterOutOfTheQueue(t *testing.T) {
	tab := NewTable()
	run(t, tab,
		at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
		at(1, 0, waitCmd(2, "a", "y", 0, 1000)).returns(res(2, Queued)),
		at(1, 0, waitCmd(3, "a", "z", 0, 1000)).returns(res(3, Queued)),
		at(1, 5, cancelCmd(4, "a", 2)).returns(res(4, 0), res(2, 0)),
		at(1, 6, unlockCmd(5, "a", "x")).returns(res(5, 1), res(3, 2)),
		// Cancelling a request that was already granted changes nothing.
		at(1, 7, cancelCmd(6, "a", 3)).returns(res(6, 0)),
	)
	wantState(t, tab, map[string]Info{"a": {Owner: "z", Token: 2}})
}

func TestQueuedRequestDeliveredTwiceQueuesOnce(t *testing.T) {
	tab := NewTable()
	run(t, tab,
		at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
		at(1, 0, waitCmd(2, "a", "y", 0, 1000)).returns(res(2, Queued)),
		at(1, 1, waitCmd(2, "a", "y", 0, 1000)).returns(res(2, Queued)),
	)
	wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 1, Waiters: 1}})
	run(t, tab,
		at(1, 2, unlockCmd(3, "a", "x")).returns(res(3, 1), res(2, 2)),
		at(1, 3, waitCmd(2, "a", "y", 0, 1000)).returns(res(2, 2)),
	)
}

func TestLockWaitOnAFreeLockIsAPlainGrant(t *testing.T) {
	tab := NewTable()
	run(t, tab,
		at(1, 0, waitCmd(1, "a", "x", 0, 1000)).returns(res(1, 1)),
		at(1, 0, waitCmd(2, "a", "x", 0, 1000)).returns(res(2, 1)), // the holder again
		at(1, 0, waitCmd(3, "a", "y", 0, 0)).returns(res(3, 0)),    // no wait: refused
	)
	wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 1}})
}

func TestWaitersSurviveSnapshotAndRestore(t *testing.T) {
	src := NewTable()
	run(t, src,
		at(1, 0, lockCmd(1, "a", "x", 100)).returns(res(1, 1)),
		at(1, 0, waitCmd(2, "a", "y", 0, 50)).returns(res(2, Queued)),
		at(1, 0, waitCmd(3, "a", "z", 300, 1000)).returns(res(3, Queued)),
	)
	dst := NewTable()
	if err := dst.Restore(src.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.Snapshot(), src.Snapshot()) {
		t.Fatal("snapshot of the restored table differs")
	}
	for _, tab := range []*Table{src, dst} {
		run(t, tab, at(1, 100, tickCmd()).returns(res(2, 0), res(3, 2)))
	}
	if !bytes.Equal(dst.Snapshot(), src.Snapshot()) {
		t.Fatal("restored table diverged from the original")
	}
}

// randomWaitLog returns n entries of one term drawn from r: LOCK, LOCK ...
// WAIT, UNLOCK, CANCEL and TICK over two names and four owners, each with a
// fresh ID, stamps a few ms apart, so that requests queue, are granted,
// cancelled and run out of time.
func randomWaitLog(r *rand.Rand, n int) []entry {
	names, owners := []string{"a", "b"}, []string{"x", "y", "z", "w"}
	var log []entry
	var stamp int64
	var id uint64
	for range n {
		stamp += r.Int64N(40)
		b := Batch{Term: 1, Stamp: stamp}
		for range 1 + r.IntN(3) {
			id++
			name, owner := names[r.IntN(len(names))], owners[r.IntN(len(owners))]
			switch r.IntN(5) {
			case 0:
				b.Cmds = append(b.Cmds, lockCmd(id, name, owner, r.Int64N(200)))
			case 1:
				b.Cmds = append(b.Cmds, waitCmd(id, name, owner, r.Int64N(200), r.Int64N(300)))
			case 2:
				b.Cmds = append(b.Cmds, unlockCmd(id, name, owner))
			case 3:
				b.Cmds = append(b.Cmds, cancelCmd(id, name, uint64(1+r.Int64N(int64(id)))))
			default:
				b.Cmds = append(b.Cmds, tickCmd())
			}
		}
		log = append(log, entry{term: 1, batch: b})
	}
	return log
}

// TestWaitersAreDeterministic applies a random log with queued requests,
// cancels, releases and expiries to two tables, and to a third restored from
// a snapshot taken midway: all three end byte-identical, with the same
// results.
func TestWaitersAreDeterministic(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		log := randomWaitLog(rand.New(rand.NewPCG(seed, 7)), 400)
		a, b, c := NewTable(), NewTable(), NewTable()
		var resA, resB, resC []Result
		for i, e := range log {
			resA = a.Apply(e.term, &e.batch, resA)
			resB = b.Apply(e.term, &e.batch, resB)
			if i == len(log)/2 {
				if err := c.Restore(b.Snapshot()); err != nil {
					t.Fatal(err)
				}
			} else if i > len(log)/2 {
				resC = c.Apply(e.term, &e.batch, resC)
			}
		}
		if !bytes.Equal(a.Snapshot(), b.Snapshot()) || !bytes.Equal(a.Snapshot(), c.Snapshot()) {
			t.Fatalf("seed %d: snapshots differ", seed)
		}
		if !slices.Equal(resA, resB) || !slices.Equal(resA[len(resA)-len(resC):], resC) {
			t.Fatalf("seed %d: results differ", seed)
		}
		queued, handed := map[uint64]bool{}, 0
		for _, r := range resA {
			if r.Value == Queued {
				queued[r.ID] = true
			} else if queued[r.ID] && r.Value > 0 {
				handed++
			}
		}
		if len(queued) == 0 || handed == 0 {
			t.Fatalf("seed %d: the log queued %d requests and handed %d locks to waiters; the test tests nothing", seed, len(queued), handed)
		}
		if a.Waiting() != c.Waiting() {
			t.Fatalf("seed %d: Waiting() %d vs %d after restore", seed, a.Waiting(), c.Waiting())
		}
	}
}

// TestTimersHoldExactlyTheLeasesAndQueuedRequests applies random logs and
// checks after every entry that the lease heap and the wait set hold
// exactly the leases and queued requests there are: a wait's record leaves when the wait
// ends, whether it was granted, cancelled, ran out or its lock was released
// after it ran out.
func TestTimersHoldExactlyTheLeasesAndQueuedRequests(t *testing.T) {
	logs := []struct {
		name string
		log  func(seed uint64) []entry
	}{
		{"locks, leases and request IDs", func(seed uint64) []entry { return randomLog(rand.New(rand.NewPCG(seed, 5)), 3000) }},
		{"queued requests", func(seed uint64) []entry { return randomWaitLog(rand.New(rand.NewPCG(seed, 6)), 3000) }},
	}
	for _, l := range logs {
		for seed := range uint64(5) {
			t.Run(fmt.Sprintf("%s, seed %d", l.name, seed), func(t *testing.T) {
				tab := NewTable()
				mostLeased, mostQueued := 0, 0
				for i, e := range l.log(seed) {
					tab.Apply(e.term, &e.batch, nil)
					checkInvariants(t, tab)
					if t.Failed() {
						t.Fatalf("after entry %d %v", i, e)
					}
					mostLeased, mostQueued = max(mostLeased, len(tab.leases)), max(mostQueued, tab.Waiting())
				}
				if mostLeased == 0 || (l.name == "queued requests" && mostQueued == 0) {
					t.Errorf("at most %d leases and %d queued requests: the test tests little", mostLeased, mostQueued)
				}
			})
		}
	}
}

// TestEndedWaitsLeaveNothingBehind queues a burst of week-long waits,
// cancels half of them and grants the lock to the others in turn: once all
// have ended nothing of them is left, and no deadline is pending.
func TestEndedWaitsLeaveNothingBehind(t *testing.T) {
	const n, week = 1000, 7 * 24 * 3600 * 1000
	tab := NewTable()
	run(t, tab, at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)))
	queue, cancel := at(1, 1), at(1, 2)
	for i := range uint64(n) {
		id := 2 + i
		queue.cmds = append(queue.cmds, waitCmd(id, "a", fmt.Sprint("w", id), 0, week))
		queue.want = append(queue.want, res(id, Queued))
		if i%2 == 0 {
			cancel.cmds = append(cancel.cmds, cancelCmd(10_000+id, "a", id))
			cancel.want = append(cancel.want, res(10_000+id, 0))
		}
	}
	for _, c := range cancel.cmds {
		cancel.want = append(cancel.want, res(c.Target, 0))
	}
	run(t, tab, queue, cancel)
	if got := tab.Waiting(); got != n/2 {
		t.Fatalf("Waiting() = %d after cancelling half of %d, want %d", got, n, n/2)
	}
	owner, token := "x", int64(1)
	for i := uint64(1); i < n; i += 2 {
		id := 2 + i
		token++
		run(t, tab, at(1, 3, unlockCmd(20_000+id, "a", owner)).returns(res(20_000+id, 1), res(id, token)))
		owner = fmt.Sprint("w", id)
	}
	run(t, tab, at(1, 4, unlockCmd(30_000, "a", owner)).returns(res(30_000, 1)))
	wantState(t, tab, map[string]Info{})
	// Only the dedup window's end is left: no wait of 7 days.
	if d, ok := tab.NextDeadline(); !ok || d != 4+DedupWindow+1 {
		t.Errorf("NextDeadline() = %d, %v after every wait ended; want %d, the end of the dedup window", d, ok, 4+DedupWindow+1)
	}
	if tab.Waiting() != 0 || tab.waits.Len() != 0 {
		t.Errorf("after every wait ended: Waiting() = %d, the wait set holds %d records", tab.Waiting(), tab.waits.Len())
	}
}

// TestARequestQueuedAgainIsQueuedOnce: a request still queued whose ID was
// forgotten (its wait outlasts DedupWindow) and that arrives again with the
// same wait's end is the same request: it is not queued a second time.
func TestARequestQueuedAgainIsQueuedOnce(t *testing.T) {
	tab := NewTable()
	run(t, tab,
		at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
		at(1, 0, waitCmd(2, "a", "y", 0, 3*DedupWindow)).returns(res(2, Queued)),
		at(1, 2*DedupWindow, waitCmd(2, "a", "y", 0, DedupWindow)).returns(res(2, Queued)),
	)
	wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 1, Waiters: 1}})
	checkInvariants(t, tab)
	run(t, tab, at(1, 3*DedupWindow, tickCmd()).returns(res(2, 0)))
	wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 1}})
	checkInvariants(t, tab)
}

// Requests of one held lock whose waits end together are answered null in
// the order of the wait set (request IDs), whatever their order in the
// queue; the others keep their places, and the next release goes to the
// first of them.
func TestWaitersTimingOutTogether(t *testing.T) {
	tab := NewTable()
	run(t, tab,
		at(1, 0, lockCmd(1, "a", "x", 0), lockCmd(2, "b", "x", 0)).returns(res(1, 1), res(2, 2)),
		at(1, 1,
			waitCmd(17, "a", "w17", 0, 100), waitCmd(13, "a", "w13", 0, 100),
			waitCmd(14, "a", "stays", 0, 200), // in the middle, ends later
			waitCmd(19, "a", "w19", 0, 100), waitCmd(15, "a", "w15", 0, 100),
			waitCmd(12, "b", "wb", 0, 100), // another name, the same moment
		).returns(res(17, Queued), res(13, Queued), res(14, Queued), res(19, Queued), res(15, Queued), res(12, Queued)),
	)
	wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 1, Waiters: 5}, "b": {Owner: "x", Token: 2, Waiters: 1}})
	run(t, tab,
		at(1, 101, tickCmd()).returns(res(13, 0), res(15, 0), res(17, 0), res(19, 0), res(12, 0)),
	)
	wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 1, Waiters: 1}, "b": {Owner: "x", Token: 2}})
	if n, s := tab.Waiting(), tab.Stats(); n != 1 || s.WaitTimeouts != 5 {
		t.Fatalf("Waiting() = %d, WaitTimeouts = %d; want 1 and 5", n, s.WaitTimeouts)
	}
	run(t, tab, at(1, 102, unlockCmd(3, "a", "x")).returns(res(3, 1), res(14, 3)))
	wantState(t, tab, map[string]Info{"a": {Owner: "stays", Token: 3}, "b": {Owner: "x", Token: 2}})
}

// Many requests of one lock whose waits end together leave the queue in
// one pass. Taken out one at a time, each was searched for and the queue
// copied around it: 10,000 such waiters took 0.4 s of every node's apply,
// under the table's lock. Counted in allocations (one copy of the queue per
// waiter before), not timed.
func TestManyWaitersTimingOutTogetherLeaveInOnePass(t *testing.T) {
	const n = 2000
	tab := NewTable()
	run(t, tab, at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)))
	cmds := make([]Command, n)
	// The first queued has the highest ID, the others rising: in the wait
	// set's order each ends second in the queue, which one at a time cost a
	// new copy of the rest of the queue each.
	cmds[0] = waitCmd(1_000_000, "a", "w0", 0, 100)
	for i := 1; i < n; i++ {
		cmds[i] = waitCmd(uint64(1000+i), "a", fmt.Sprint("w", i), 0, 100)
	}
	tab.Apply(1, &Batch{Term: 1, Stamp: 1, Cmds: cmds}, nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out := tab.Apply(1, &Batch{Term: 1, Stamp: 101, Cmds: []Command{tickCmd()}}, nil)
	runtime.ReadMemStats(&after)
	if len(out) != n || tab.Waiting() != 0 {
		t.Fatalf("%d answers, %d still waiting; want %d and 0", len(out), tab.Waiting(), n)
	}
	if allocs := after.Mallocs - before.Mallocs; allocs > n/10 {
		t.Fatalf("%d waiters timing out together took %d allocations; want one pass (at most %d)", n, allocs, n/10)
	}
}

// randomCrowdLog is a log of crowds: entries of 2 to 8 LOCK ... WAIT
// requests for one of two names, with one of two waits (so that many end
// at the same moment), in scrambled ID order, among holds with and without
// leases, releases, cancels, and runs of cancels of earlier requests (some
// gone, some twice, some sent again with the same ID).
func randomCrowdLog(r *rand.Rand, n int) []entry {
	var log []entry
	var stamp int64
	ids := r.Perm(n * 20)
	next := func() uint64 { v := ids[0]; ids = ids[1:]; return 1<<40 + uint64(v) }
	var waited []uint64
	for range n {
		stamp += 1 + r.Int64N(60)
		b := Batch{Term: 1, Stamp: stamp}
		name := []string{"a", "b"}[r.IntN(2)]
		switch r.IntN(5) {
		case 4:
			for range 2 + r.IntN(7) {
				var target uint64 = 1 << 50 // nobody's
				if len(waited) > 0 && r.IntN(6) > 0 {
					target = waited[len(waited)-1-r.IntN(min(len(waited), 20))]
				}
				c := cancelCmd(next(), name, target)
				b.Cmds = append(b.Cmds, c)
				if r.IntN(6) == 0 {
					b.Cmds = append(b.Cmds, c) // the same cancel again
				}
			}
		case 0:
			b.Cmds = append(b.Cmds, lockCmd(next(), name, "holder", []int64{0, 100, 150}[r.IntN(3)]))
		case 1:
			b.Cmds = append(b.Cmds, unlockCmd(next(), name, "holder"))
		default:
			wait := []int64{100, 150}[r.IntN(2)]
			for k := range 2 + r.IntN(7) {
				c := waitCmd(next(), name, fmt.Sprint("w", k), 0, wait)
				if r.IntN(6) == 0 { // a multi-lock queued among them
					c = mlk(fmt.Sprint("m", k), 0, wait, 0, name, "c")
					c.ID = next()
				}
				waited = append(waited, c.ID)
				b.Cmds = append(b.Cmds, c)
			}
		}
		log = append(log, entry{term: 1, batch: b})
	}
	return log
}

// Ending a run of waits together, and applying a run of cancels together,
// have exactly the outcome of one by one: the same results, in the same
// order, and byte-identical tables, on crowds of waiters mixed with every
// other kind of command (multi-locks queued among them take the one-by-one
// path).
func TestRunsOfWaitsAndCancelsAsOneByOne(t *testing.T) {
	together := 0
	for seed := uint64(1); seed <= 30; seed++ {
		log := append(randomCrowdLog(rand.New(rand.NewPCG(seed, 31)), 300), randomMixedLog(seed, 300)...)
		slices.SortStableFunc(log, func(a, b entry) int { return cmp.Compare(a.batch.Stamp, b.batch.Stamp) })
		replay := func(runs bool) (*Table, []Result) {
			endWaitsTogether, cancelsTogether = runs, runs
			defer func() { endWaitsTogether, cancelsTogether = true, true }()
			tab, all := NewTable(), []Result(nil)
			for _, e := range log {
				out := tab.Apply(e.term, &e.batch, nil)
				all = append(all, out...)
				nulls := 0
				for _, r := range out {
					if r.Value == 0 {
						nulls++
					}
				}
				if runs && nulls >= 2 {
					together++
				}
			}
			return tab, all
		}
		a, ra := replay(true)
		b, rb := replay(false)
		if !slices.EqualFunc(ra, rb, func(x, y Result) bool { return x.ID == y.ID && render(x) == render(y) }) {
			t.Fatalf("seed %d: results differ from ending the waits one by one", seed)
		}
		if !bytes.Equal(a.Snapshot(), b.Snapshot()) || a.Stats() != b.Stats() {
			t.Fatalf("seed %d: tables differ from ending the waits one by one", seed)
		}
		checkInvariants(t, a)
	}
	if together < 30 {
		t.Fatalf("only %d applies answered two or more requests null: the crowds end or cancel no waits together", together)
	}
}

// Many requests of one lock cancelled in one entry (their clients gone
// together) leave the queue in one pass. One at a time, each cancel
// searched the queue and copied it around the request: 10,000 took 3.5 s
// of every node's apply. Counted in allocations, not timed.
func TestManyCancelsInOneEntryLeaveInOnePass(t *testing.T) {
	const n = 2000
	tab := NewTable()
	run(t, tab, at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)))
	waits := make([]Command, n)
	for i := range waits {
		waits[i] = waitCmd(uint64(1000+i), "a", fmt.Sprint("w", i), 0, 100_000)
	}
	tab.Apply(1, &Batch{Term: 1, Stamp: 1, Cmds: waits}, nil)
	cancels := make([]Command, n)
	for i, p := range rand.New(rand.NewPCG(1, 2)).Perm(n) {
		cancels[i] = cancelCmd(uint64(1_000_000+i), "a", uint64(1000+p))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out := tab.Apply(1, &Batch{Term: 1, Stamp: 2, Cmds: cancels}, nil)
	runtime.ReadMemStats(&after)
	if len(out) != 2*n || tab.Waiting() != 0 {
		t.Fatalf("%d results, %d still waiting; want %d and 0", len(out), tab.Waiting(), 2*n)
	}
	if allocs := after.Mallocs - before.Mallocs; allocs > n/10 {
		t.Fatalf("%d cancels in one entry took %d allocations; want one pass (at most %d)", n, allocs, n/10)
	}
	wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 1}})
}

// A request ID queued twice on one lock (sent again after the table forgot
// it, with a shorter wait) leaves the queue by each copy's own wait: the
// copy whose wait ends goes, not the first copy with that ID. Taking out the
// first copy left the second in the queue without its record, and the first
// copy's later end found nothing: index out of range, on every node.
func TestARequestQueuedTwiceLeavesByItsOwnWait(t *testing.T) {
	tab := NewTable()
	run(t, tab,
		at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
		at(1, 1, waitCmd(2, "a", "y", 0, 3*DedupWindow)).returns(res(2, Queued)),             // ends at 3 windows + 1
		at(1, 2*DedupWindow, waitCmd(2, "a", "y", 0, DedupWindow/2)).returns(res(2, Queued)), // forgotten: queued again
		at(1, 2*DedupWindow+DedupWindow/2, tickCmd()).returns(res(2, 0)),
	)
	wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 1, Waiters: 1}})
	checkInvariants(t, tab)
	run(t, tab, at(1, 3*DedupWindow+1, tickCmd()).returns(res(2, 0)))
	wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 1}})
	checkInvariants(t, tab)
}
