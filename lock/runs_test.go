package lock

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// randomRunsLog is a log in which many requests end or are cancelled
// together: entries of up to ten commands at few distinct stamps (so that
// deadlines collide), of LOCK with and without leases and delays, UNLOCK,
// LOCK ... WAIT, MLOCK ... WAIT of one to three names in any order,
// read/write lock waits on the same names, MUNLOCK, and runs of cancels
// (of recent requests or nobody's; some cancel IDs used again, with another
// target; some a waiter's own ID; some commands twice).
func randomRunsLog(r *rand.Rand, n int) []entry {
	var log []entry
	var stamp int64
	var nextID uint64 = 1 << 40
	next := func() uint64 { nextID += 1 + uint64(r.IntN(3)); return nextID }
	names := []string{"a", "b", "c"}
	owners := []string{"x", "y", "z"}
	var waited []uint64
	var cancelIDs []uint64
	for range n {
		stamp += int64(r.IntN(3)) * 50 // many entries at the same stamp, deadlines collide
		b := Batch{Term: 1, Stamp: stamp}
		for range 1 + r.IntN(10) {
			name := names[r.IntN(3)]
			owner := owners[r.IntN(3)]
			switch r.IntN(12) {
			case 0, 1:
				c := Command{Op: OpLock, ID: next(), Name: name, Owner: owner, TTL: []int64{0, 100, 150}[r.IntN(3)]}
				if r.IntN(4) == 0 {
					c.Delay = 50
				}
				b.Cmds = append(b.Cmds, c)
			case 2:
				b.Cmds = append(b.Cmds, unlockCmd(next(), name, owner))
			case 3, 4:
				c := waitCmd(next(), name, owner, []int64{0, 100}[r.IntN(2)], []int64{100, 150}[r.IntN(2)])
				waited = append(waited, c.ID)
				b.Cmds = append(b.Cmds, c)
			case 5:
				p := r.Perm(3)[:1+r.IntN(3)]
				var ns []string
				for _, i := range p {
					ns = append(ns, names[i])
				}
				c := mlk(owner, []int64{0, 100}[r.IntN(2)], []int64{100, 150}[r.IntN(2)], 0, ns...)
				c.ID = next()
				waited = append(waited, c.ID)
				b.Cmds = append(b.Cmds, c)
			case 6:
				var c Command
				if r.IntN(2) == 0 {
					c = readCmd(next(), name, owner, 100, []int64{100, 150}[r.IntN(2)])
				} else {
					c = writeCmd(next(), name, owner, 100, []int64{100, 150}[r.IntN(2)])
				}
				waited = append(waited, c.ID)
				b.Cmds = append(b.Cmds, c)
			case 7:
				b.Cmds = append(b.Cmds, munlk(owner, names[:1+r.IntN(3)]...))
				b.Cmds[len(b.Cmds)-1].ID = next()
			default:
				// a run of cancels
				for range 1 + r.IntN(8) {
					var target uint64 = 1 << 50
					if len(waited) > 0 && r.IntN(8) > 0 {
						target = waited[len(waited)-1-r.IntN(min(len(waited), 25))]
					}
					id := next()
					if len(cancelIDs) > 0 && r.IntN(8) == 0 {
						id = cancelIDs[r.IntN(len(cancelIDs))] // a remembered cancel ID, maybe another target
					}
					if len(waited) > 0 && r.IntN(20) == 0 {
						id = waited[r.IntN(len(waited))] // a cancel reusing a waiter's ID
					}
					cancelIDs = append(cancelIDs, id)
					c := cancelCmd(id, name, target)
					b.Cmds = append(b.Cmds, c)
					if r.IntN(6) == 0 {
						b.Cmds = append(b.Cmds, c)
					}
				}
			}
		}
		log = append(log, entry{term: 1, batch: b})
	}
	return log
}

// Ending waits together and applying runs of cancels together have the
// outcome of one by one on logs of every kind of command (randomRunsLog):
// the same results entry by entry, byte-identical tables, equal statistics,
// and snapshot views taken along the way unchanged by the later applies.
func TestRunsAsOneByOneWithEveryKind(t *testing.T) {
	for seed := uint64(1); seed <= 100; seed++ {
		log := randomRunsLog(rand.New(rand.NewPCG(seed, 7)), 200)
		replay := func(runs bool) (*Table, [][]Result) {
			endWaitsTogether, cancelsTogether = runs, runs
			defer func() { endWaitsTogether, cancelsTogether = true, true }()
			tab := NewTable()
			var all [][]Result
			var views []*SnapshotView
			var enc [][]byte
			for i, e := range log {
				if i%7 == 0 {
					v := tab.View()
					views = append(views, v)
					enc = append(enc, v.Encode())
				}
				out := tab.Apply(e.term, &e.batch, nil)
				all = append(all, slices.Clone(out))
			}
			for i, v := range views {
				if !bytes.Equal(v.Encode(), enc[i]) {
					t.Fatalf("seed %d runs=%v: view %d changed after later applies", seed, runs, i)
				}
			}
			return tab, all
		}
		a, ra := replay(true)
		b, rb := replay(false)
		for i := range ra {
			if fmt.Sprint(renderResults(ra[i])) != fmt.Sprint(renderResults(rb[i])) {
				t.Fatalf("seed %d entry %d: %v\n vs one by one %v\nentry %v", seed, i, renderResults(ra[i]), renderResults(rb[i]), log[i])
			}
		}
		if !bytes.Equal(a.Snapshot(), b.Snapshot()) || a.Stats() != b.Stats() || a.Waiting() != b.Waiting() {
			t.Fatalf("seed %d: tables differ", seed)
		}
		checkInvariants(t, a)
	}
}

// renderResults is rs as ID=result strings.
func renderResults(rs []Result) []string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%d=%s", r.ID, render(r)))
	}
	return s
}

// applyAllocs applies b to tab and returns the allocations it took.
func applyAllocs(tab *Table, b *Batch) ([]Result, uint64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out := tab.Apply(1, b, nil)
	runtime.ReadMemStats(&after)
	return out, after.Mallocs - before.Mallocs
}

// Waiters of one held lock whose waits end together, with one MLOCK ... WAIT
// among them (the highest ID, so its record ends the run), leave in one pass.
func TestWaitersEndingTogetherWithAMultiLockAmongThem(t *testing.T) {
	const n = 2000
	tab := NewTable()
	run(t, tab, at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)))
	var waits []Command
	for i := range n {
		waits = append(waits, waitCmd(uint64(1000+i), "a", fmt.Sprint("w", i), 0, 100))
	}
	m := mlk("m", 0, 100, 0, "a", "c")
	m.ID = 1 << 40
	tab.Apply(1, &Batch{Term: 1, Stamp: 1, Cmds: append(waits, m)}, nil)
	out, allocs := applyAllocs(tab, &Batch{Term: 1, Stamp: 101, Cmds: []Command{tickCmd()}})
	if len(out) != n+1 || tab.Waiting() != 0 {
		t.Fatalf("%d answers, %d still waiting; want %d and 0", len(out), tab.Waiting(), n+1)
	}
	if allocs > n/10 {
		t.Fatalf("%d waiters and a multi-lock timing out together took %d allocations; want at most %d", n, allocs, n/10)
	}
}

// A run of cancels of MLOCK ... WAIT requests queued for one held lock.
func TestManyMultiLockCancelsInOneEntry(t *testing.T) {
	const n = 2000
	tab := NewTable()
	run(t, tab, at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)))
	var waits []Command
	for i := range n {
		c := mlk(fmt.Sprint("m", i), 0, 100_000, 0, "a", fmt.Sprint("c", i))
		c.ID = uint64(1000 + i)
		waits = append(waits, c)
	}
	tab.Apply(1, &Batch{Term: 1, Stamp: 1, Cmds: waits}, nil)
	cancels := make([]Command, n)
	for i := range cancels {
		cancels[i] = cancelCmd(uint64(1_000_000+i), "a", uint64(1000+n-1-i))
	}
	_, allocs := applyAllocs(tab, &Batch{Term: 1, Stamp: 2, Cmds: cancels})
	if tab.Waiting() != 0 {
		t.Fatalf("%d still waiting", tab.Waiting())
	}
	if allocs > n/10 {
		t.Fatalf("%d cancels of queued multi-locks in one entry took %d allocations; want at most %d", n, allocs, n/10)
	}
}

// BenchmarkCancelRunOfAFreeName applies 4,096 cancels of a name nobody
// holds in one entry (the first apply answers them, the later ones recall
// their IDs). cancelRun declines such a run once: asked again for each
// cancel, it counted the rest of the run each time (32.6 ms an apply
// against 1.6 ms one by one, in review).
func BenchmarkCancelRunOfAFreeName(b *testing.B) {
	const n = 4096
	tab := NewTable()
	cancels := make([]Command, n)
	for i := range cancels {
		cancels[i] = cancelCmd(uint64(1_000_000+i), "a", uint64(1000+i))
	}
	for b.Loop() {
		tab.Apply(1, &Batch{Term: 1, Stamp: 2, Cmds: cancels}, nil)
	}
}

// In a run of cancels, dropping a queued multi-lock can grant another one
// queued on the same held lock (its owner holds that lock, and the name the
// first one reserved frees for it), which then leaves that queue too: a
// later cancel of it in the run finds nothing, as one by one it would.
func TestCancelRunAfterAMultiLockGrantedMeanwhile(t *testing.T) {
	m1 := mlk("z", 0, 1000, 0, "c", "a")
	m1.ID = 101
	m2 := mlk("x", 0, 1000, 0, "c", "a")
	m2.ID = 102
	log := []step{
		at(1, 0, lockCmd(1, "a", "x", 0), lockCmd(2, "c", "y", 0)),
		at(1, 1, m1, m2),
		at(1, 2, unlockCmd(3, "c", "y")), // c is reserved for m1, which waits for a
		at(1, 3, cancelCmd(4, "a", 101), cancelCmd(5, "a", 102), cancelCmd(6, "a", 102)),
	}
	replay := func(together bool) (*Table, []string) {
		endWaitsTogether, cancelsTogether = together, together
		defer func() { endWaitsTogether, cancelsTogether = true, true }()
		tab := NewTable()
		var out []string
		for _, s := range log {
			out = append(out, renderResults(tab.Apply(s.entry(), s.batch(), nil))...)
		}
		return tab, out
	}
	a, ra := replay(true)
	b, rb := replay(false)
	if !slices.Equal(ra, rb) || !bytes.Equal(a.Snapshot(), b.Snapshot()) {
		t.Fatalf("results %v\none by one %v", ra, rb)
	}
	if info, ok := a.Get("c"); !ok || info.Owner != "x" {
		t.Fatalf("c: %+v, %v; want it granted to m2's owner x (the case this test is for)", info, ok)
	}
	checkInvariants(t, a)
}
