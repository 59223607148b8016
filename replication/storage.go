package replication

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// disk is a node's durable raft state under one data directory:
//
//	raft.db        bbolt: bucket "log" (8-byte big-endian index -> Entry),
//	               bucket "meta" ("hardstate" -> HardState)
//	snap/*.snap    the newest snapshots, named term-index, each with a CRC
//
// Entries and hard state of one Ready go to disk in one bbolt transaction,
// synced before it returns unless the fsync policy is "never". A snapshot
// file is synced and renamed into place before the log before it is deleted,
// so a crash at any point leaves a loadable state.
//
// disk is used only by the goroutine that owns the raft node.
type disk struct {
	db      *bolt.DB
	snapDir string
}

var (
	bucketLog  = []byte("log")
	bucketMeta = []byte("meta")
	keyHard    = []byte("hardstate")
)

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
	db, err := bolt.Open(filepath.Join(dir, "raft.db"), 0o600, &bolt.Options{
		NoSync:         !sync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		Timeout:        timeoutOpenDB,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketLog); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketMeta)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &disk{db: db, snapDir: snapDir}, nil
}

func (d *disk) close() error { return d.db.Close() }

func indexKey(i uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], i)
	return k[:]
}

// load reads the newest valid snapshot, the hard state and the entries after
// the snapshot.
func (d *disk) load() (*loaded, error) {
	var l loaded
	snap, err := d.newestSnapshot()
	if err != nil {
		return nil, err
	}
	l.snap = snap
	after := snap.GetMetadata().GetIndex()
	err = d.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyHard); v != nil {
			l.hard = &raftpb.HardState{}
			if err := proto.Unmarshal(v, l.hard); err != nil {
				return fmt.Errorf("hard state: %w", err)
			}
		}
		c := tx.Bucket(bucketLog).Cursor()
		for k, v := c.Seek(indexKey(after + 1)); k != nil; k, v = c.Next() {
			e := &raftpb.Entry{}
			if err := proto.Unmarshal(v, e); err != nil {
				return fmt.Errorf("entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if n := len(l.entries); n > 0 && e.GetIndex() != l.entries[n-1].GetIndex()+1 {
				return fmt.Errorf("log gap at %d", e.GetIndex())
			}
			l.entries = append(l.entries, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(l.entries) > 0 && l.entries[0].GetIndex() != after+1 {
		return nil, fmt.Errorf("log starts at %d, snapshot ends at %d", l.entries[0].GetIndex(), after)
	}
	return &l, nil
}

// save persists one Ready's hard state and entries. Entries replace any
// stored entries at or after the first one's index.
func (d *disk) save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	if raftEmptyHardState(hs) && len(ents) == 0 {
		return nil
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		if len(ents) > 0 {
			b := tx.Bucket(bucketLog)
			first := ents[0].GetIndex()
			c := b.Cursor()
			for k, _ := c.Seek(indexKey(first)); k != nil; k, _ = c.Next() {
				if err := c.Delete(); err != nil {
					return err
				}
			}
			for _, e := range ents {
				v, err := proto.Marshal(e)
				if err != nil {
					return err
				}
				if err := b.Put(indexKey(e.GetIndex()), v); err != nil {
					return err
				}
			}
		}
		if !raftEmptyHardState(hs) {
			v, err := proto.Marshal(hs)
			if err != nil {
				return err
			}
			return tx.Bucket(bucketMeta).Put(keyHard, v)
		}
		return nil
	})
}

// saveSnapshot writes snap to its own file, synced, then removes all but the
// newest two snapshot files.
func (d *disk) saveSnapshot(snap *raftpb.Snapshot) error {
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

// compact deletes log entries before index.
func (d *disk) compact(index uint64) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLog).Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) < index; k, _ = c.Next() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// resetLog deletes every log entry (after a snapshot from the leader
// replaced the whole log).
func (d *disk) resetLog() error {
	return d.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketLog); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketLog)
		return err
	})
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
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

func raftEmptyHardState(hs *raftpb.HardState) bool {
	return hs == nil || (hs.GetTerm() == 0 && hs.GetVote() == 0 && hs.GetCommit() == 0)
}
