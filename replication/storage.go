package replication

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// disk is a node's durable raft state under one data directory:
//
//	wal/*.wal      the raft log and hard state (see wal)
//	snap/*.snap    the newest snapshots, named term-index, each with a CRC
//
// A snapshot file is synced and renamed into place before the log before it
// is deleted, so a crash at any point leaves a loadable state.
//
// The log is used only by the append goroutine (and by start-up before it);
// snapshots are written by it (from the leader) and by the goroutine that
// makes the node's own, one at a time under snapMu.
type disk struct {
	wal     *wal
	state   *walState // what the log held at open; consumed by load
	snapDir string
	snapMu  sync.Mutex
}

// loaded is what a node finds on disk at start-up.
type loaded struct {
	snap    *raftpb.Snapshot // nil when there is none
	hard    *raftpb.HardState
	entries []*raftpb.Entry // after the snapshot, in order
}

func (l *loaded) empty() bool {
	return l.snap == nil && l.hard == nil && len(l.entries) == 0
}

func openDisk(dir string, sync bool) (*disk, error) {
	snapDir := filepath.Join(dir, "snap")
	if err := os.MkdirAll(snapDir, 0o700); err != nil {
		return nil, err
	}
	w, st, err := openWAL(filepath.Join(dir, "wal"), sync, defaultSegmentSize)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return &disk{wal: w, state: st, snapDir: snapDir}, nil
}

func (d *disk) close() error { return d.wal.close() }

// load returns the newest valid snapshot, the hard state and the entries
// after the snapshot.
func (d *disk) load() (*loaded, error) {
	snap, err := d.newestSnapshot()
	if err != nil {
		return nil, err
	}
	l := &loaded{snap: snap, hard: d.state.hard}
	after := snap.GetMetadata().GetIndex()
	for _, e := range d.state.entries {
		if e.GetIndex() > after {
			l.entries = append(l.entries, e)
		}
	}
	d.state = nil
	if len(l.entries) > 0 && l.entries[0].GetIndex() != after+1 {
		return nil, fmt.Errorf("%w: log starts at %d, snapshot ends at %d", errCorruptWAL, l.entries[0].GetIndex(), after)
	}
	return l, nil
}

// save persists one Ready's hard state and entries.
func (d *disk) save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	return d.wal.save(hs, ents)
}

// compact deletes log segments that hold only entries before index.
func (d *disk) compact(index uint64) error { return d.wal.compact(index) }

// resetLog records that a snapshot from the leader at index replaced the log.
func (d *disk) resetLog(index uint64) error { return d.wal.reset(index) }

// saveSnapshot writes snap to its own file, synced, then removes all but the
// newest two snapshot files.
func (d *disk) saveSnapshot(snap *raftpb.Snapshot) error {
	d.snapMu.Lock()
	defer d.snapMu.Unlock()
	body, err := proto.Marshal(snap)
	if err != nil {
		return err
	}
	md := snap.GetMetadata()
	name := fmt.Sprintf("%016x-%016x.snap", md.GetTerm(), md.GetIndex())
	buf := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(buf, crc32.ChecksumIEEE(body))
	buf = append(buf, body...)
	if err := writeFileSync(filepath.Join(d.snapDir, name), buf); err != nil {
		return err
	}
	names, err := d.snapNames()
	if err != nil {
		return err
	}
	for i := 0; i+2 < len(names); i++ {
		os.Remove(filepath.Join(d.snapDir, names[i]))
	}
	return nil
}

// snapNames lists snapshot files, oldest first (names sort by term, index).
func (d *disk) snapNames() ([]string, error) {
	ents, err := os.ReadDir(d.snapDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".snap") {
			names = append(names, e.Name())
		} else if strings.HasSuffix(e.Name(), ".tmp") {
			os.Remove(filepath.Join(d.snapDir, e.Name()))
		}
	}
	slices.Sort(names)
	return names, nil
}

// newestSnapshot returns the newest snapshot whose checksum holds, or nil.
func (d *disk) newestSnapshot() (*raftpb.Snapshot, error) {
	names, err := d.snapNames()
	if err != nil {
		return nil, err
	}
	for i := len(names) - 1; i >= 0; i-- {
		b, err := os.ReadFile(filepath.Join(d.snapDir, names[i]))
		if err != nil || len(b) < 4 || binary.BigEndian.Uint32(b) != crc32.ChecksumIEEE(b[4:]) {
			continue
		}
		s := &raftpb.Snapshot{}
		if proto.Unmarshal(b[4:], s) == nil {
			return s, nil
		}
	}
	return nil, nil
}

// writeFileSync writes data to path atomically: a synced temporary file
// renamed into place, then the directory synced.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func raftEmptyHardState(hs *raftpb.HardState) bool {
	return hs == nil || (hs.GetTerm() == 0 && hs.GetVote() == 0 && hs.GetCommit() == 0)
}
