package lock

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomMixedLog interleaves, by stamp, a random log of LOCK, MLOCK,
// lock-delays, SET and DEL (randomMutexLog) with one of read/write locks
// and semaphores (randomSharedLog) whose names are the same strings, so that
// the two namespaces share names, deadlines and the one expiry order. The
// shared log's request IDs (and cancel targets) are moved past the mutex
// log's.
func randomMixedLog(seed uint64, n int) []entry {
	mutex := randomMutexLog(rand.New(rand.NewPCG(seed, 21)), n)
	shared := randomSharedLog(rand.New(rand.NewPCG(seed, 22)), n)
	rename := map[string]string{"r1": "a", "r2": "b", "s1": "c", "s2": "d"}
	for _, e := range shared {
		for i := range e.batch.Cmds {
			c := &e.batch.Cmds[i]
			if c.ID != 0 {
				c.ID += 1 << 32
			}
			if c.Target != 0 {
				c.Target += 1 << 32
			}
			if r, ok := rename[c.Name]; ok {
				c.Name = r
			}
		}
	}
	log := append(mutex, shared...)
	slices.SortStableFunc(log, func(a, b entry) int { return cmp.Compare(a.batch.Stamp, b.batch.Stamp) })
	return log
}

// replayThree applies log to two tables, and to a third restored from a
// snapshot of the second taken midway, checking the invariants after every
// entry of the first and third; each, when set, sees the first table and its
// results after every entry. The three must end byte-identical, with the
// same results. It returns the first table.
func replayThree(t *testing.T, seed uint64, log []entry, each func(a *Table, ra []Result)) *Table {
	t.Helper()
	a, b, c := NewTable(), NewTable(), NewTable()
	var resA, resB, resC []string
	rendered := func(dst []string, rs []Result) []string {
		for _, r := range rs {
			dst = append(dst, fmt.Sprintf("%d=%s", r.ID, render(r)))
		}
		return dst
	}
	for i, e := range log {
		ra := a.Apply(e.term, &e.batch, nil)
		resA = rendered(resA, ra)
		resB = rendered(resB, b.Apply(e.term, &e.batch, nil))
		checkInvariants(t, a)
		if i == len(log)/2 {
			if err := c.Restore(b.Snapshot()); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		} else if i > len(log)/2 {
			resC = rendered(resC, c.Apply(e.term, &e.batch, nil))
			checkInvariants(t, c)
		}
		if each != nil {
			each(a, ra)
		}
	}
	if !bytes.Equal(a.Snapshot(), b.Snapshot()) || !bytes.Equal(a.Snapshot(), c.Snapshot()) {
		t.Fatalf("seed %d: snapshots differ", seed)
	}
	if !slices.Equal(resA, resB) || !slices.Equal(resA[len(resA)-len(resC):], resC) {
		t.Fatalf("seed %d: results differ", seed)
	}
	return a
}

// TestEveryKindIsDeterministic: LOCK keys, multi-locks, lock-delays,
// read/write locks and semaphores of the same names in one table. Two
// tables, and a third restored from a snapshot taken midway, return the same
// results and end byte-identical; the invariants hold after every entry;
// once every lease, wait and delay has run out nothing is left queued,
// blocked or held by a shared lock with a lease.
func TestEveryKindIsDeterministic(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		log := randomMixedLog(seed, 300)
		a := replayThree(t, seed, log, nil)
		a.Apply(1, &Batch{Term: 1, Stamp: log[len(log)-1].batch.Stamp + 1_000_000}, nil)
		checkInvariants(t, a)
		if a.Waiting() != 0 || len(a.blocked) != 0 {
			t.Errorf("seed %d: %d requests waiting and %d names blocked after every wait and delay ran out", seed, a.Waiting(), len(a.blocked))
		}
		for name, s := range a.sharedLocks {
			for _, h := range s.holders {
				if h.deadline != 0 {
					t.Errorf("seed %d: %s still held by %s with a lease past its end", seed, name, h.owner)
				}
			}
		}
	}
}
