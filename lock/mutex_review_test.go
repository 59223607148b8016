package lock

import (
	"fmt"
	"testing"
)

// A table with more than 65,536 held locks that carry a lock-delay (every
// LOCK does on a node run with --lock-delay), names in their lock-delay, or
// queued requests with a lock-delay restores from its own snapshot: the
// mutex section's counts are a snapshot section's (countAny), not a
// command's (count, bounded by maxNested).
func TestMutexSnapshotManyLockDelaysRestores(t *testing.T) {
	const n = maxNested + 10
	tests := []struct {
		name  string
		setup func(tab *Table)
	}{
		{"held locks with a delay", func(tab *Table) {
			var cmds []Command
			for i := range n {
				cmds = append(cmds, Command{Op: OpLock, Name: fmt.Sprintf("k%d", i), Owner: "o", TTL: 100, Delay: 1000})
			}
			tab.Apply(1, &Batch{Term: 1, Stamp: 0, Cmds: cmds}, nil)
		}},
		{"names in their lock-delay", func(tab *Table) {
			var cmds []Command
			for i := range n {
				cmds = append(cmds, Command{Op: OpLock, Name: fmt.Sprintf("k%d", i), Owner: "o", TTL: 100, Delay: 1000})
			}
			tab.Apply(1, &Batch{Term: 1, Stamp: 0, Cmds: cmds}, nil)
			tab.Apply(1, &Batch{Term: 1, Stamp: 100}, nil)
		}},
		{"queued requests with a delay", func(tab *Table) {
			cmds := []Command{{Op: OpLock, Name: "k", Owner: "o"}}
			for i := range n {
				cmds = append(cmds, Command{ID: uint64(i + 1), Op: OpLockWait, Name: "k", Owner: fmt.Sprintf("w%d", i), Wait: 10_000, Delay: 1000})
			}
			tab.Apply(1, &Batch{Term: 1, Stamp: 0, Cmds: cmds}, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable()
			tt.setup(tab)
			if err := NewTable().Restore(tab.Snapshot()); err != nil {
				t.Fatalf("the table's own snapshot does not restore: %v", err)
			}
		})
	}
}

// Restore refuses a snapshot in which a queued multi-lock could take all
// its names (each reserved for it) but waits: no table writes one, and a
// table restored from it would leave the names blocked, answering nobody,
// until the request's wait ran out.
func TestMutexRestoreRefusesReadyMultiLock(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(lk("a", "p", 0, 0, 0), lk("b", "q", 0, 0, 0)), "1", "2")
	m.want(m.do(mlk("x", 0, 1000, 0, "a", "b")), "queued")
	m.want(m.do(unlk("a", "p")), "1") // a is reserved for x's request
	// b freed without serving its queue: both names reserved for the request.
	m.free("b", m.byName["b"])
	if !m.ready(m.blocked["a"].waiters[0].multi) {
		t.Fatal("setup: the multi-lock is not ready")
	}
	if err := NewTable().Restore(m.Snapshot()); err == nil {
		t.Errorf("Restore accepted a multi-lock that can take all its names but waits")
	}
}

// A SET that gives a held key to another owner ends the old hold (as DEL
// would: no lock-delay) and starts one that was taken without DELAY: when
// the new owner's lease runs out the name is free at once, not blocked by
// the old owner's lock-delay.
func TestSetToAnotherOwnerDoesNotInheritLockDelay(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(lk("a", "p", 100, 0, 1000)), "1")
	set := setCmd("a", "q", 0)
	set.TTL = 50
	m.want(m.do(set), "OK")
	m.at(50).do() // q's lease runs out
	m.want(m.do(lk("a", "z", 0, 0, 0)), "3")
}
