package lock

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lockd/lockd/resp"
)

func readCmd(id uint64, name, owner string, ttl, wait int64) Command {
	return Command{Op: OpRWLock, ID: id, Name: name, Owner: owner, Mode: ModeRead, TTL: ttl, Wait: wait}
}

func writeCmd(id uint64, name, owner string, ttl, wait int64) Command {
	return Command{Op: OpRWLock, ID: id, Name: name, Owner: owner, Mode: ModeWrite, TTL: ttl, Wait: wait}
}

func semCmd(id uint64, name, owner string, limit, ttl, wait int64) Command {
	return Command{Op: OpSemLock, ID: id, Name: name, Owner: owner, Mode: ModeSem, Limit: limit, TTL: ttl, Wait: wait}
}

func rwUnlockCmd(id uint64, name, owner string) Command {
	return Command{Op: OpSharedUnlock, ID: id, Name: name, Owner: owner}
}

func semUnlockCmd(id uint64, name, owner string) Command {
	return Command{Op: OpSharedUnlock, ID: id, Name: name, Owner: owner, Mode: ModeSem}
}

func rwRenewCmd(id uint64, name, owner string, ttl int64) Command {
	return Command{Op: OpSharedRenew, ID: id, Name: name, Owner: owner, TTL: ttl}
}

func errRes(id uint64, text string) Result {
	v := resp.ErrorValue(text)
	return Result{ID: id, Reply: &v}
}

// runShared is run for steps whose results may be replies.
func runShared(tb testing.TB, tab *Table, steps ...step) {
	tb.Helper()
	for i, s := range steps {
		got := tab.Apply(s.entry(), s.batch(), nil)
		if !sameResults(got, s.want) {
			tb.Errorf("step %d (stamp %d %v): results %v, want %v", i, s.stamp, s.cmds, fmtResults(got), fmtResults(s.want))
		}
	}
	checkInvariants(tb, tab)
}

func fmtResults(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		if r.Reply != nil {
			fmt.Fprintf(&b, "{%d %q} ", r.ID, r.Reply.Str)
		} else {
			fmt.Fprintf(&b, "{%d %d} ", r.ID, r.Value)
		}
	}
	return b.String()
}

// wantHolders checks RWINFO (sem false) or SEMINFO name against want, each
// "owner/mode/token/ttl" (no mode for a semaphore), in grant order.
func wantHolders(tb testing.TB, tab *Table, name string, sem bool, want ...string) {
	tb.Helper()
	v := tab.SharedInfo(name, sem, 0)
	if v.Kind != resp.Array {
		tb.Fatalf("info %s = %v, want an array", name, v)
	}
	var got []string
	for _, h := range v.Array {
		var parts []string
		for _, f := range h.Array {
			if f.Kind == resp.Int {
				parts = append(parts, fmt.Sprint(f.Int))
			} else {
				parts = append(parts, f.Str)
			}
		}
		got = append(got, strings.Join(parts, "/"))
	}
	if !slices.Equal(got, want) {
		tb.Errorf("holders of %s = %q, want %q", name, got, want)
	}
}

func TestReadersAreGrantedTogether(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, readCmd(1, "r", "a", 0, 0), readCmd(2, "r", "b", 100, 0)).returns(res(1, 1), res(2, 2)),
	)
	wantHolders(t, tab, "r", false, "a/read/1/-1", "b/read/2/100")
}

func TestWriteIsGrantedOnlyWhenNobodyHoldsIt(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, readCmd(1, "r", "a", 0, 0)).returns(res(1, 1)),
		at(1, 0, writeCmd(2, "r", "w", 0, 0)).returns(res(2, 0)),
		at(1, 0, rwUnlockCmd(3, "r", "a")).returns(res(3, 1)),
		at(1, 0, writeCmd(4, "r", "w", 0, 0)).returns(res(4, 2)),
		at(1, 0, readCmd(5, "r", "a", 0, 0), writeCmd(6, "r", "v", 0, 0)).returns(res(5, 0), res(6, 0)),
	)
	wantHolders(t, tab, "r", false, "w/write/2/-1")
	if got := tab.Stats().Refusals; got != 3 {
		t.Errorf("Refusals = %d, want 3", got)
	}
}

// TestWriterIsNotStarved: a queued writer stops the readers that come
// after it, even while readers hold the lock.
func TestWriterIsNotStarved(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, readCmd(1, "r", "a", 0, 0)).returns(res(1, 1)),
		at(1, 1, writeCmd(2, "r", "w", 0, 1000)).returns(res(2, Queued)),
		at(1, 2, readCmd(3, "r", "b", 0, 0)).returns(res(3, 0)),
		at(1, 3, readCmd(4, "r", "c", 0, 1000)).returns(res(4, Queued)),
		at(1, 4, rwUnlockCmd(5, "r", "a")).returns(res(5, 1), res(2, 2)),
		at(1, 5, rwUnlockCmd(6, "r", "w")).returns(res(6, 1), res(4, 3)),
	)
	wantHolders(t, tab, "r", false, "c/read/3/-1")
}

// TestRunOfReadersAtTheHeadIsGrantedTogether: a release grants the queue's
// readers up to the first writer, and no further.
func TestRunOfReadersAtTheHeadIsGrantedTogether(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, writeCmd(1, "r", "w", 0, 0)).returns(res(1, 1)),
		at(1, 0, readCmd(2, "r", "a", 0, 1000), readCmd(3, "r", "b", 0, 1000), writeCmd(4, "r", "v", 0, 1000), readCmd(5, "r", "c", 0, 1000)).
			returns(res(2, Queued), res(3, Queued), res(4, Queued), res(5, Queued)),
		at(1, 1, rwUnlockCmd(6, "r", "w")).returns(res(6, 1), res(2, 2), res(3, 3)),
	)
	wantHolders(t, tab, "r", false, "a/read/2/-1", "b/read/3/-1")
	if n := tab.Waiting(); n != 2 {
		t.Errorf("Waiting() = %d, want 2 (v, then c)", n)
	}
	runShared(t, tab,
		at(1, 2, rwUnlockCmd(7, "r", "a"), rwUnlockCmd(8, "r", "b")).returns(res(7, 1), res(8, 1), res(4, 4)),
		at(1, 3, rwUnlockCmd(9, "r", "v")).returns(res(9, 1), res(5, 5)),
	)
}

func TestSemaphoreGrantsUpToItsLimit(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, semCmd(1, "s", "a", 2, 0, 0), semCmd(2, "s", "b", 2, 50, 0), semCmd(3, "s", "c", 2, 0, 0)).
			returns(res(1, 1), res(2, 2), res(3, 0)),
		at(1, 0, semCmd(4, "s", "c", 2, 0, 1000), semCmd(5, "s", "d", 2, 0, 1000), semCmd(6, "s", "e", 2, 0, 1000)).
			returns(res(4, Queued), res(5, Queued), res(6, Queued)),
		// b's lease and a's release free two permits: c, then d.
		at(1, 50, semUnlockCmd(7, "s", "a")).returns(res(7, 1), res(4, 3), res(5, 4)),
	)
	wantHolders(t, tab, "s", true, "c/3/-1", "d/4/-1")
}

func TestSemaphoreLimitMismatchIsAnError(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, semCmd(1, "s", "a", 2, 0, 0)).returns(res(1, 1)),
		at(1, 0, semCmd(2, "s", "b", 3, 0, 0), semCmd(3, "s", "a", 1, 0, 1000)).
			returns(errRes(2, "ERR semaphore s has limit 2, not 3"), errRes(3, "ERR semaphore s has limit 2, not 1")),
		// Once nobody holds it, the name and its limit are forgotten.
		at(1, 0, semUnlockCmd(4, "s", "a"), semCmd(5, "s", "b", 3, 0, 0)).returns(res(4, 1), res(5, 2)),
	)
	wantHolders(t, tab, "s", true, "b/2/-1")
}

func TestSharedReGrantKeepsTheTokenAndResetsTheLease(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, readCmd(1, "r", "a", 100, 0), semCmd(2, "s", "a", 1, 0, 0)).returns(res(1, 1), res(2, 2)),
		at(1, 10, readCmd(3, "r", "a", 0, 0), semCmd(4, "s", "a", 1, 500, 0)).returns(res(3, 1), res(4, 2)),
	)
	wantHolders(t, tab, "r", false, "a/read/1/-1")
	wantHolders(t, tab, "s", true, "a/2/500")
}

func TestSharedModeConflictIsAnError(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, readCmd(1, "r", "a", 0, 0), writeCmd(2, "w", "a", 0, 0)).returns(res(1, 1), res(2, 2)),
		at(1, 0, writeCmd(3, "r", "a", 0, 1000), readCmd(4, "w", "a", 0, 0)).returns(
			errRes(3, "ERR a holds r for reading; RWUNLOCK it first"),
			errRes(4, "ERR a holds w for writing; RWUNLOCK it first")),
	)
	wantHolders(t, tab, "r", false, "a/read/1/-1")
	wantHolders(t, tab, "w", false, "a/write/2/-1")
}

func TestSharedWrongKindIsAnError(t *testing.T) {
	const wrong = "WRONGTYPE Operation against a key holding the wrong kind of value"
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, readCmd(1, "r", "a", 0, 0), semCmd(2, "s", "a", 1, 0, 0)).returns(res(1, 1), res(2, 2)),
		at(1, 0, semCmd(3, "r", "b", 1, 0, 0), semUnlockCmd(4, "r", "a"), writeCmd(5, "s", "b", 0, 100), rwUnlockCmd(6, "s", "a"), rwRenewCmd(7, "s", "a", 10)).
			returns(errRes(3, wrong), errRes(4, wrong), errRes(5, wrong), errRes(6, wrong), errRes(7, wrong)),
	)
	if v := tab.SharedInfo("r", true, 0); v.Kind != resp.Error || v.Str != wrong {
		t.Errorf("SEMINFO of a read/write lock = %v", v)
	}
	wantHolders(t, tab, "r", false, "a/read/1/-1")
	wantHolders(t, tab, "s", true, "a/2/-1")
}

// TestSharedNamesAreApartFromTheKeySpace: a LOCK key and a read/write lock
// of the same name are different objects.
func TestSharedNamesAreApartFromTheKeySpace(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, writeCmd(1, "x", "a", 0, 0), lockCmd(2, "x", "b", 0)).returns(res(1, 1), res(2, 2)),
	)
	if tab.Len() != 1 || tab.SharedLen() != 1 {
		t.Errorf("Len() = %d, SharedLen() = %d, want 1 and 1", tab.Len(), tab.SharedLen())
	}
}

func TestSharedRenewAndUnlockOfANonHolder(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, readCmd(1, "r", "a", 0, 0)).returns(res(1, 1)),
		at(1, 0, rwRenewCmd(2, "r", "b", 10), rwUnlockCmd(3, "r", "b"), rwRenewCmd(4, "none", "a", 10), rwUnlockCmd(5, "none", "a")).
			returns(res(2, 0), res(3, 0), res(4, 0), res(5, 0)),
		at(1, 0, rwRenewCmd(6, "r", "a", 10)).returns(res(6, 1)),
		at(1, 10, tickCmd()).returns(),
	)
	wantHolders(t, tab, "r", false)
	if tab.SharedLen() != 0 {
		t.Errorf("SharedLen() = %d after the only lease ran out", tab.SharedLen())
	}
}

// TestSharedLeasesExpireInDeadlineOrder: leases end in the order of their
// deadlines, ties by name, a LOCK's before a shared hold's, then owner; the
// queue's head is granted at each.
func TestSharedLeasesExpireInDeadlineOrder(t *testing.T) {
	tab := NewTable()
	tab.SetNotify(true)
	runShared(t, tab,
		at(1, 0, semCmd(1, "s", "b", 2, 100, 0), semCmd(2, "s", "a", 2, 100, 0), lockCmd(3, "s", "k", 100), writeCmd(4, "r", "w", 50, 0)).
			returns(res(1, 1), res(2, 2), res(3, 3), res(4, 4)),
		at(1, 0, semCmd(5, "s", "c", 2, 0, 1000), semCmd(6, "s", "d", 2, 0, 1000), readCmd(7, "r", "x", 0, 1000)).
			returns(res(5, Queued), res(6, Queued), res(7, Queued)),
	)
	tab.TakeEvents(nil)
	runShared(t, tab, at(1, 100, tickCmd()).returns(res(7, 5), res(5, 6), res(6, 7)))
	var got []string
	for _, e := range tab.TakeEvents(nil) {
		got = append(got, fmt.Sprintf("%v %s", e.Kind, e.Name))
	}
	want := []string{"expired r", "grant r", "expired s", "expired s", "grant s", "expired s", "grant s"}
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	wantHolders(t, tab, "s", true, "c/6/-1", "d/7/-1")
	if tab.Len() != 0 {
		t.Errorf("the LOCK key s is still held")
	}
}

func TestSharedWaitRunsOut(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, readCmd(1, "r", "a", 0, 0)).returns(res(1, 1)),
		at(1, 0, writeCmd(2, "r", "w", 0, 100), readCmd(3, "r", "b", 0, 1000)).returns(res(2, Queued), res(3, Queued)),
		// The writer gives up: the reader behind it joins the holders.
		at(1, 100, tickCmd()).returns(res(2, 0), res(3, 2)),
	)
	wantHolders(t, tab, "r", false, "a/read/1/-1", "b/read/2/-1")
	if s := tab.Stats(); s.WaitTimeouts != 1 || s.Grants != 2 || s.Wait.Count != 1 {
		t.Errorf("stats %+v, want 1 wait timeout, 2 grants, 1 wait observed", s)
	}
}

func TestSharedWaiterIsCancelled(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, semCmd(1, "s", "a", 1, 0, 0), semCmd(2, "s", "b", 1, 0, 1000)).returns(res(1, 1), res(2, Queued)),
		at(1, 1, cancelCmd(3, "s", 2)).returns(res(3, 0), res(2, 0)),
		at(1, 2, semUnlockCmd(4, "s", "a")).returns(res(4, 1)),
	)
	if tab.SharedLen() != 0 || tab.Waiting() != 0 {
		t.Errorf("SharedLen() = %d, Waiting() = %d, want 0 and 0", tab.SharedLen(), tab.Waiting())
	}
}

// TestSharedOwnerQueuedTwice: an owner granted from the queue whose second
// request reaches the head gets a re-grant in the same mode, 0 in the
// other; it neither holds twice nor blocks the queue.
func TestSharedOwnerQueuedTwice(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, writeCmd(1, "r", "w", 0, 0)).returns(res(1, 1)),
		at(1, 0, readCmd(2, "r", "a", 0, 1000), readCmd(3, "r", "a", 100, 1000), writeCmd(4, "r", "a", 0, 1000), readCmd(5, "r", "b", 0, 1000)).
			returns(res(2, Queued), res(3, Queued), res(4, Queued), res(5, Queued)),
		at(1, 0, rwUnlockCmd(6, "r", "w")).returns(res(6, 1), res(2, 2), res(3, 2), res(4, 0), res(5, 3)),
	)
	wantHolders(t, tab, "r", false, "a/read/2/100", "b/read/3/-1")
}

func TestSharedDedup(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, semCmd(1, "s", "a", 1, 0, 0)).returns(res(1, 1)),
		at(1, 0, semCmd(2, "s", "b", 2, 0, 0)).returns(errRes(2, "ERR semaphore s has limit 1, not 2")),
		at(1, 0, semCmd(3, "s", "b", 1, 0, 1000)).returns(res(3, Queued)),
		// The same requests again: the first results, nothing done.
		at(1, 1, semCmd(1, "s", "a", 1, 0, 0), semCmd(2, "s", "b", 2, 0, 0), semCmd(3, "s", "b", 1, 0, 1000)).
			returns(res(1, 1), errRes(2, "ERR semaphore s has limit 1, not 2"), res(3, Queued)),
		// Another command under a used ID conflicts.
		at(1, 1, semUnlockCmd(1, "s", "a")).returns(res(1, Conflict)),
		at(1, 2, semUnlockCmd(4, "s", "a")).returns(res(4, 1), res(3, 2)),
		at(1, 3, semCmd(3, "s", "b", 1, 0, 1000)).returns(res(3, 2)),
	)
	if tab.Waiting() != 0 {
		t.Errorf("Waiting() = %d", tab.Waiting())
	}
}

// TestSharedInTransaction: inside EXEC the commands answer as replies, and
// a WAIT does not wait.
func TestSharedInTransaction(t *testing.T) {
	tab := NewTable()
	tx := Command{Op: OpTx, ID: 2, X: &Extra{Sub: []Command{
		readCmd(0, "r", "b", 0, 0), writeCmd(0, "r", "c", 0, 1000), rwUnlockCmd(0, "r", "a"), semCmd(0, "r", "d", 1, 0, 0),
	}}}
	got := tab.Apply(1, &Batch{Term: 1, Cmds: []Command{readCmd(1, "r", "a", 0, 0), tx}}, nil)
	want := resp.ArrayValue(resp.IntValue(2), resp.NilValue(), resp.IntValue(1),
		resp.ErrorValue("WRONGTYPE Operation against a key holding the wrong kind of value"))
	if len(got) != 2 || got[1].Reply == nil || !reflect.DeepEqual(*got[1].Reply, want) {
		t.Fatalf("EXEC = %v, want %v", got, want)
	}
	if tab.Waiting() != 0 {
		t.Errorf("Waiting() = %d", tab.Waiting())
	}
}

// sharedTable returns a table with read/write locks and semaphores held
// and waited for, with and without leases, beside a LOCK.
func sharedTable(tb testing.TB) *Table {
	tb.Helper()
	tab := NewTable()
	runShared(tb, tab,
		at(1, 0, readCmd(1, "r", "a", 100, 0), readCmd(2, "r", "b", 0, 0), writeCmd(3, "r", "w", 50, 1000), readCmd(4, "r", "c", 0, 2000),
			semCmd(5, "s", "a", 2, 300, 0), semCmd(6, "s", "b", 2, 0, 0), semCmd(7, "s", "c", 2, 10, 500), lockCmd(8, "r", "k", 70)).
			returns(res(1, 1), res(2, 2), res(3, Queued), res(4, Queued), res(5, 3), res(6, 4), res(7, Queued), res(8, 5)),
	)
	return tab
}

func TestSharedSnapshotRoundTrip(t *testing.T) {
	src := sharedTable(t)
	snap := src.Snapshot()
	if snap[0] != snapshotVersionShared {
		t.Fatalf("snapshot version %d, want %d", snap[0], snapshotVersionShared)
	}
	dst := NewTable()
	if err := dst.Restore(snap); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, dst)
	if !bytes.Equal(dst.Snapshot(), snap) {
		t.Fatal("the snapshot of the restored table differs")
	}
	// Both go on alike: a's lease ends, then b leaves, the writer gets it
	// and its lease ends; c's wait on s runs out.
	for _, tab := range []*Table{src, dst} {
		runShared(t, tab,
			at(1, 100, tickCmd()).returns(),
			at(1, 200, rwUnlockCmd(9, "r", "b")).returns(res(9, 1), res(3, 6)),
			at(1, 250, tickCmd()).returns(res(4, 7)),
			at(1, 500, tickCmd()).returns(res(7, 0)),
		)
	}
	if !bytes.Equal(dst.Snapshot(), src.Snapshot()) {
		t.Fatal("the restored table diverged from the original")
	}
	// A view taken before later changes keeps its moment.
	v := src.View()
	before := v.Encode()
	runShared(t, src, at(1, 600, semUnlockCmd(10, "s", "b"), readCmd(11, "r", "z", 0, 0)).returns(res(10, 1), res(11, 8)))
	if !bytes.Equal(v.Encode(), before) {
		t.Fatal("a SnapshotView changed with the table")
	}
}

// TestSnapshotWithoutSharedKeepsItsVersion: a table that holds no read/
// write lock or semaphore writes the versions older nodes read.
func TestSnapshotWithoutSharedKeepsItsVersion(t *testing.T) {
	tab := NewTable()
	runShared(t, tab,
		at(1, 0, readCmd(1, "r", "a", 0, 0), lockCmd(2, "k", "a", 0)).returns(res(1, 1), res(2, 2)),
		at(1, 0, rwUnlockCmd(3, "r", "a")).returns(res(3, 1)),
	)
	if v := tab.Snapshot()[0]; v != snapshotVersionNoUsers {
		t.Fatalf("version %d, want %d", v, snapshotVersionNoUsers)
	}
}

func TestSharedSnapshotRefusesCorruption(t *testing.T) {
	good := sharedTable(t).Snapshot()
	// The shared section is the snapshot's tail; change its bytes one at
	// a time: each restore either fails with ErrCorrupt or loads a table
	// whose invariants hold.
	for i := len(good) - 60; i < len(good); i++ {
		for _, b := range []byte{0, 1, 2, 3, 0x7f, 0xff} {
			bad := bytes.Clone(good)
			bad[i] = b
			tab := NewTable()
			if err := tab.Restore(bad); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("byte %d = %#x: error %v is not ErrCorrupt", i, b, err)
				}
				continue
			}
			checkInvariants(t, tab)
		}
	}
	if err := NewTable().Restore(good[:len(good)-1]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a truncated snapshot: %v", err)
	}
}

func TestSharedCommandsRoundTrip(t *testing.T) {
	cmds := []Command{
		readCmd(1, "r", "a", 10, 0), writeCmd(2, "r", "a", 0, 500), semCmd(3, "s", "b", MaxSemLimit, 0, 7),
		rwUnlockCmd(4, "r", "a"), semUnlockCmd(5, "s", "a"), rwRenewCmd(6, "r", "a", 10),
	}
	b := Batch{Term: 1, Cmds: cmds}
	got, err := DecodeBatch(AppendBatch(nil, &b))
	if err != nil || !sameBatch(got, b) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, c := range []Command{
		{Op: OpRWLock, Mode: ModeSem}, {Op: OpRWLock, Mode: ModeEither}, {Op: OpRWLock, Mode: ModeRead, Limit: 1},
		{Op: OpSemLock, Mode: ModeSem}, {Op: OpSemLock, Mode: ModeSem, Limit: MaxSemLimit + 1}, {Op: OpSemLock, Mode: ModeRead, Limit: 1},
		{Op: OpSharedUnlock, Mode: ModeRead}, {Op: OpSharedRenew, Mode: ModeSem, Wait: 5}, {Op: OpRWLock, Mode: ModeRead, Wait: -1},
	} {
		if _, _, err := DecodeCommand(AppendCommand(nil, &c)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeCommand of %+v: %v, want ErrCorrupt", c, err)
		}
	}
}

// randomSharedLog returns n entries of one term: RWLOCK and SEMLOCK with
// and without leases and waits, unlocks, renews, cancels and ticks over
// two names of each kind and four owners.
func randomSharedLog(r *rand.Rand, n int) []entry {
	owners := []string{"x", "y", "z", "w"}
	var log []entry
	id, stamp := uint64(0), int64(0)
	for range n {
		stamp += int64(r.IntN(20))
		var cmds []Command
		for range 1 + r.IntN(3) {
			id++
			rw, sem, o := []string{"r1", "r2"}[r.IntN(2)], []string{"s1", "s2"}[r.IntN(2)], owners[r.IntN(4)]
			ttl, wait := int64(r.IntN(3))*40, int64(r.IntN(3))*50
			switch r.IntN(9) {
			case 0:
				cmds = append(cmds, readCmd(id, rw, o, ttl, wait))
			case 1:
				cmds = append(cmds, writeCmd(id, rw, o, ttl, wait))
			case 2:
				cmds = append(cmds, semCmd(id, sem, o, 2, ttl, wait))
			case 3:
				cmds = append(cmds, rwUnlockCmd(id, rw, o))
			case 4:
				cmds = append(cmds, semUnlockCmd(id, sem, o))
			case 5:
				cmds = append(cmds, rwRenewCmd(id, rw, o, 1+ttl))
			case 6:
				cmds = append(cmds, cancelCmd(id, []string{rw, sem}[r.IntN(2)], id-uint64(1+r.IntN(5))))
			case 7:
				cmds = append(cmds, semCmd(id, rw, o, 1, 0, 0)) // the wrong kind
			default:
				cmds = append(cmds, tickCmd())
			}
		}
		log = append(log, entry{term: 1, batch: Batch{Term: 1, Stamp: stamp, Cmds: cmds}})
	}
	return log
}

// TestSharedIsDeterministic: two tables, one restored from a snapshot of
// the other midway, return the same results and snapshots; the invariants
// hold after every entry; rules hold for every hold.
func TestSharedIsDeterministic(t *testing.T) {
	for seed := range uint64(20) {
		log := randomSharedLog(rand.New(rand.NewPCG(seed, 3)), 300)
		a, b := NewTable(), NewTable()
		for i, e := range log {
			if i == len(log)/2 {
				if err := b.Restore(a.Snapshot()); err != nil {
					t.Fatal(err)
				}
			}
			ra := a.Apply(e.term, &e.batch, nil)
			rb := b.Apply(e.term, &e.batch, nil)
			if i >= len(log)/2 && !sameResults(ra, rb) {
				t.Fatalf("seed %d entry %d: results %v and %v", seed, i, fmtResults(ra), fmtResults(rb))
			}
			checkInvariants(t, a)
			for name, s := range a.sharedLocks {
				writers := 0
				for _, h := range s.holders {
					if h.mode == ModeWrite {
						writers++
					}
				}
				if (writers > 0 && len(s.holders) > 1) || (s.sem && len(s.holders) > s.limit) {
					t.Fatalf("seed %d entry %d: %s held by %+v", seed, i, name, s.holders)
				}
				if len(s.waiters) > 0 && s.holderIndex(s.waiters[0].owner) < 0 && s.fits(s.waiters[0].mode) {
					t.Fatalf("seed %d entry %d: %s's head waiter %+v fits but waits", seed, i, name, s.waiters[0])
				}
			}
		}
		if !bytes.Equal(a.Snapshot(), b.Snapshot()) {
			t.Fatalf("seed %d: snapshots differ", seed)
		}
	}
}

// sharedInvariants checks the read/write locks and semaphores for
// checkInvariants: each name is held or waited for, each lease is in the
// heap, each queued request has its wait record; it returns how many
// leases and queued requests they have.
func sharedInvariants(tb testing.TB, tab *Table) (leased, queued int) {
	tb.Helper()
	for name, s := range tab.sharedLocks {
		if len(s.holders) == 0 && len(s.waiters) == 0 {
			tb.Errorf("%s is kept with no holder and no waiter", name)
		}
		for _, h := range s.holders {
			switch l := h.lease; {
			case h.deadline == 0 && l != nil:
				tb.Errorf("%s's holder %s has no lease but a lease in the heap", name, h.owner)
			case h.deadline == 0:
			case l == nil || l.deadline != h.deadline || l.name != name || !l.shared || l.owner != h.owner ||
				l.index < 0 || l.index >= len(tab.leases) || tab.leases[l.index] != l:
				tb.Errorf("%s's holder %s has a lease to %d but not that lease in the heap: %+v", name, h.owner, h.deadline, l)
			default:
				leased++
			}
		}
		for _, w := range s.waiters {
			queued++
			if _, ok := tab.waits.Get(waitRec{at: w.deadline, name: name, id: w.id}); !ok {
				tb.Errorf("request %d queued for %s until %d has no wait record", w.id, name, w.deadline)
			}
		}
	}
	return leased, queued
}

// BenchmarkViewShared measures View with n read/write locks held by two
// readers each: the copy that a snapshot of them costs under the table's
// lock (see viewShared).
func BenchmarkViewShared(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			tab := NewTable()
			cmds := make([]Command, 0, 2*n)
			for i := range n {
				name := fmt.Sprint("rw-", i)
				cmds = append(cmds, readCmd(uint64(2*i+1), name, "a", 30_000, 0), readCmd(uint64(2*i+2), name, "b", 0, 0))
			}
			tab.Apply(1, &Batch{Term: 1, Cmds: cmds}, nil)
			b.ReportAllocs()
			for b.Loop() {
				tab.View()
			}
		})
	}
}
