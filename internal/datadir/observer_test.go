package datadir

import (
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// recorder is a LogObserver that keeps what it hears.
type recorder struct {
	wrote   int
	entries []int // per sync
}

func (r *recorder) Wrote(n int)                      { r.wrote += n }
func (r *recorder) Synced(_ time.Duration, ents int) { r.entries = append(r.entries, ents) }

func TestObserverHearsEachSyncWithItsEntriesAndEveryByteWritten(t *testing.T) {
	rec := &recorder{}
	o := testOptions(1 << 20)
	o.Observer = rec
	d, _, err := Open(t.TempDir(), o)
	must(t, err)
	defer d.Close()
	before := d.wal.off // the segment's header, written before the observer could count
	must(t, d.Write(hard(1, 1, 0), []*raftpb.Entry{ent(1, 1, "a"), ent(1, 2, "b")}))
	must(t, d.Write(nil, []*raftpb.Entry{ent(1, 3, "c")}))
	must(t, d.Flush())
	must(t, d.Write(hard(1, 1, 3), nil)) // a commit index alone: written, not synced
	must(t, d.Flush())
	must(t, d.Save(hard(2, 0, 3), nil)) // a new term: synced, no entry
	if want := []int{3, 0}; len(rec.entries) != len(want) || rec.entries[0] != want[0] || rec.entries[1] != want[1] {
		t.Fatalf("entries per sync %v; want %v", rec.entries, want)
	}
	if got, want := int64(rec.wrote), d.wal.off-before; got != want {
		t.Fatalf("observer heard %d bytes written; the log grew by %d", got, want)
	}
}
