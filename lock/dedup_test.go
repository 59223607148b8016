package lock

import (
	"bytes"
	"hash/crc32"
	"math"
	"runtime"
	"strings"
	"testing"
)

func TestDedup(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name: "an ID repeated in one batch acts once and returns the first result both times",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0), lockCmd(1, "a", "x", 0)).returns(res(1, 1), res(1, 1)),
				at(1, 10, lockCmd(2, "b", "x", 0)).returns(res(2, 2)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1}, "b": {Owner: "x", Token: 2}},
			now:   10,
		},
		{
			name: "an ID reused by other commands in one batch returns Conflict to them, and they do nothing",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0), lockCmd(1, "b", "y", 0), unlockCmd(1, "a", "x")).
					returns(res(1, 1), res(1, Conflict), res(1, Conflict)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1}},
		},
		{
			name: "an ID applied in two batches acts once and returns the first result both times",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 10, unlockCmd(2, "a", "x")).returns(res(2, 1)),
				at(1, 20, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
			},
			locks: map[string]Info{},
			now:   20,
		},
		{
			name: "a repeated refusal returns 0 even though the lock is now free",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0), lockCmd(2, "a", "y", 0)).returns(res(1, 1), res(2, 0)),
				at(1, 10, unlockCmd(3, "a", "x")).returns(res(3, 1)),
				at(1, 20, lockCmd(2, "a", "y", 0)).returns(res(2, 0)),
			},
			locks: map[string]Info{},
			now:   20,
		},
		{
			name: "a repeated release does not release the next holder's lock",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0), unlockCmd(2, "a", "x"), lockCmd(3, "a", "x", 0)).
					returns(res(1, 1), res(2, 1), res(3, 2)),
				at(1, 10, unlockCmd(2, "a", "x")).returns(res(2, 1)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 2}},
			now:   10,
		},
		{
			name: "a repeated renewal does not reset the lease again",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 100, renewCmd(2, "a", "x", 1000)).returns(res(2, 1)),
				at(1, 900, renewCmd(2, "a", "x", 1000)).returns(res(2, 1)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 1100}},
			now:   900,
		},
		{
			name: "an ID is remembered across a change of term",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 10, unlockCmd(2, "a", "x")).returns(res(2, 1)),
				at(2, 1<<40, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
			},
			locks: map[string]Info{},
			now:   10,
		},
		{
			name: "an ID is remembered for DedupWindow of logical time",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 10, unlockCmd(2, "a", "x")).returns(res(2, 1)),
				at(1, DedupWindow, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
			},
			locks: map[string]Info{},
			now:   DedupWindow,
		},
		{
			name: "an ID is forgotten after DedupWindow of logical time and a re-apply acts again",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 10, unlockCmd(2, "a", "x")).returns(res(2, 1)),
				at(1, DedupWindow+1, lockCmd(1, "a", "x", 0)).returns(res(1, 2)),
				at(1, DedupWindow+2, lockCmd(1, "a", "x", 0)).returns(res(1, 2)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 2}},
			now:   DedupWindow + 2,
		},
		{
			name: "the window is 30 s: the longest request timeout, 20 s, and 10 s for a copy in flight",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 10, unlockCmd(2, "a", "x")).returns(res(2, 1)),
				at(1, 30_000, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 30_001, lockCmd(1, "a", "x", 0)).returns(res(1, 2)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 2}},
			now:   30_001,
		},
		{
			name: "the window is logical time: a takeover gap does not shorten it",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 10, unlockCmd(2, "a", "x")).returns(res(2, 1)),
				at(2, 10*DedupWindow, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
			},
			locks: map[string]Info{},
			now:   10,
		},
		{
			name: "IDs are forgotten in the order they were applied",
			steps: []step{
				at(1, 0, tickCmd(), lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 5000, lockCmd(2, "b", "x", 0)).returns(res(2, 2)),
				at(1, 6000, unlockCmd(3, "a", "x"), unlockCmd(4, "b", "x")).returns(res(3, 1), res(4, 1)),
				at(1, DedupWindow+1, lockCmd(1, "a", "y", 0), lockCmd(2, "b", "x", 0)).returns(res(1, 3), res(2, 2)),
			},
			locks: map[string]Info{"a": {Owner: "y", Token: 3}},
			now:   DedupWindow + 1,
		},
		{
			name: "ID 0 is never deduplicated",
			steps: []step{
				at(1, 0, lockCmd(0, "a", "x", 0), unlockCmd(0, "a", "x"), lockCmd(0, "a", "x", 0)),
				at(1, 10, unlockCmd(0, "a", "x"), lockCmd(0, "a", "y", 0)),
			},
			locks: map[string]Info{"a": {Owner: "y", Token: 3}},
			now:   10,
		},
		{
			name: "the largest ID is an ID like any other",
			steps: []step{
				at(1, 0, lockCmd(math.MaxUint64, "a", "x", 0), unlockCmd(1, "a", "x"), lockCmd(math.MaxUint64, "a", "x", 0)).
					returns(res(math.MaxUint64, 1), res(1, 1), res(math.MaxUint64, 1)),
			},
			locks: map[string]Info{},
		},
	})
}

// TestDedupBound fills the table with MaxDedup remembered IDs: one more
// makes it forget the oldest, whatever its age.
func TestDedupBound(t *testing.T) {
	if testing.Short() {
		t.Skip("applies MaxDedup commands")
	}
	tab := NewTable()
	const per = 1 << 16
	cmds := make([]Command, per)
	id := uint64(0)
	for range MaxDedup / per {
		for i := range cmds {
			id++
			cmds[i] = Command{Op: OpTick, ID: id}
		}
		tab.Apply(1, &Batch{Term: 1, Cmds: cmds}, nil)
	}
	// ID 1 is the oldest and still remembered: a LOCK reusing it conflicts.
	run(t, tab, at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, Conflict)))
	// One more ID: the next batch forgets ID 1 but not ID 2.
	run(t, tab, at(1, 0, tickCmd(), Command{Op: OpTick, ID: id + 1}).returns(res(id+1, 0)))
	run(t, tab, at(1, 0, lockCmd(1, "a", "x", 0), lockCmd(2, "b", "x", 0)).returns(res(1, 1), res(2, Conflict)))
	wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 1}})
}

// TestRequestIDReusedByAnotherCommand: a remembered ID that arrives with a
// command differing in anything but the ID gets Conflict; nothing is done,
// the conflict is not remembered, and copies of the first command still get
// its result.
func TestRequestIDReusedByAnotherCommand(t *testing.T) {
	wait := Command{Op: OpLockWait, ID: 7, Name: "a", Owner: "x", TTL: 100, Wait: 500}
	with := func(f func(*Command)) Command {
		c := wait
		f(&c)
		return c
	}
	tests := []struct {
		name          string
		first, second Command
		result        int64 // of the first
	}{
		{"another name", wait, with(func(c *Command) { c.Name = "b" }), 1},
		{"another owner", wait, with(func(c *Command) { c.Owner = "y" }), 1},
		{"another TTL", wait, with(func(c *Command) { c.TTL = 101 }), 1},
		{"no TTL", wait, with(func(c *Command) { c.TTL = 0 }), 1},
		{"another wait", wait, with(func(c *Command) { c.Wait = 501 }), 1},
		{"LOCK without WAIT", wait, with(func(c *Command) { c.Op, c.Wait = OpLock, 0 }), 1},
		{"UNLOCK", wait, unlockCmd(7, "a", "x"), 1},
		{"RENEW", wait, renewCmd(7, "a", "x", 100), 1},
		{"TICK", wait, Command{Op: OpTick, ID: 7}, 1},
		{"CANCEL of another request", cancelCmd(7, "a", 3), cancelCmd(7, "a", 4), 0},
		{"a LOCK after a TICK", Command{Op: OpTick, ID: 7}, lockCmd(7, "a", "x", 0), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable()
			run(t, tab, at(1, 0, tt.first).returns(res(7, tt.result)))
			before := tab.Snapshot()
			run(t, tab, at(1, 0, tt.second).returns(res(7, Conflict)))
			if !bytes.Equal(tab.Snapshot(), before) {
				t.Errorf("the conflicting command changed the table")
			}
			run(t, tab, at(1, 0, tt.first, tt.second).returns(res(7, tt.result), res(7, Conflict)))
			if !bytes.Equal(tab.Snapshot(), before) {
				t.Errorf("copies of the first command changed the table")
			}
		})
	}
}

// TestQueuedRequestKeepsItsFingerprint: a queued request is answered later;
// its ID keeps its command's fingerprint before and after the answer.
func TestQueuedRequestKeepsItsFingerprint(t *testing.T) {
	tab := NewTable()
	run(t, tab,
		at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
		at(1, 1, waitCmd(2, "a", "y", 0, 1000)).returns(res(2, Queued)),
		at(1, 2, waitCmd(2, "a", "z", 0, 1000)).returns(res(2, Conflict)),
		at(1, 3, waitCmd(2, "a", "y", 0, 1000)).returns(res(2, Queued)),
		at(1, 4, unlockCmd(3, "a", "x")).returns(res(3, 1), res(2, 2)),
		at(1, 5, waitCmd(2, "a", "y", 0, 1000)).returns(res(2, 2)),
		at(1, 6, lockCmd(2, "a", "y", 0)).returns(res(2, Conflict)),
	)
	wantState(t, tab, map[string]Info{"a": {Owner: "y", Token: 2}})
}

// TestFingerprintsSurviveSnapshotAndRestore: a table restored from a
// snapshot tells a copy of a remembered request from another command with
// its ID, like the original.
func TestFingerprintsSurviveSnapshotAndRestore(t *testing.T) {
	src := NewTable()
	run(t, src,
		at(1, 0, lockCmd(1, "a", "x", 0), lockCmd(2, "b", "y", 0)).returns(res(1, 1), res(2, 2)),
		at(1, 1, waitCmd(3, "a", "y", 0, 1000)).returns(res(3, Queued)),
		at(1, 2, unlockCmd(4, "a", "x")).returns(res(4, 1), res(3, 3)),
	)
	dst := NewTable()
	if err := dst.Restore(src.Snapshot()); err != nil {
		t.Fatal(err)
	}
	for _, tab := range []*Table{src, dst} {
		run(t, tab, at(1, 3,
			lockCmd(1, "a", "x", 0), lockCmd(1, "c", "x", 0),
			waitCmd(3, "a", "y", 0, 1000), waitCmd(3, "a", "y", 0, 999),
		).returns(res(1, 1), res(1, Conflict), res(3, 3), res(3, Conflict)))
	}
	if !bytes.Equal(src.Snapshot(), dst.Snapshot()) {
		t.Error("the restored table differs from the original")
	}
}

// TestFingerprintIsFrozen: fingerprints are part of the snapshot format and
// every node must compute the same: the CRC-32C of the command's encoding
// with ID 0.
func TestFingerprintIsFrozen(t *testing.T) {
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	long := lockCmd(9, strings.Repeat("n", 300), "o", 1)
	tests := []struct {
		name string
		c    Command
		want uint32
	}{
		{"a LOCK", lockCmd(7, "orders-42", "worker-7", 30_000), 0xd5db9197},
		{"the same LOCK with another ID", lockCmd(1<<60, "orders-42", "worker-7", 30_000), 0xd5db9197},
		{"a LOCK ... WAIT", waitCmd(3, "a", "y", 0, 1000), 0x7e22db94},
		{"a command longer than the stack buffer", long, crc32.Checksum(AppendCommand(nil, &Command{Op: OpLock, Name: long.Name, Owner: "o", TTL: 1}), castagnoli)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewTable().fingerprint(&tt.c); got != tt.want {
				t.Errorf("fingerprint(%+v) = %#08x, want %#08x", tt.c, got, tt.want)
			}
		})
	}
}

// heapInUse returns the bytes of live heap objects after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestDedupMemoryIsGivenBack applies a burst of 500,000 requests with IDs,
// then lets DedupWindow pass: once they are forgotten the heap falls back
// to near what it was before the burst (a Go map keeps its peak size unless
// rebuilt, and a compacted slice its peak capacity).
func TestDedupMemoryIsGivenBack(t *testing.T) {
	if testing.Short() {
		t.Skip("applies 500,000 commands")
	}
	const burst = 500_000
	tab := NewTable()
	run(t, tab, at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)))
	cmds := make([]Command, 1000)
	before := heapInUse()
	id := uint64(1)
	for range burst / len(cmds) {
		for i := range cmds {
			id++
			cmds[i] = Command{Op: OpTick, ID: id}
		}
		tab.Apply(1, &Batch{Term: 1, Stamp: 1, Cmds: cmds}, nil)
	}
	peak := heapInUse()
	run(t, tab, at(1, 2+DedupWindow, tickCmd()))
	after := heapInUse()
	t.Logf("heap: %d B before the burst, %d B after it (%.1f B per ID), %d B once it was forgotten",
		before, peak, float64(peak-before)/burst, after)
	if peak-before < burst*32 {
		t.Fatalf("the burst took only %d B: the test measures nothing", peak-before)
	}
	if kept := after - before; kept > (peak-before)/10 {
		t.Errorf("%d B of the %d B the burst took are kept once its IDs are forgotten", kept, peak-before)
	}
	wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 1}})
}

// MaxRememberedID finds the largest remembered ID in a range, also after a
// snapshot round trip, and forgets IDs past the window as the table does.
func TestMaxRememberedID(t *testing.T) {
	const node = 1 << 48
	tab := NewTable()
	run(t, tab,
		at(1, 0, lockCmd(node|7, "a", "x", 0), lockCmd(2<<48|9, "b", "x", 0), lockCmd(node|3, "c", "x", 0)).
			returns(res(node|7, 1), res(2<<48|9, 2), res(node|3, 3)),
		at(1, 10, tickCmd()),
	)
	restored := NewTable()
	if err := restored.Restore(tab.Snapshot()); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		lo, hi uint64
		want   uint64
	}{
		{"node 1's", node, 2<<48 - 1, node | 7},
		{"node 2's", 2 << 48, 3<<48 - 1, 2<<48 | 9},
		{"node 3's: none", 3 << 48, 4<<48 - 1, 0},
		{"below the largest", node, node | 5, node | 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for name, tb := range map[string]*Table{"table": tab, "restored": restored} {
				if got := tb.MaxRememberedID(tt.lo, tt.hi); got != tt.want {
					t.Errorf("%s: MaxRememberedID(%#x, %#x) = %#x, want %#x", name, tt.lo, tt.hi, got, tt.want)
				}
			}
		})
	}
	run(t, tab, at(1, DedupWindow+20, tickCmd()))
	if got := tab.MaxRememberedID(0, math.MaxUint64); got != 0 {
		t.Errorf("after the window MaxRememberedID = %#x, want 0", got)
	}
}
