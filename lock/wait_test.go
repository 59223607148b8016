package lock

import (
	"bytes"
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
