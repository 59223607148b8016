package lock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lockd/lockd/acl"
)

// applyAll applies the log to tab and returns every result, in order.
func applyAll(tab *Table, log []entry) []Result {
	var out []Result
	for _, e := range log {
		out = tab.Apply(e.term, &e.batch, out)
	}
	return out
}

func TestDeterminism(t *testing.T) {
	for seed := range uint64(10) {
		t.Run(fmt.Sprintf("seed %d: two tables applying the same log hold identical snapshots", seed), func(t *testing.T) {
			log := randomLog(rand.New(rand.NewPCG(seed, 1)), 3000)
			a, b := NewTable(), NewTable()
			for i, e := range log {
				ra := a.Apply(e.term, &e.batch, nil)
				rb := b.Apply(e.term, &e.batch, nil)
				if !slices.Equal(ra, rb) {
					t.Fatalf("entry %d: results %v and %v", i, ra, rb)
				}
				if i%100 == 0 || i == len(log)-1 {
					if sa, sb := a.Snapshot(), b.Snapshot(); !bytes.Equal(sa, sb) {
						t.Fatalf("entry %d: snapshots differ", i)
					}
				}
			}
			if a.Len() == 0 && len(a.Snapshot()) < 20 {
				t.Errorf("the random log left an empty table: it tests little")
			}
		})
	}
}

func TestRestoreMidway(t *testing.T) {
	for seed := range uint64(10) {
		t.Run(fmt.Sprintf("seed %d: a table restored midway goes on exactly like the original", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 2))
			log := randomLog(r, 3000)
			cut := 1 + r.IntN(len(log)-1)

			orig := NewTable()
			applyAll(orig, log[:cut])
			snap := orig.Snapshot()

			restored := NewTable()
			// Give the fresh table some state of its own: Restore replaces it.
			applyAll(restored, randomLog(rand.New(rand.NewPCG(seed, 3)), 50))
			if err := restored.Restore(snap); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if got := restored.Snapshot(); !bytes.Equal(got, snap) {
				t.Fatalf("Snapshot after Restore differs from the snapshot restored")
			}
			ta, sa, na := orig.Clock()
			tb, sb, nb := restored.Clock()
			if ta != tb || sa != sb || na != nb || orig.Len() != restored.Len() {
				t.Fatalf("restored Clock/Len = %d %d %d %d, want %d %d %d %d", tb, sb, nb, restored.Len(), ta, sa, na, orig.Len())
			}

			ra := applyAll(orig, log[cut:])
			rb := applyAll(restored, log[cut:])
			if !slices.Equal(ra, rb) {
				for i := range min(len(ra), len(rb)) {
					if ra[i] != rb[i] {
						t.Fatalf("result %d after the cut at %d: original %v, restored %v", i, cut, ra[i], rb[i])
					}
				}
				t.Fatalf("%d results from the original, %d from the restored table", len(ra), len(rb))
			}
			if !bytes.Equal(orig.Snapshot(), restored.Snapshot()) {
				t.Fatalf("snapshots differ at the end")
			}
		})
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		tab  func(testing.TB) *Table
	}{
		{"empty table", func(testing.TB) *Table { return NewTable() }},
		{"populated table", populated},
		{"extreme values", func(tb testing.TB) *Table {
			tab := NewTable()
			run(tb, tab,
				at(math.MaxUint64, math.MinInt64),
				at(math.MaxUint64, math.MinInt64+10, lockCmd(math.MaxUint64, "a", "x", 0), lockCmd(1, "\x00", "\xff", 1)).
					returns(res(math.MaxUint64, 1), res(1, 2)),
			)
			return tab
		}},
		{"IDs only", func(tb testing.TB) *Table {
			tab := NewTable()
			run(tb, tab, at(1, 0, unlockCmd(1, "a", "x"), renewCmd(2, "a", "x", 5)).returns(res(1, 0), res(2, 0)))
			return tab
		}},
		{"after IDs were forgotten", func(tb testing.TB) *Table {
			tab := NewTable()
			for i := range 3000 {
				tab.Apply(1, &Batch{Term: 1, Stamp: int64(i) * 100, Cmds: []Command{lockCmd(uint64(i+1), fmt.Sprint(i%7), "x", 500)}}, nil)
			}
			return tab
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+": Snapshot, Restore, Snapshot gives the same bytes", func(t *testing.T) {
			src := tt.tab(t)
			s1 := src.Snapshot()
			dst := NewTable()
			if err := dst.Restore(s1); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if s2 := dst.Snapshot(); !bytes.Equal(s1, s2) {
				t.Fatalf("snapshots differ:\n% x\n% x", s1, s2)
			}
			if s3 := src.Snapshot(); !bytes.Equal(s1, s3) {
				t.Fatalf("Snapshot is not stable on an unchanged table")
			}
			// Restoring into the same table is fine too.
			if err := src.Restore(s1); err != nil {
				t.Fatalf("Restore into the source: %v", err)
			}
			if s4 := src.Snapshot(); !bytes.Equal(s1, s4) {
				t.Fatalf("snapshot changed by restoring it into its own table")
			}
		})
	}
}

func TestSnapshotIsCanonical(t *testing.T) {
	// The same locks taken in different orders, in different batches,
	// give the same snapshot.
	a, b := NewTable(), NewTable()
	run(t, a,
		at(1, 0, lockCmd(0, "c", "x", 0), lockCmd(0, "a", "x", 0), lockCmd(0, "b", "y", 100)),
	)
	run(t, b,
		at(1, 0, lockCmd(0, "c", "x", 0)),
		at(1, 0, lockCmd(0, "a", "x", 0)),
		at(1, 0, lockCmd(0, "b", "y", 100)),
	)
	if !bytes.Equal(a.Snapshot(), b.Snapshot()) {
		t.Errorf("snapshots differ:\n% x\n% x", a.Snapshot(), b.Snapshot())
	}
}

func TestRestoreKeepsDedupAndExpiry(t *testing.T) {
	src := NewTable()
	run(t, src,
		at(1, 0, lockCmd(1, "a", "x", 1000), lockCmd(2, "b", "y", 0)).returns(res(1, 1), res(2, 2)),
		at(1, 10, lockCmd(3, "a", "x", 2000)).returns(res(3, 1)), // leaves a stale record at 1000
	)
	tab := NewTable()
	if err := tab.Restore(src.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if d, ok := tab.NextDeadline(); !ok || d != 2010 {
		t.Errorf("NextDeadline() = %d, %v, want 2010, true", d, ok)
	}
	run(t, tab,
		at(1, 20, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)), // remembered: the lease is not reset
		at(1, 20, lockCmd(1, "c", "z", 0)).returns(res(1, Conflict)),
		at(1, 2009, lockCmd(4, "a", "z", 0)).returns(res(4, 0)),
		at(1, 2010, lockCmd(5, "a", "z", 0)).returns(res(5, 3)), // expired; the fence went on
	)
	wantState(t, tab, map[string]Info{"a": {Owner: "z", Token: 3}, "b": {Owner: "y", Token: 2}})
}

// snapshotBytes builds a snapshot by hand: locks are {name, owner, token,
// deadline} without waiters, remembered IDs {id, at, result, fingerprint}.
// snapshotBytes writes a snapshot by hand: locks are (name, owner, token,
// deadline), in any order (they are written in treeKey order, versions 1,
// 2, ...); seen records (id, at, value, fingerprint) have no reply.
func snapshotBytes(term uint64, stamp, now int64, fence uint64, locks [][4]any, seen [][4]any) []byte {
	locks = slices.Clone(locks)
	slices.SortFunc(locks, func(a, b [4]any) int { return strings.Compare(treeKey(a[0].(string)), treeKey(b[0].(string))) })
	return snapshotBytesInOrder(term, stamp, now, fence, locks, seen)
}

// snapshotBytesInOrder is snapshotBytes with the locks in the order given.
func snapshotBytesInOrder(term uint64, stamp, now int64, fence uint64, locks [][4]any, seen [][4]any) []byte {
	b := cat([]byte{snapshotVersionNoUsers}, uv(term), sv(stamp), sv(now), uv(fence), uv(uint64(len(locks))), uv(uint64(len(locks))))
	for i, l := range locks {
		name, owner := l[0].(string), l[1].(string)
		b = cat(b, uv(uint64(len(name))), []byte(name), uv(uint64(len(owner))), []byte(owner), uv(l[2].(uint64)), sv(l[3].(int64)), uv(uint64(i+1)), uv(0))
	}
	b = cat(b, uv(uint64(len(seen))))
	for _, s := range seen {
		b = cat(b, uv(s[0].(uint64)), sv(s[1].(int64)), sv(s[2].(int64)), binary.LittleEndian.AppendUint32(nil, s[3].(uint32)), []byte{0})
	}
	return cat(b, uv(0)) // no scripts
}

// fp is the fingerprint of c.
func fp(c Command) uint32 { return NewTable().fingerprint(&c) }

func TestRestoreHandMade(t *testing.T) {
	snap := snapshotBytes(3, 100, 50, 9,
		[][4]any{{"a", "x", uint64(4), int64(0)}, {"b", "y", uint64(9), int64(70)}},
		[][4]any{{uint64(11), int64(40), int64(4), fp(lockCmd(11, "z", "z", 0))}},
	)
	tab := NewTable()
	if err := tab.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if got := tab.Snapshot(); !bytes.Equal(got, snap) {
		t.Errorf("Snapshot() = % x, want % x", got, snap)
	}
	wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 4}, "b": {Owner: "y", Token: 9, Deadline: 70}})
	if term, stamp, now := tab.Clock(); term != 3 || stamp != 100 || now != 50 {
		t.Errorf("Clock() = %d %d %d, want 3 100 50", term, stamp, now)
	}
	run(t, tab, at(3, 120, lockCmd(11, "z", "z", 0), lockCmd(11, "z", "y", 0), lockCmd(12, "b", "x", 0)).
		returns(res(11, 4), res(11, Conflict), res(12, 10)))
}

// outOfOrder is a snapshot of two locks written against treeKey order.
func outOfOrder(a, b [4]any) []byte {
	if treeKey(a[0].(string)) < treeKey(b[0].(string)) {
		a, b = b, a
	}
	return snapshotBytesInOrder(1, 0, 0, 5, [][4]any{a, b}, nil)
}

// versioned is a snapshot of one lock of version v, the table's last
// version being 2.
func versioned(v uint64) []byte {
	return cat([]byte{snapshotVersionNoUsers}, uv(1), sv(0), sv(0), uv(5), uv(2), uv(1), uv(1), []byte("a"), uv(1), []byte("x"), uv(5), sv(0), uv(v), uv(0), uv(0), uv(0))
}

func TestRestoreCorrupt(t *testing.T) {
	lk := func(name, owner string, token uint64, deadline int64) [4]any {
		return [4]any{name, owner, token, deadline}
	}
	ok := snapshotBytes(1, 0, 0, 5, [][4]any{lk("a", "x", 5, 0)}, [][4]any{{uint64(1), int64(0), int64(5), uint32(0xfeedf00d)}})
	// waiters encodes a lock "a" held by x with token 5 and the waiters
	// {id, owner, ttl, deadline}.
	waiters := func(ws ...[4]any) []byte {
		b := cat([]byte{snapshotVersionNoUsers}, uv(1), sv(0), sv(0), uv(5), uv(1), uv(1), uv(1), []byte("a"), uv(1), []byte("x"), uv(5), sv(0), uv(1), uv(uint64(len(ws))))
		for _, w := range ws {
			owner := w[1].(string)
			b = cat(b, uv(w[0].(uint64)), uv(uint64(len(owner))), []byte(owner), sv(w[2].(int64)), sv(w[3].(int64)))
		}
		return cat(b, uv(0), uv(0))
	}
	if err := NewTable().Restore(waiters([4]any{uint64(2), "y", int64(0), int64(10)}, [4]any{uint64(3), "y", int64(0), int64(10)})); err != nil {
		t.Fatalf("the waiters' snapshot that the corrupt cases derive from does not restore: %v", err)
	}
	// withUsers is ok as version 4, with a users section of the parts.
	withUsers := func(parts ...[]byte) []byte { return cat(append([][]byte{{snapshotVersion}, ok[1:]}, parts...)...) }
	if err := NewTable().Restore(withUsers(uv(1), uv(1), []byte("a"), uv(1), uv(2), []byte("on"))); err != nil {
		t.Fatalf("the users' snapshot that the corrupt cases derive from does not restore: %v", err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"version 0", append([]byte{0}, ok[1:]...)},
		{"version 1, before fingerprints", append([]byte{1}, ok[1:len(ok)-4]...)},
		{"version 2, before the key space", append([]byte{2}, ok[1:]...)},
		{"version 5", append([]byte{5}, ok[1:]...)},
		{"version 4 without users (never written)", withUsers(uv(0))},
		{"version only", []byte{snapshotVersionNoUsers}},
		{"version 4 only", []byte{snapshotVersion}},
		{"trailing byte", append(slices.Clone(ok), 0)},
		{"empty name", snapshotBytes(1, 0, 0, 5, [][4]any{lk("", "x", 5, 0)}, nil)},
		{"empty owner", snapshotBytes(1, 0, 0, 5, [][4]any{lk("a", "", 5, 0)}, nil)},
		{"token 0", snapshotBytes(1, 0, 0, 5, [][4]any{lk("a", "x", 0, 0)}, nil)},
		{"token above the fence", snapshotBytes(1, 0, 0, 5, [][4]any{lk("a", "x", 6, 0)}, nil)},
		{"the same name twice", snapshotBytes(1, 0, 0, 5, [][4]any{lk("a", "x", 4, 0), lk("a", "y", 5, 0)}, nil)},
		{"names out of order", outOfOrder(lk("b", "x", 4, 0), lk("a", "y", 5, 0))},
		{"a reply flag of 2", append(ok[:len(ok)-2:len(ok)-2], 2, 0)},
		{"a damaged reply", append(ok[:len(ok)-2:len(ok)-2], 1, 9, 0)},
		{"the same waiter twice", waiters([4]any{uint64(2), "y", int64(0), int64(10)}, [4]any{uint64(2), "y", int64(0), int64(10)})},
		{"a waiter with ID 0", waiters([4]any{uint64(0), "y", int64(0), int64(10)})},
		{"a waiter without owner", waiters([4]any{uint64(2), "", int64(0), int64(10)})},
		{"a waiter with a negative TTL", waiters([4]any{uint64(2), "y", int64(-1), int64(10)})},
		{"a fingerprint cut short", ok[:len(ok)-1]},
		{"huge lock count", cat([]byte{snapshotVersionNoUsers}, uv(1), sv(0), sv(0), uv(5), uv(1), uv(1<<62), bytes.Repeat([]byte{1}, 40))},
		{"largest lock count", cat([]byte{snapshotVersionNoUsers}, uv(1), sv(0), sv(0), uv(5), uv(1), uv(math.MaxUint64))},
		{"huge ID count", cat([]byte{snapshotVersionNoUsers}, uv(1), sv(0), sv(0), uv(5), uv(1), uv(0), uv(1<<62), bytes.Repeat([]byte{1}, 40))},
		{"more locks than encoded", cat([]byte{snapshotVersionNoUsers}, uv(1), sv(0), sv(0), uv(5), uv(1), uv(2), uv(1), []byte("a"), uv(1), []byte("x"), uv(5), sv(0), uv(1), uv(0))},
		{"more IDs than encoded", cat([]byte{snapshotVersionNoUsers}, uv(1), sv(0), sv(0), uv(5), uv(1), uv(0), uv(2), uv(1), sv(0), sv(0), uv(0))},
		{"huge name length", cat([]byte{snapshotVersionNoUsers}, uv(1), sv(0), sv(0), uv(5), uv(1), uv(1), uv(math.MaxUint64), bytes.Repeat([]byte{1}, 10))},
		{"a lock of version 0", versioned(0)},
		{"a lock of a version never given", versioned(9)},
		{"a huge count of scripts", append(ok[:len(ok)-1:len(ok)-1], uv(1<<40)...)},
		{"version 4 cut before its users", withUsers()},
		{"a huge count of users", withUsers(uv(1 << 40))},
		{"more users than allowed", withUsers(uv(acl.MaxUsers+1), bytes.Repeat(cat(uv(1), []byte("u"), uv(0)), acl.MaxUsers+1))},
		{"a user of an invalid name", withUsers(uv(1), uv(3), []byte("a b"), uv(0))},
		{"users out of order", withUsers(uv(2), uv(1), []byte("b"), uv(0), uv(1), []byte("a"), uv(0))},
		{"the same user twice", withUsers(uv(2), uv(1), []byte("a"), uv(0), uv(1), []byte("a"), uv(0))},
		{"a user of a bad rule", withUsers(uv(1), uv(1), []byte("a"), uv(1), uv(3), []byte("bad"))},
		{"a user with a clear password", withUsers(uv(1), uv(1), []byte("a"), uv(1), uv(3), []byte(">pw"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := populated(t)
			before := tab.Snapshot()
			if err := tab.Restore(tt.data); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Restore(% x) = %v, want ErrCorrupt", tt.data, err)
			}
			if after := tab.Snapshot(); !bytes.Equal(before, after) {
				t.Errorf("a failed Restore changed the table")
			}
		})
	}
	t.Run("every truncation of a real snapshot", func(t *testing.T) {
		tab := populated(t)
		before := tab.Snapshot()
		for n := range len(before) {
			if err := tab.Restore(before[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Restore of the first %d of %d bytes = %v, want ErrCorrupt", n, len(before), err)
			}
		}
		if after := tab.Snapshot(); !bytes.Equal(before, after) {
			t.Errorf("a failed Restore changed the table")
		}
	})
}

// TestRestoreRejectsDuplicateIDs: a snapshot never remembers an ID twice
// (Snapshot writes each live ID once), so one that does is corrupt. Accepting
// it leaves seen and order out of step: when the first record ages out the
// ID is forgotten although the second is live, and Snapshot then writes the
// second with value 0.
func TestRestoreRejectsDuplicateIDs(t *testing.T) {
	snap := snapshotBytes(1, 0, 0, 5, nil, [][4]any{
		{uint64(7), int64(0), int64(1), uint32(1)},
		{uint64(7), int64(0), int64(2), uint32(1)},
	})
	tab := NewTable()
	if err := tab.Restore(snap); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Restore of a snapshot remembering ID 7 twice = %v, want ErrCorrupt", err)
	}
}

func TestConcurrentReads(t *testing.T) {
	tab := NewTable()
	log := randomLog(rand.New(rand.NewPCG(3, 3)), 2000)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tab.Get("a")
				tab.Len()
				tab.Clock()
				tab.NextDeadline()
				tab.Snapshot()
			}
		})
	}
	half := len(log) / 2
	applyAll(tab, log[:half])
	snap := tab.Snapshot()
	applyAll(tab, log[half:])
	if err := tab.Restore(snap); err != nil {
		t.Error(err)
	}
	applyAll(tab, log[half:])
	close(stop)
	wg.Wait()
}

func FuzzRestore(f *testing.F) {
	f.Add([]byte{})
	f.Add(NewTable().Snapshot())
	f.Add(populated(f).Snapshot())
	for seed := range uint64(3) {
		tab := NewTable()
		applyAll(tab, randomLog(rand.New(rand.NewPCG(seed, 9)), 100))
		f.Add(tab.Snapshot())
	}
	tab := NewTable()
	applyAll(tab, randomWaitLog(rand.New(rand.NewPCG(1, 9)), 100))
	f.Add(tab.Snapshot())
	f.Add(sharedTable(f).Snapshot())
	f.Add(snapshotBytes(1, 0, 0, 5, [][4]any{{"a", "x", uint64(5), int64(0)}}, [][4]any{{uint64(1), int64(0), int64(5), fp(lockCmd(1, "a", "x", 10))}}))
	base := populated(f)
	baseSnap := base.Snapshot()
	f.Fuzz(func(t *testing.T, data []byte) {
		tab := NewTable()
		if err := tab.Restore(baseSnap); err != nil {
			t.Fatal(err)
		}
		err := tab.Restore(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Restore error %v is not ErrCorrupt", err)
			}
			if !bytes.Equal(tab.Snapshot(), baseSnap) {
				t.Fatalf("a failed Restore changed the table")
			}
			return
		}
		// What was restored snapshots to a stable form.
		s1 := tab.Snapshot()
		again := NewTable()
		if err := again.Restore(s1); err != nil {
			t.Fatalf("the snapshot of a restored table does not restore: %v", err)
		}
		if s2 := again.Snapshot(); !bytes.Equal(s1, s2) {
			t.Fatalf("Snapshot, Restore, Snapshot differs:\n% x\n% x", s1, s2)
		}
		// And the restored table can go on applying.
		term, stamp, _ := tab.Clock()
		tab.Apply(term, &Batch{Term: term, Stamp: stamp + 1000, Cmds: []Command{
			lockCmd(1, "a", "x", 10), unlockCmd(2, "b", "x"), renewCmd(3, "a", "x", 5),
		}}, nil)
		tab.Apply(term+1, &Batch{Term: term + 1, Stamp: 0, Cmds: []Command{lockCmd(4, "c", "y", 0)}}, nil)
		tab.Snapshot()
	})
}

// manyLocksLog returns n entries of one term drawn from r over 5,000 names,
// enough for a lock tree of several levels: LOCK with and without WAIT,
// UNLOCK and RENEW, leases and waits of up to a few seconds.
func manyLocksLog(r *rand.Rand, n int) []entry {
	owners := []string{"x", "y", "z"}
	var log []entry
	var stamp int64
	var id uint64
	for range n {
		stamp += r.Int64N(100)
		b := Batch{Term: 1, Stamp: stamp}
		for range 1 + r.IntN(20) {
			id++
			name, owner := fmt.Sprint("n", r.IntN(5000)), owners[r.IntN(len(owners))]
			switch r.IntN(4) {
			case 0:
				b.Cmds = append(b.Cmds, lockCmd(id, name, owner, r.Int64N(5000)))
			case 1:
				b.Cmds = append(b.Cmds, waitCmd(id, name, owner, r.Int64N(5000), r.Int64N(3000)))
			case 2:
				b.Cmds = append(b.Cmds, unlockCmd(id, name, owner))
			default:
				b.Cmds = append(b.Cmds, renewCmd(id, name, owner, r.Int64N(5000)))
			}
		}
		log = append(log, entry{term: 1, batch: b})
	}
	return log
}

// TestViewEncodesTheStateWhenTaken takes views of a table at three moments
// while it applies a random log, and encodes each on a goroutine of its own
// while the table applies on: each encodes the snapshot of its moment.
// Under -race, a write by Apply to anything a view reads (a node of the lock
// tree, a held lock, a queue, the array of remembered IDs) is reported.
func TestViewEncodesTheStateWhenTaken(t *testing.T) {
	logs := []struct {
		name string
		log  func(seed uint64) []entry
	}{
		{"locks, leases and request IDs", func(seed uint64) []entry { return randomLog(rand.New(rand.NewPCG(seed, 4)), 6000) }},
		{"queued requests", func(seed uint64) []entry { return randomWaitLog(rand.New(rand.NewPCG(seed, 4)), 6000) }},
		{"thousands of locks", func(seed uint64) []entry { return manyLocksLog(rand.New(rand.NewPCG(seed, 4)), 1500) }},
	}
	compacted, deep := 0, 0
	for _, l := range logs {
		for seed := range uint64(5) {
			t.Run(fmt.Sprintf("%s, seed %d: a view encoded while the table applies on is the snapshot of its moment", l.name, seed), func(t *testing.T) {
				log := l.log(seed)
				cuts := []int{len(log) / 4, len(log) / 2, 3 * len(log) / 4}
				tab, ref := NewTable(), NewTable()
				want := make([][]byte, len(cuts))
				got := make([][]byte, len(cuts))
				var viewed *seenRec
				var wg sync.WaitGroup
				for i, e := range log {
					tab.Apply(e.term, &e.batch, nil)
					ref.Apply(e.term, &e.batch, nil)
					for k, cut := range cuts {
						if i != cut {
							continue
						}
						want[k] = ref.Snapshot()
						view := tab.View()
						if viewed == nil && len(view.seen) > 0 {
							viewed = &view.seen[0]
						}
						if view.locks.Height() > 1 {
							deep++
						}
						wg.Go(func() { got[k] = view.Encode() })
					}
				}
				wg.Wait()
				for k := range cuts {
					if !bytes.Equal(got[k], want[k]) {
						t.Errorf("the view taken after entry %d encoded %d bytes that differ from the snapshot of its moment (%d bytes)", cuts[k], len(got[k]), len(want[k]))
					}
				}
				if !bytes.Equal(tab.Snapshot(), ref.Snapshot()) {
					t.Fatal("the table that was viewed went on differently")
				}
				if viewed != nil && (len(tab.order) == 0 || &tab.order[0] != viewed) {
					compacted++
				}
			})
		}
	}
	if compacted == 0 {
		t.Error("no log compacted the remembered IDs after a view: the test tests little")
	}
	if deep == 0 {
		t.Error("no view shared a lock tree of more than one level: the test tests little")
	}
}

// TestViewCopiesNoLock: View runs on the applier (replication) between two
// entries, so it must not copy or sort the locks: what it allocates does not
// grow with their number.
func TestViewCopiesNoLock(t *testing.T) {
	for _, n := range []int{1000, 100_000} {
		tab := tableOfLocks(t, n)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 10 {
			tab.View()
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / 10; per > 1024 {
			t.Errorf("View of a table of %d locks allocated %d B", n, per)
		}
	}
}

// TestRestoreRefusesVersion1: a snapshot written before request IDs kept
// their commands' fingerprints is refused whole, with an error naming its
// version.
func TestRestoreRefusesVersion1(t *testing.T) {
	v1 := cat([]byte{1}, uv(1), sv(0), sv(0), uv(5),
		uv(1), uv(1), []byte("a"), uv(1), []byte("x"), uv(5), sv(0), uv(0), // lock a, held by x
		uv(1), uv(1), sv(0), sv(5)) // ID 1, remembered at 0 with result 5
	tab := populated(t)
	before := tab.Snapshot()
	err := tab.Restore(v1)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(fmt.Sprint(err), "version 1") {
		t.Errorf("Restore of a version 1 snapshot = %v, want ErrCorrupt naming version 1", err)
	}
	if !bytes.Equal(tab.Snapshot(), before) {
		t.Error("the refused snapshot changed the table")
	}
}

func TestViewKeepsAQueuedRequestsResultOfItsMoment(t *testing.T) {
	tab := NewTable()
	run(t, tab,
		at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
		at(1, 0, waitCmd(2, "a", "y", 0, 1000)).returns(res(2, Queued)),
	)
	before := tab.Snapshot()
	view := tab.View()
	run(t, tab, at(1, 10, unlockCmd(3, "a", "x")).returns(res(3, 1), res(2, 2)))
	if got := view.Encode(); !bytes.Equal(got, before) {
		t.Fatalf("view taken while 2 was queued encodes\n% x\nwant\n% x", got, before)
	}
	restored := NewTable()
	if err := restored.Restore(tab.Snapshot()); err != nil {
		t.Fatal(err)
	}
	// The request answered after it was remembered answers its final result.
	run(t, restored, at(1, 20, waitCmd(2, "a", "y", 0, 1000)).returns(res(2, 2)))
	run(t, tab, at(1, 20, waitCmd(2, "a", "y", 0, 1000)).returns(res(2, 2)))
	if !bytes.Equal(restored.Snapshot(), tab.Snapshot()) {
		t.Fatal("restored table differs")
	}
}

// TestViewKeepsTheQueuesOfItsMoment changes a queue in every way after a
// view of it was taken: the view still encodes the queue of its moment. The
// view shares the queue's array, which the table must never write where the
// view reads.
func TestViewKeepsTheQueuesOfItsMoment(t *testing.T) {
	tests := []struct {
		name    string
		waiters int // queued for "a", held by x: 2 (wait 1000), 3 (wait 50), 4, 5... (wait 1000)
		then    []step
	}{
		{"the head of the queue is cancelled", 4, []step{at(1, 10, cancelCmd(10, "a", 2))}},
		{"a request in the middle is cancelled", 4, []step{at(1, 10, cancelCmd(10, "a", 4))}},
		{"the end of the queue is cancelled", 4, []step{at(1, 10, cancelCmd(10, "a", 5))}},
		{"a wait in the middle runs out", 4, []step{at(1, 50, tickCmd())}},
		{"the lock is handed to the head", 4, []step{at(1, 10, unlockCmd(10, "a", "x"))}},
		{"a request joins a queue with room left", 3, []step{at(1, 10, waitCmd(10, "a", "v", 0, 1000))}},
		{"the end leaves and a request joins", 4, []step{at(1, 10, cancelCmd(10, "a", 5)), at(1, 11, waitCmd(11, "a", "v", 0, 1000))}},
		{"the head leaves and a request joins", 3, []step{at(1, 10, cancelCmd(10, "a", 2)), at(1, 11, waitCmd(11, "a", "v", 0, 1000))}},
		{"the lock is handed on and a request joins", 3, []step{at(1, 10, unlockCmd(10, "a", "x")), at(1, 11, waitCmd(11, "a", "v", 0, 1000))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable()
			queue := at(1, 0, lockCmd(1, "a", "x", 0))
			for id := uint64(2); id < uint64(2+tt.waiters); id++ {
				wait := int64(1000)
				if id == 3 {
					wait = 50
				}
				queue.cmds = append(queue.cmds, waitCmd(id, "a", fmt.Sprint("w", id), 0, wait))
			}
			tab.Apply(1, queue.batch(), nil)
			before := tab.Snapshot()
			view := tab.View()
			for _, s := range tt.then {
				tab.Apply(s.entry(), s.batch(), nil)
			}
			if bytes.Equal(tab.Snapshot(), before) {
				t.Fatal("the change changed nothing: the test tests nothing")
			}
			if got := view.Encode(); !bytes.Equal(got, before) {
				t.Errorf("the view encodes\n% x\nwant\n% x", got, before)
			}
		})
	}
}

// BenchmarkSnapshot measures the two halves of a snapshot of a table like one
// under lockbench's load: 10,000 held locks and 1,000,000 remembered request
// IDs. View runs on the applier; Encode runs beside it.
func BenchmarkSnapshot(b *testing.B) {
	tab := NewTable()
	batch := Batch{Term: 1, Stamp: 1_700_000_000_000}
	id := uint64(0)
	for i := range 1000 {
		batch.Cmds = batch.Cmds[:0]
		for j := range 1000 {
			id++
			name := fmt.Sprintf("lockbench:%d", (i*1000+j)%10_000)
			batch.Cmds = append(batch.Cmds, lockCmd(id, name, fmt.Sprintf("owner-%d", j), 30_000))
		}
		batch.Stamp += 10
		tab.Apply(1, &batch, nil)
	}
	if tab.Len() != 10_000 {
		b.Fatalf("%d locks", tab.Len())
	}
	b.Run("View", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tab.View()
		}
	})
	view := tab.View()
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			view.Encode()
		}
	})
}

// tableOfLocks returns a table holding n locks, each leased for an hour and
// taken by a request with an ID of its own, 1000 to a batch.
func tableOfLocks(tb testing.TB, n int) *Table {
	tb.Helper()
	tab := NewTable()
	batch := Batch{Term: 1, Stamp: 1_700_000_000_000}
	for i := 0; i < n; i += 1000 {
		batch.Cmds = batch.Cmds[:0]
		for j := i; j < min(i+1000, n); j++ {
			batch.Cmds = append(batch.Cmds, lockCmd(uint64(j+1), fmt.Sprintf("lock:%d", j), fmt.Sprintf("owner-%d", j%1000), 3_600_000))
		}
		tab.Apply(1, &batch, nil)
	}
	if tab.Len() != n {
		tb.Fatalf("%d locks, want %d", tab.Len(), n)
	}
	return tab
}

// BenchmarkView measures View on a table of 1,000,000 held locks. View runs
// on the applier between two entries, so its time is how long each
// snapshot stalls writes. Apply is an entry of 64 renewals of locks spread
// over the table, before any view; ApplyAfterView the same right after a
// view, which pays for separating what the entry changes from what the view
// shares.
func BenchmarkView(b *testing.B) {
	const n = 1_000_000
	tab := tableOfLocks(b, n)
	stamp := int64(1_700_000_000_000)
	id := uint64(n)
	batch := Batch{Term: 1}
	var dst []Result
	apply := func(b *testing.B, view bool) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			if view {
				tab.View()
			}
			batch.Cmds = batch.Cmds[:0]
			for j := range 64 {
				id++
				k := (int(id)*7919 + j*15_619) % n
				batch.Cmds = append(batch.Cmds, renewCmd(id, fmt.Sprintf("lock:%d", k), fmt.Sprintf("owner-%d", k%1000), 3_600_000))
			}
			stamp++
			batch.Stamp = stamp
			b.StartTimer()
			if dst = tab.Apply(1, &batch, dst[:0]); dst[0].Value != 1 {
				b.Fatalf("renewal refused: %v", dst[0])
			}
		}
	}
	b.Run("Apply", func(b *testing.B) { apply(b, false) })
	b.Run("View", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tab.View()
		}
	})
	b.Run("ApplyAfterView", func(b *testing.B) { apply(b, true) })
}
