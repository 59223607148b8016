package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func ent(term, index uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Term: &term, Index: &index, Data: []byte(data)}
}

func hard(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: &term, Vote: &vote, Commit: &commit}
}

// indexes returns "term/data" of each entry, for comparisons.
func indexes(es []*raftpb.Entry) []string {
	var s []string
	for _, e := range es {
		s = append(s, fmt.Sprintf("%d/%s", e.GetTerm(), e.GetData()))
	}
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testOptions(seg int64) Options {
	return Options{ClusterID: "test", NodeID: 1, SegmentSize: seg}
}

// openTest opens dir as node 1 of cluster "test" and closes it at the end.
func openTest(t testing.TB, dir string, seg int64) (*Dir, *Recovered) {
	t.Helper()
	d, rec, err := Open(dir, testOptions(seg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, rec
}

func sameEntries(t testing.TB, got []*raftpb.Entry, want ...string) {
	t.Helper()
	g := indexes(got)
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Fatalf("replayed %v; want %v", g, want)
	}
}

func TestLogReplaysEntriesAndHardState(t *testing.T) {
	dir := t.TempDir()
	d, rec := openTest(t, dir, 1<<20)
	if !rec.Empty() {
		t.Fatalf("a new directory recovers %+v", rec)
	}
	must(t, d.Save(hard(1, 1, 0), []*raftpb.Entry{ent(1, 1, "a"), ent(1, 2, "b"), ent(1, 3, "c")}))
	must(t, d.Save(hard(1, 1, 2), nil))
	// Raft overwrites a conflicting suffix from index 2.
	must(t, d.Save(hard(2, 2, 2), []*raftpb.Entry{ent(2, 2, "B"), ent(2, 3, "C"), ent(2, 4, "D")}))
	d.Close()

	_, rec = openTest(t, dir, 1<<20)
	sameEntries(t, rec.Entries, "1/a", "2/B", "2/C", "2/D")
	if hs := rec.HardState; hs.GetTerm() != 2 || hs.GetVote() != 2 || hs.GetCommit() != 2 {
		t.Fatalf("hard state %v", hs)
	}
}

// segmentPath returns the newest segment of dir's log.
func segmentPath(t testing.TB, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if len(files) == 0 {
		t.Fatal("no segment")
	}
	return files[len(files)-1]
}

func patch(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	_, err = f.WriteAt(b, off)
	must(t, err)
}

// A crash tears only the last write. Whatever part of it did not reach the
// disk reads as zeros, in whole sectors; such a tail is cut.
func TestLogCutsATornTail(t *testing.T) {
	big := strings.Repeat("x", 3*sector) // an entry spanning several sectors
	for _, tc := range []struct {
		name string
		tear func(start, end int64) (off int64, zeros int)
	}{
		{"the end mark never written", func(s, e int64) (int64, int) { return e - 1, 1 }},
		{"the last sector never written", func(s, e int64) (int64, int) {
			b := (e - 1) / sector * sector
			return b, int(e - b)
		}},
		{"a middle sector never written", func(s, e int64) (int64, int) {
			b := (s/sector + 2) * sector
			return b, sector
		}},
		{"nothing but the header written", func(s, e int64) (int64, int) { return s + recHeader, int(e - s - recHeader) }},
		{"the header cut at a sector boundary", func(s, e int64) (int64, int) {
			return s + 6, int(e - s - 6)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d, _ := openTest(t, dir, 1<<20)
			must(t, d.Save(hard(1, 1, 1), []*raftpb.Entry{ent(1, 1, "a")}))
			// Pad so that the torn record's header straddles a sector
			// boundary 6 bytes in.
			pad := 1
			for (d.wal.off+int64(len(appendMsg(nil, recEntry, ent(1, 2, strings.Repeat("p", pad))))))%sector != sector-6 {
				pad++
			}
			must(t, d.Save(nil, []*raftpb.Entry{ent(1, 2, strings.Repeat("p", pad))}))
			start := d.wal.off
			must(t, d.Save(nil, []*raftpb.Entry{ent(1, 3, "torn"+big)}))
			end := d.wal.off
			path := segmentPath(t, dir)
			d.Close()

			off, n := tc.tear(start, end)
			patch(t, path, off, make([]byte, n))

			d, rec := openTest(t, dir, 1<<20)
			if len(rec.Entries) != 2 {
				t.Fatalf("after a torn tail replayed %d entries; want the 2 whole ones", len(rec.Entries))
			}
			// Appending goes on where the good records end.
			must(t, d.Save(nil, []*raftpb.Entry{ent(1, 3, "c")}))
			d.Close()
			_, rec = openTest(t, dir, 1<<20)
			if len(rec.Entries) != 3 || string(rec.Entries[2].GetData()) != "c" {
				t.Fatalf("replayed %v after appending past a cut tail", indexes(rec.Entries))
			}
		})
	}
}

// Bytes changed after they were written are damage, never a torn tail:
// the node does not start, and the error names the file and offset.
func TestLogRefusesDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, recs []int64)
	}{
		{"a flipped bit in the middle record", func(t *testing.T, path string, recs []int64) {
			flipBit(t, path, recs[1]+recHeader+2, 0)
		}},
		{"a flipped bit in the last record", func(t *testing.T, path string, recs []int64) {
			flipBit(t, path, recs[len(recs)-1]-3, 4)
		}},
		{"a flipped bit in the last record's length", func(t *testing.T, path string, recs []int64) {
			flipBit(t, path, recs[len(recs)-2], 6)
		}},
		{"a zeroed record before valid ones", func(t *testing.T, path string, recs []int64) {
			patch(t, path, recs[1], make([]byte, recs[2]-recs[1]))
		}},
		{"a flipped bit in the segment header", func(t *testing.T, path string, recs []int64) {
			flipBit(t, path, 3, 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d, _ := openTest(t, dir, 1<<20)
			recs := []int64{d.wal.off}
			for i := uint64(1); i <= 4; i++ {
				must(t, d.Save(hard(1, 1, i-1), []*raftpb.Entry{ent(1, i, fmt.Sprint("entry-", i))}))
				recs = append(recs, d.wal.off)
			}
			path := segmentPath(t, dir)
			d.Close()
			tc.damage(t, path, recs)
			_, _, err := Open(dir, testOptions(1<<20))
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.File != path {
				t.Fatalf("Open after damage: %v; want a CorruptError naming %s", err, path)
			}
			t.Log(err)
		})
	}
}

func flipBit(t testing.TB, path string, off int64, bit uint) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	patch(t, path, off, []byte{b[off] ^ 1<<bit})
}

// Whatever single bit is flipped in a stopped node's log, the node either
// refuses to start or starts with every record it had: never with fewer.
func TestLogBitFlipsNeverLoseRecords(t *testing.T) {
	src := t.TempDir()
	d, _ := openTest(t, src, 8<<10)
	var want []string
	for i := uint64(1); i <= 12; i++ {
		e := ent(1, i, fmt.Sprint("entry-", i, string(make([]byte, int(i)*37))))
		must(t, d.Save(hard(1, 1, i-1), []*raftpb.Entry{e}))
		want = append(want, fmt.Sprintf("%d/%s", 1, e.GetData()))
	}
	path := segmentPath(t, src)
	written := d.wal.off
	d.Close()
	orig, err := os.ReadFile(path)
	must(t, err)

	refused, clean := 0, 0
	for off := int64(0); off < written+recHeader+64; off++ {
		bit := uint(off % 8)
		dir := t.TempDir()
		must(t, os.CopyFS(dir, os.DirFS(src)))
		seg := filepath.Join(dir, "wal", filepath.Base(path))
		data := append([]byte(nil), orig...)
		data[off] ^= 1 << bit
		must(t, os.WriteFile(seg, data, 0o600))
		d, rec, err := Open(dir, testOptions(8<<10))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("bit %d of byte %d: %v", bit, off, err)
			}
			refused++
			continue
		}
		d.Close()
		if got := indexes(rec.Entries); fmt.Sprint(got) != fmt.Sprint(want) || rec.HardState.GetCommit() != 11 {
			t.Fatalf("bit %d of byte %d flipped: started with %d entries, commit %d; want %d, commit 11",
				bit, off, len(got), rec.HardState.GetCommit(), len(want))
		}
		if off < written {
			t.Fatalf("bit %d of byte %d flipped inside the log went unnoticed", bit, off)
		}
		clean++
	}
	// A stray bit where the next record's header would be cannot be told
	// from a damaged header: refused. Further on it is plainly not a record.
	t.Logf("%d flips refused, %d harmless (after the end of the log)", refused, clean)
	if clean < 64 {
		t.Fatalf("only %d flips past the end of the log were harmless; want at least 64", clean)
	}
}

func TestLogRefusesDamageBeforeTheLastSegment(t *testing.T) {
	dir := t.TempDir()
	d, _ := openTest(t, dir, 64) // tiny segments: every save starts one
	for i := uint64(1); i <= 4; i++ {
		must(t, d.Save(hard(1, 1, i-1), []*raftpb.Entry{ent(1, i, "x")}))
	}
	if len(d.wal.segs) < 3 {
		t.Fatalf("expected several segments, have %d", len(d.wal.segs))
	}
	first := d.wal.segs[0].path
	d.Close()
	flipBit(t, first, segHeader+recHeader+1, 3)
	if _, _, err := Open(dir, testOptions(64)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a damaged older segment: %v", err)
	}
}

// Several Readys' writes share one sync, also when they cross into new
// segments: every record lands, in order, in the segment it belongs to.
func TestLogWritesSharingOneSyncAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	d, _ := openTest(t, dir, 128)
	for i := uint64(1); i <= 10; i++ {
		must(t, d.Write(hard(1, 1, i-1), []*raftpb.Entry{ent(1, i, fmt.Sprint("entry-", i))}))
	}
	must(t, d.wal.syncNow())
	if len(d.wal.segs) < 3 {
		t.Fatalf("expected the writes to span several segments, have %d", len(d.wal.segs))
	}
	d.Close()
	_, rec := openTest(t, dir, 128)
	if len(rec.Entries) != 10 || rec.Entries[0].GetIndex() != 1 || rec.Entries[9].GetIndex() != 10 {
		t.Fatalf("replayed %v; want entries 1..10", indexes(rec.Entries))
	}
	if rec.HardState.GetCommit() != 9 {
		t.Fatalf("hard state %v; want commit 9", rec.HardState)
	}
}

func TestLogCompactAndReset(t *testing.T) {
	dir := t.TempDir()
	d, _ := openTest(t, dir, 64)
	for i := uint64(1); i <= 6; i++ {
		must(t, d.Save(hard(1, 1, i-1), []*raftpb.Entry{ent(1, i, "x")}))
	}
	n := len(d.wal.segs)
	must(t, d.SaveSnapshot(snapshotAt(1, 3, "state")))
	must(t, d.Compact(4))
	if len(d.wal.segs) >= n {
		t.Fatalf("Compact(4) kept all %d segments", n)
	}
	d.Close()
	_, rec := openTest(t, dir, 64)
	if rec.Entries[0].GetIndex() > 4 || rec.Entries[len(rec.Entries)-1].GetIndex() != 6 {
		t.Fatalf("after Compact(4) replayed %v..%v; want entries from at most 4 to 6",
			rec.Entries[0].GetIndex(), rec.Entries[len(rec.Entries)-1].GetIndex())
	}
	if rec.HardState.GetCommit() != 5 {
		t.Fatalf("hard state lost with the compacted segments: %v", rec.HardState)
	}
}

func TestLogResetAfterALeadersSnapshot(t *testing.T) {
	dir := t.TempDir()
	d, _ := openTest(t, dir, 64)
	for i := uint64(1); i <= 3; i++ {
		must(t, d.Save(hard(1, 1, i-1), []*raftpb.Entry{ent(1, i, "x")}))
	}
	must(t, d.SaveSnapshot(snapshotAt(3, 100, "state")))
	must(t, d.ResetLog(100))
	must(t, d.Save(hard(3, 3, 100), []*raftpb.Entry{ent(3, 101, "y")}))
	d.Close()
	_, rec := openTest(t, dir, 64)
	if rec.Snapshot.GetMetadata().GetIndex() != 100 || len(rec.Entries) != 1 || rec.Entries[0].GetIndex() != 101 {
		t.Fatalf("after a reset at 100 recovered snapshot %d and %v", rec.Snapshot.GetMetadata().GetIndex(), indexes(rec.Entries))
	}
	files, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	for _, f := range files {
		var seq, first uint64
		fmt.Sscanf(filepath.Base(f), "%016x-%016x.wal", &seq, &first)
		if first < 101 {
			t.Fatalf("segment %s from before the reset survived", filepath.Base(f))
		}
	}
}

func TestLogSyncsEntriesAndVotesButNotACommitAlone(t *testing.T) {
	dir := t.TempDir()
	d, _ := openTest(t, dir, 1<<20)
	base := d.Syncs()
	step := func(hs *raftpb.HardState, ents []*raftpb.Entry, wantSyncs uint64, what string) {
		t.Helper()
		must(t, d.Write(hs, ents))
		must(t, d.Flush())
		if got := d.Syncs() - base; got != wantSyncs {
			t.Fatalf("after %s: %d syncs; want %d", what, got, wantSyncs)
		}
	}
	step(hard(1, 1, 0), []*raftpb.Entry{ent(1, 1, "a"), ent(1, 2, "b")}, 1, "entries and a vote")
	step(hard(1, 1, 2), nil, 1, "a commit index alone")
	step(nil, []*raftpb.Entry{ent(1, 3, "c")}, 2, "an entry")
	step(hard(2, 0, 2), nil, 3, "a new term")
	step(hard(2, 3, 2), nil, 4, "a vote")
	step(hard(2, 3, 3), nil, 4, "a commit index alone")
	d.Close()

	// What was written without a sync is still in the log (the OS has it).
	_, rec := openTest(t, dir, 1<<20)
	if got := rec.HardState.GetCommit(); got != 3 || len(rec.Entries) != 3 {
		t.Fatalf("replayed commit %d and %d entries; want 3 and 3", got, len(rec.Entries))
	}
}

func TestBeforeSyncRunsBeforeEachSync(t *testing.T) {
	calls := 0
	o := testOptions(1 << 20)
	o.BeforeSync = func() error { calls++; return nil }
	d, _, err := Open(t.TempDir(), o)
	must(t, err)
	defer d.Close()
	must(t, d.Save(hard(1, 1, 0), []*raftpb.Entry{ent(1, 1, "a")}))
	if calls != 1 {
		t.Fatalf("BeforeSync ran %d times for one sync", calls)
	}
	full := errors.New("no space left on device")
	o.BeforeSync = func() error { return full }
	d.wal.before = o.BeforeSync
	if err := d.Save(nil, []*raftpb.Entry{ent(1, 2, "b")}); !errors.Is(err, full) {
		t.Fatalf("Save when the sync fails: %v", err)
	}
}
