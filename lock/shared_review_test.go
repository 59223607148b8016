package lock

import (
	"fmt"
	"testing"
	"time"
)

// TestSnapshotOfManySharedHoldsRestores: a table with more than 65,536
// read/write lock names or waiters of one name (which no limit bounds)
// writes a snapshot that Restore must read back. (Readers of one name have
// the same bound, but granting 65,537 of them one by one takes 80 s under
// -race: holderIndex is linear.)
func TestSnapshotOfManySharedHoldsRestores(t *testing.T) {
	const n = 1<<16 + 2
	cases := []struct {
		name string
		cmd  func(i int) Command
	}{
		{"names", func(i int) Command { return readCmd(0, fmt.Sprint("r", i), "a", 0, 0) }},
		{"waiters of one name", func(i int) Command {
			if i == 0 {
				return writeCmd(0, "r", "w", 0, 0)
			}
			return readCmd(uint64(i), "r", fmt.Sprint("a", i), 0, 60_000)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab := NewTable()
			cmds := make([]Command, n)
			for i := range cmds {
				cmds[i] = tc.cmd(i)
			}
			tab.Apply(1, &Batch{Term: 1, Cmds: cmds}, nil)
			data := tab.View().Encode()
			if err := NewTable().Restore(data); err != nil {
				t.Fatalf("Restore of the table's own snapshot: %v", err)
			}
		})
	}
}

// TestWaitRecordsOfTheTwoNamespacesStayApart: a LOCK ... WAIT and an
// RWLOCK ... WAIT on the same name with the same ID and wait deadline (an
// ID a peer sends again once the table has forgotten it) are two requests
// in two queues, and their waits end without a panic or a hang. The wait
// set orders records by (at, name, id) only, so today the second request
// overwrites the first one's record and its shared flag: expire then takes
// the record down the wrong path.
func TestWaitRecordsOfTheTwoNamespacesStayApart(t *testing.T) {
	cases := []struct {
		name  string
		first []Command // at stamp 0: each namespace's name held, and request 2 queued in one
		again Command   // at stamp 40,000, past the dedup window: ID 2 again, the same deadline
	}{
		{"shared first, then LOCK",
			[]Command{writeCmd(1, "n", "w", 0, 0), readCmd(2, "n", "a", 0, 100_000), lockCmd(3, "n", "b", 0)},
			waitCmd(2, "n", "c", 0, 60_000)},
		{"LOCK first, then shared",
			[]Command{lockCmd(1, "n", "b", 0), waitCmd(2, "n", "c", 0, 100_000), writeCmd(3, "n", "w", 0, 0)},
			readCmd(2, "n", "a", 0, 60_000)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab := NewTable()
			tab.Apply(1, &Batch{Term: 1, Stamp: 0, Cmds: tc.first}, nil)
			tab.Apply(1, &Batch{Term: 1, Stamp: 40_000, Cmds: []Command{tc.again}}, nil)
			done := make(chan any, 1)
			go func() { // ends with Apply; if expire loops for ever, it never does (the test has failed then)
				defer func() { done <- recover() }()
				tab.Apply(1, &Batch{Term: 1, Stamp: 100_000, Cmds: []Command{tickCmd()}}, nil)
			}()
			select {
			case p := <-done:
				if p != nil {
					t.Fatalf("the waits' end panicked: %v", p)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the waits' end did not return in 10 s: expire loops on a record whose request it cannot find")
			}
			if n := tab.Waiting(); n != 0 {
				t.Errorf("Waiting = %d after every wait ran out", n)
			}
		})
	}
}

// TestRestoreRefusesAQueueWhoseHeadFits: the table never leaves a queue
// whose head could be granted (shared.go's invariant), so a snapshot that
// has one is corrupt. Restored, such a waiter would wait out its whole
// WAIT on a free lock, and a newcomer would be refused.
func TestRestoreRefusesAQueueWhoseHeadFits(t *testing.T) {
	cases := []struct {
		name  string
		setup []Command
		edit  func(s *sharedLock)
		probe Command // a newcomer without WAIT, after the restore
	}{
		{"nobody holds it", []Command{writeCmd(1, "r", "w", 0, 0), readCmd(2, "r", "a", 0, 60_000)},
			func(s *sharedLock) { s.holders = nil }, readCmd(3, "r", "z", 0, 0)},
		{"a reader holds it, a reader at the head", []Command{writeCmd(1, "r", "w", 0, 0), readCmd(2, "r", "a", 0, 60_000)},
			func(s *sharedLock) { s.holders[0].mode = ModeRead }, readCmd(3, "r", "z", 0, 0)},
		{"a semaphore with a free permit", []Command{semCmd(1, "r", "w", 1, 0, 0), semCmd(2, "r", "a", 1, 0, 60_000)},
			func(s *sharedLock) { s.limit = 2 }, semCmd(3, "r", "z", 2, 0, 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := NewTable()
			src.Apply(1, &Batch{Term: 1, Cmds: tc.setup}, nil)
			v := src.View()
			if len(v.shared) != 1 || len(v.shared[0].lock.waiters) != 1 {
				t.Fatalf("setup: view holds %+v", v.shared)
			}
			tc.edit(&v.shared[0].lock)
			dst := NewTable()
			if err := dst.Restore(v.Encode()); err == nil {
				got := dst.Apply(1, &Batch{Term: 1, Stamp: 1, Cmds: []Command{tc.probe}}, nil)
				t.Fatalf("Restore accepted a queue whose head fits; then a newcomer got %v while request 2 stays queued (Waiting %d)",
					fmtResults(got), dst.Waiting())
			}
		})
	}
}

// A read/write lock has at most MaxReaders readers at once: the next one
// is refused (or waits), as behind a writer, so one entry's work stays
// bounded however many readers clients send.
func TestReadersAreBounded(t *testing.T) {
	tab := NewTable()
	cmds := make([]Command, MaxReaders)
	for i := range cmds {
		cmds[i] = readCmd(uint64(i+1), "r", fmt.Sprint("a", i), 0, 0)
	}
	tab.Apply(1, &Batch{Term: 1, Cmds: cmds}, nil)
	rs := tab.Apply(1, &Batch{Term: 1, Stamp: 1, Cmds: []Command{readCmd(5000, "r", "one-more", 0, 0), readCmd(5001, "r", "waits", 0, 60_000)}}, nil)
	if len(rs) != 2 || rs[0].Value != 0 || rs[1].Value != Queued {
		t.Fatalf("reader %d and %d: %v; want null, then queued", MaxReaders+1, MaxReaders+2, fmtResults(rs))
	}
	rs = tab.Apply(1, &Batch{Term: 1, Stamp: 2, Cmds: []Command{{Op: OpSharedUnlock, ID: 5002, Name: "r", Owner: "a0", Mode: ModeEither}}}, nil)
	if len(rs) != 2 || rs[1].ID != 5001 || rs[1].Value <= 0 {
		t.Fatalf("after a reader left: %v; want the waiting reader granted", fmtResults(rs))
	}
	checkInvariants(t, tab)
}

// BenchmarkExpireOfManyReaders measures the one Apply in which n readers
// of one read/write lock, granted together with the same lease, expire:
// each expiry finds its holder by a linear scan and deletes it from the
// middle of the slice, so the time grows as n², which MaxReaders bounds.
func BenchmarkExpireOfManyReaders(b *testing.B) {
	for _, n := range []int{MaxReaders / 4, MaxReaders / 2, MaxReaders} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cmds := make([]Command, n)
			for i := range cmds {
				cmds[i] = readCmd(0, "r", fmt.Sprint("a", i), 1000, 0)
			}
			for range b.N {
				b.StopTimer()
				tab := NewTable()
				tab.Apply(1, &Batch{Term: 1, Cmds: cmds}, nil)
				b.StartTimer()
				tab.Apply(1, &Batch{Term: 1, Stamp: 2000, Cmds: []Command{tickCmd()}}, nil)
			}
		})
	}
}
