package lock

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
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
		at(1, 20, lockCmd(1, "c", "z", 0)).returns(res(1, 1)), // remembered
		at(1, 2009, lockCmd(4, "a", "z", 0)).returns(res(4, 0)),
		at(1, 2010, lockCmd(5, "a", "z", 0)).returns(res(5, 3)), // expired; the fence went on
	)
	wantState(t, tab, map[string]Info{"a": {Owner: "z", Token: 3}, "b": {Owner: "y", Token: 2}})
}

// snapshotBytes builds a snapshot by hand.
func snapshotBytes(term uint64, stamp, now int64, fence uint64, locks [][4]any, seen [][3]any) []byte {
	b := cat([]byte{snapshotVersion}, uv(term), sv(stamp), sv(now), uv(fence), uv(uint64(len(locks))))
	for _, l := range locks {
		name, owner := l[0].(string), l[1].(string)
		b = cat(b, uv(uint64(len(name))), []byte(name), uv(uint64(len(owner))), []byte(owner), uv(l[2].(uint64)), sv(l[3].(int64)), uv(0))
	}
	b = cat(b, uv(uint64(len(seen))))
	for _, s := range seen {
		b = cat(b, uv(s[0].(uint64)), sv(s[1].(int64)), sv(s[2].(int64)))
	}
	return b
}

func TestRestoreHandMade(t *testing.T) {
	snap := snapshotBytes(3, 100, 50, 9,
		[][4]any{{"a", "x", uint64(4), int64(0)}, {"b", "y", uint64(9), int64(70)}},
		[][3]any{{uint64(11), int64(40), int64(4)}},
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
	run(t, tab, at(3, 120, lockCmd(11, "z", "z", 0), lockCmd(12, "b", "x", 0)).returns(res(11, 4), res(12, 10)))
}

func TestRestoreCorrupt(t *testing.T) {
	lk := func(name, owner string, token uint64, deadline int64) [4]any {
		return [4]any{name, owner, token, deadline}
	}
	ok := snapshotBytes(1, 0, 0, 5, [][4]any{lk("a", "x", 5, 0)}, [][3]any{{uint64(1), int64(0), int64(5)}})
	tests := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"version 0", append([]byte{0}, ok[1:]...)},
		{"version 2", append([]byte{2}, ok[1:]...)},
		{"version only", []byte{snapshotVersion}},
		{"trailing byte", append(slices.Clone(ok), 0)},
		{"empty name", snapshotBytes(1, 0, 0, 5, [][4]any{lk("", "x", 5, 0)}, nil)},
		{"empty owner", snapshotBytes(1, 0, 0, 5, [][4]any{lk("a", "", 5, 0)}, nil)},
		{"token 0", snapshotBytes(1, 0, 0, 5, [][4]any{lk("a", "x", 0, 0)}, nil)},
		{"token above the fence", snapshotBytes(1, 0, 0, 5, [][4]any{lk("a", "x", 6, 0)}, nil)},
		{"the same name twice", snapshotBytes(1, 0, 0, 5, [][4]any{lk("a", "x", 4, 0), lk("a", "y", 5, 0)}, nil)},
		{"huge lock count", cat([]byte{snapshotVersion}, uv(1), sv(0), sv(0), uv(5), uv(1<<62), bytes.Repeat([]byte{1}, 40))},
		{"largest lock count", cat([]byte{snapshotVersion}, uv(1), sv(0), sv(0), uv(5), uv(math.MaxUint64))},
		{"huge ID count", cat([]byte{snapshotVersion}, uv(1), sv(0), sv(0), uv(5), uv(0), uv(1<<62), bytes.Repeat([]byte{1}, 40))},
		{"more locks than encoded", cat([]byte{snapshotVersion}, uv(1), sv(0), sv(0), uv(5), uv(2), uv(1), []byte("a"), uv(1), []byte("x"), uv(5), sv(0), uv(0))},
		{"more IDs than encoded", cat([]byte{snapshotVersion}, uv(1), sv(0), sv(0), uv(5), uv(0), uv(2), uv(1), sv(0), sv(0), uv(0))},
		{"huge name length", cat([]byte{snapshotVersion}, uv(1), sv(0), sv(0), uv(5), uv(1), uv(math.MaxUint64), bytes.Repeat([]byte{1}, 10))},
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
	snap := snapshotBytes(1, 0, 0, 5, nil, [][3]any{
		{uint64(7), int64(0), int64(1)},
		{uint64(7), int64(0), int64(2)},
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
	f.Add(snapshotBytes(1, 0, 0, 5, [][4]any{{"a", "x", uint64(5), int64(0)}}, [][3]any{{uint64(1), int64(0), int64(5)}}))
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

func TestViewEncodesTheStateWhenTaken(t *testing.T) {
	compacted := 0
	for seed := range uint64(10) {
		t.Run(fmt.Sprintf("seed %d: a view encoded while the table applies on is the snapshot of its moment", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 4))
			log := randomLog(r, 6000)
			cut := len(log) / 3
			tab, ref := NewTable(), NewTable()
			applyAll(tab, log[:cut])
			applyAll(ref, log[:cut])

			view := tab.View()
			viewed := &view.seen[0]
			var got []byte
			var wg sync.WaitGroup
			wg.Go(func() { got = view.Encode() })
			applyAll(tab, log[cut:]) // with -race, a write to what the view reads is reported
			wg.Wait()
			if want := ref.Snapshot(); !bytes.Equal(got, want) {
				t.Fatalf("the view encoded %d bytes that differ from the snapshot of its moment (%d bytes)", len(got), len(want))
			}
			applyAll(ref, log[cut:])
			if !bytes.Equal(tab.Snapshot(), ref.Snapshot()) {
				t.Fatal("the table that was viewed went on differently")
			}
			if len(tab.order) == 0 || &tab.order[0] != viewed {
				compacted++
			}
		})
	}
	if compacted == 0 {
		t.Error("no seed compacted the remembered IDs after the view: the test tests little")
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

// BenchmarkSnapshot measures the two halves of a snapshot of a table like one
// under lockbench's load: 10,000 held locks and 1,000,000 remembered request
// IDs. View runs on the apply goroutine; Encode runs beside it.
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
// on the apply goroutine between two entries, so its time is how long each
// snapshot stalls writes. Apply is an entry of 64 renewals of locks spread
// over the table; ApplyAfterView the same right after a view, which pays
// for separating what the entry changes from what the view shares.
func BenchmarkView(b *testing.B) {
	const n = 1_000_000
	tab := tableOfLocks(b, n)
	b.Run("View", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tab.View()
		}
	})
	stamp := int64(1_700_000_000_000)
	id := uint64(n)
	batch := Batch{Term: 1}
	var dst []Result
	renewals := func(b *testing.B) {
		batch.Cmds = batch.Cmds[:0]
		for j := range 64 {
			id++
			k := (int(id)*7919 + j*15_619) % n
			batch.Cmds = append(batch.Cmds, renewCmd(id, fmt.Sprintf("lock:%d", k), fmt.Sprintf("owner-%d", k%1000), 3_600_000))
		}
		stamp++
		batch.Stamp = stamp
	}
	for _, view := range []bool{false, true} {
		name := "Apply"
		if view {
			name = "ApplyAfterView"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				if view {
					tab.View()
				}
				renewals(b)
				b.StartTimer()
				if dst = tab.Apply(1, &batch, dst[:0]); dst[0].Value != 1 {
					b.Fatalf("renewal refused: %v", dst[0])
				}
			}
		})
	}
}
