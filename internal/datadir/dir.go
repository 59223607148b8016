package datadir

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// Options says whose directory to open and how to write it.
type Options struct {
	// ClusterID and NodeID must match those the directory was created
	// with; a new directory is created with them.
	ClusterID string
	NodeID    uint64
	// NoSync leaves flushing the log to the OS (lockd --fsync never).
	NoSync bool
	// SegmentSize is the size log segments are preallocated to (default
	// DefaultSegmentSize).
	SegmentSize int64
	// BeforeSync, when set, is called before each sync of the log, on the
	// goroutine that writes it; an error it returns fails the sync. Tests
	// use it to hold the disk still or to make it fail.
	BeforeSync func() error
	Logger     *slog.Logger
	// Observer, when set, hears of the log's writes and syncs (metrics).
	Observer LogObserver
}

// LogObserver hears of the log's writes, for metrics. Its methods run on the
// goroutine that writes the log and must return at once.
type LogObserver interface {
	// Wrote says bytes were written to the log (synced or not yet).
	Wrote(bytes int)
	// Synced says a sync of the log took took and made entries new
	// entries durable (0 when it made only a term or vote durable).
	Synced(took time.Duration, entries int)
}

// Recovered is what a node finds in its directory at start-up.
type Recovered struct {
	Snapshot  *raftpb.Snapshot  // the newest whole snapshot; nil when none
	HardState *raftpb.HardState // nil when none
	Entries   []*raftpb.Entry   // after the snapshot, consecutive
}

// Empty reports whether the directory holds no raft state: the node is new.
func (r *Recovered) Empty() bool {
	return r.Snapshot == nil && r.HardState == nil && len(r.Entries) == 0
}

// Dir is an open data directory. See the package doc for what each method
// may be called from.
type Dir struct {
	path  string
	lock  *os.File
	id    *identity
	wal   *wal
	snaps *snapshots
}

// Open locks the directory at path (creating it if need be), checks whose it
// is, replays its log and finds its newest snapshot. Damage that a crash
// cannot explain is an error wrapping ErrCorrupt that names the file and
// offset; a second process on the same directory gets an error too.
func Open(path string, o Options) (*Dir, *Recovered, error) {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, nil, err
	}
	lock, err := lockDir(path)
	if err != nil {
		return nil, nil, err
	}
	d := &Dir{path: path, lock: lock, snaps: &snapshots{dir: filepath.Join(path, "snap"), log: o.Logger}}
	rec, err := d.open(&o)
	if err != nil {
		d.Close()
		return nil, nil, err
	}
	return d, rec, nil
}

func (d *Dir) open(o *Options) (*Recovered, error) {
	nodePath := filepath.Join(d.path, "node")
	var err error
	switch _, serr := os.Stat(nodePath); {
	case serr == nil:
		d.id, err = loadIdentity(nodePath, o.ClusterID, o.NodeID)
	case errors.Is(serr, os.ErrNotExist):
		if !dirEmpty(filepath.Join(d.path, "wal")) || !dirEmpty(d.snaps.dir) {
			return nil, fmt.Errorf("%s holds a raft log but no node file: it was written by lockd 0.1 "+
				"(an older, unsupported format) or damaged; see docs/DESIGN.md, Recovering a node", d.path)
		}
		d.id, err = createIdentity(nodePath, o.ClusterID, o.NodeID)
	default:
		err = serr
	}
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(d.snaps.dir, 0o700); err != nil {
		return nil, err
	}
	var st *logState
	if d.wal, st, err = openWAL(filepath.Join(d.path, "wal"), o); err != nil {
		return nil, err
	}
	snap, err := d.snaps.newest()
	if err != nil {
		return nil, err
	}
	rec := &Recovered{Snapshot: snap, HardState: st.hard}
	after := snap.GetMetadata().GetIndex()
	for _, e := range st.entries {
		if e.GetIndex() > after {
			rec.Entries = append(rec.Entries, e)
		}
	}
	if len(rec.Entries) > 0 && rec.Entries[0].GetIndex() != after+1 {
		return nil, &CorruptError{File: d.wal.dir, Why: fmt.Sprintf(
			"the log starts at index %d but the newest whole snapshot ends at %d", rec.Entries[0].GetIndex(), after)}
	}
	if snap == nil && st.reset != 0 {
		return nil, &CorruptError{File: d.snaps.dir, Why: fmt.Sprintf(
			"the log was replaced by a snapshot at index %d, and no whole snapshot is left", st.reset)}
	}
	return rec, nil
}

func dirEmpty(path string) bool {
	ents, err := os.ReadDir(path)
	return err != nil || len(ents) == 0
}

// Identity returns whose directory this is.
func (d *Dir) Identity() Identity { return d.id.identity() }

// ReserveIDs persists the reservation of the next IDBlock request ids and
// returns the first; see IDBlock.
func (d *Dir) ReserveIDs() (uint64, error) { return d.id.reserveIDs() }

// SkipIDs persists that request-id sequence numbers up to past are not to
// be used: the next ReserveIDs returns a block after it. A directory
// seeded from a backup skips the ids the backup's table remembers.
func (d *Dir) SkipIDs(past uint64) error { return d.id.skipIDs(past) }

// CheckPeer compares a peer's incarnation with the one recorded when this
// node first met it, recording it on first contact. The error is a
// *LostStateError when the peer lost its state.
func (d *Dir) CheckPeer(peer uint64, incarnation string) error {
	return d.id.checkPeer(peer, incarnation)
}

// Write queues one Ready's entries and hard state; Flush writes what is
// queued with one write, and syncs it unless it holds only a new commit
// index (see the package doc).
func (d *Dir) Write(hs *raftpb.HardState, ents []*raftpb.Entry) error { return d.wal.write(hs, ents) }

// Flush writes and, where the sync rule asks, syncs what Write queued.
func (d *Dir) Flush() error { return d.wal.flush() }

// Save writes and syncs one Ready's entries and hard state.
func (d *Dir) Save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	if err := d.wal.write(hs, ents); err != nil {
		return err
	}
	return d.wal.syncNow()
}

// Syncs returns how many times the log was synced.
func (d *Dir) Syncs() uint64 { return d.wal.syncs }

// ResetLog records that a snapshot at index (already saved) replaced the
// whole log, and deletes the segments before it.
func (d *Dir) ResetLog(index uint64) error { return d.wal.reset(index) }

// Compact deletes log segments that hold only entries before index.
func (d *Dir) Compact(index uint64) error { return d.wal.compact(index) }

// SaveSnapshot writes snap to its own file, synced, and keeps the newest
// two snapshot files.
func (d *Dir) SaveSnapshot(snap *raftpb.Snapshot) error { return d.snaps.save(snap) }

// Close closes the log and releases the directory's lock.
func (d *Dir) Close() error {
	var err error
	if d.wal != nil {
		err = d.wal.close()
	}
	if d.lock != nil {
		d.lock.Close()
		d.lock = nil
	}
	return err
}
