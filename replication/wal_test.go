package replication

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func ent(term, index uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Term: &term, Index: &index, Data: []byte(data)}
}

func hard(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: &term, Vote: &vote, Commit: &commit}
}

// indexes returns "term/index" of each entry, for comparisons.
func indexes(es []*raftpb.Entry) []string {
	var s []string
	for _, e := range es {
		s = append(s, string(rune('0'+e.GetTerm()))+"/"+string(e.GetData()))
	}
	return s
}

func openTestWAL(t *testing.T, dir string, seg int64) (*wal, *walState) {
	t.Helper()
	w, st, err := openWAL(dir, true, seg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.close() })
	return w, st
}

func TestWALReplaysEntriesAndHardState(t *testing.T) {
	dir := t.TempDir()
	w, st := openTestWAL(t, dir, 1<<20)
	if len(st.entries) != 0 || st.hard != nil {
		t.Fatalf("new log replays %v, %v", st.entries, st.hard)
	}
	must(t, w.save(hard(1, 1, 0), []*raftpb.Entry{ent(1, 1, "a"), ent(1, 2, "b"), ent(1, 3, "c")}))
	must(t, w.save(hard(1, 1, 2), nil))
	// Raft overwrites a conflicting suffix from index 2.
	must(t, w.save(hard(2, 2, 2), []*raftpb.Entry{ent(2, 2, "B"), ent(2, 3, "C"), ent(2, 4, "D")}))
	w.close()

	_, st = openTestWAL(t, dir, 1<<20)
	got, want := indexes(st.entries), []string{"1/a", "2/B", "2/C", "2/D"}
	if len(got) != len(want) {
		t.Fatalf("replayed %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("replayed %v; want %v", got, want)
		}
	}
	if st.hard.GetTerm() != 2 || st.hard.GetVote() != 2 || st.hard.GetCommit() != 2 {
		t.Fatalf("hard state %v", st.hard)
	}
}

func TestWALCutsATornTail(t *testing.T) {
	dir := t.TempDir()
	w, _ := openTestWAL(t, dir, 1<<20)
	must(t, w.save(hard(1, 1, 1), []*raftpb.Entry{ent(1, 1, "a"), ent(1, 2, "b")}))
	good := w.off
	must(t, w.save(nil, []*raftpb.Entry{ent(1, 3, "torn")}))
	path := w.segs[0].path
	w.close()

	// A crash tore the last record: half of it reached the disk.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	b := make([]byte, 64)
	f.ReadAt(b, good)
	f.WriteAt(make([]byte, 64), good+6) // keep the length, lose the rest
	f.Close()

	w, st := openTestWAL(t, dir, 1<<20)
	if got := indexes(st.entries); len(got) != 2 {
		t.Fatalf("after a torn tail replayed %v; want the 2 whole entries", got)
	}
	// Appending goes on where the good records end.
	must(t, w.save(nil, []*raftpb.Entry{ent(1, 3, "c")}))
	w.close()
	_, st = openTestWAL(t, dir, 1<<20)
	if got := indexes(st.entries); len(got) != 3 || got[2] != "1/c" {
		t.Fatalf("replayed %v after appending past a cut tail", got)
	}
}

func TestWALRefusesDamageBeforeTheLastSegment(t *testing.T) {
	dir := t.TempDir()
	w, _ := openTestWAL(t, dir, 16) // tiny segments: every save starts one
	for i := uint64(1); i <= 4; i++ {
		must(t, w.save(hard(1, 1, i-1), []*raftpb.Entry{ent(1, i, "x")}))
	}
	if len(w.segs) < 3 {
		t.Fatalf("expected several segments, have %d", len(w.segs))
	}
	first := w.segs[0].path
	w.close()
	f, err := os.OpenFile(first, os.O_RDWR, 0)
	must(t, err)
	f.WriteAt([]byte{0xff, 0xff}, 9) // flip payload bytes: the CRC fails
	f.Close()
	if _, _, err := openWAL(dir, true, 16); err == nil {
		t.Fatal("a damaged older segment was accepted")
	}
}

// Several Readys' writes share one sync, also when they cross into new
// segments: every record lands, in order, in the segment it belongs to.
func TestWALWritesSharingOneSyncAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	w, _ := openTestWAL(t, dir, 64)
	for i := uint64(1); i <= 10; i++ {
		must(t, w.write(hard(1, 1, i-1), []*raftpb.Entry{ent(1, i, fmt.Sprint("entry-", i))}))
	}
	must(t, w.syncNow())
	if len(w.segs) < 3 {
		t.Fatalf("expected the writes to span several segments, have %d", len(w.segs))
	}
	w.close()
	_, st := openTestWAL(t, dir, 64)
	if len(st.entries) != 10 || st.entries[0].GetIndex() != 1 || st.entries[9].GetIndex() != 10 {
		t.Fatalf("replayed %v; want entries 1..10", indexes(st.entries))
	}
	if st.hard.GetCommit() != 9 {
		t.Fatalf("hard state %v; want commit 9", st.hard)
	}
}

func TestWALCompactAndReset(t *testing.T) {
	dir := t.TempDir()
	w, _ := openTestWAL(t, dir, 16)
	for i := uint64(1); i <= 6; i++ {
		must(t, w.save(hard(1, 1, i-1), []*raftpb.Entry{ent(1, i, "x")}))
	}
	n := len(w.segs)
	must(t, w.compact(4))
	if len(w.segs) >= n {
		t.Fatalf("compact(4) kept all %d segments", n)
	}
	w.close()
	_, st := openTestWAL(t, dir, 16)
	if st.entries[0].GetIndex() > 4 || st.entries[len(st.entries)-1].GetIndex() != 6 {
		t.Fatalf("after compact(4) replayed %v..%v; want entries from at most 4 to 6",
			st.entries[0].GetIndex(), st.entries[len(st.entries)-1].GetIndex())
	}
	if st.hard.GetCommit() != 5 {
		t.Fatalf("hard state lost with the compacted segments: %v", st.hard)
	}

	w, _ = openTestWAL(t, dir, 16)
	must(t, w.reset(100))
	must(t, w.save(hard(3, 3, 100), []*raftpb.Entry{ent(3, 101, "y")}))
	w.close()
	_, st = openTestWAL(t, dir, 16)
	if st.reset != 100 || len(st.entries) != 1 || st.entries[0].GetIndex() != 101 {
		t.Fatalf("after reset(100) replayed reset=%d entries=%v", st.reset, indexes(st.entries))
	}
	// Every segment from before the reset is gone.
	files, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	for _, f := range files {
		var seq, first uint64
		fmt.Sscanf(filepath.Base(f), "%016x-%016x.wal", &seq, &first)
		if first < 101 {
			t.Fatalf("segment %s from before the reset survived", filepath.Base(f))
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestWALSyncsEntriesAndVotesButNotACommitAlone(t *testing.T) {
	dir := t.TempDir()
	w, _ := openTestWAL(t, dir, 1<<20)
	base := w.syncs
	step := func(hs *raftpb.HardState, ents []*raftpb.Entry, wantSyncs uint64, what string) {
		t.Helper()
		must(t, w.write(hs, ents))
		must(t, w.flush())
		if got := w.syncs - base; got != wantSyncs {
			t.Fatalf("after %s: %d syncs; want %d", what, got, wantSyncs)
		}
	}
	step(hard(1, 1, 0), []*raftpb.Entry{ent(1, 1, "a"), ent(1, 2, "b")}, 1, "entries and a vote")
	step(hard(1, 1, 2), nil, 1, "a commit index alone")
	step(nil, []*raftpb.Entry{ent(1, 3, "c")}, 2, "an entry")
	step(hard(2, 0, 2), nil, 3, "a new term")
	step(hard(2, 3, 2), nil, 4, "a vote")
	step(hard(2, 3, 3), nil, 4, "a commit index alone")
	w.close()

	// What was written without a sync is still in the log (the OS has it).
	_, st := openTestWAL(t, dir, 1<<20)
	if got := st.hard.GetCommit(); got != 3 || len(st.entries) != 3 {
		t.Fatalf("replayed commit %d and %d entries; want 3 and 3", got, len(st.entries))
	}
}
