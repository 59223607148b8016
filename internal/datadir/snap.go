package datadir

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// snapMagic opens every snapshot file: a file header, then one record whose
// payload is a raftpb.Snapshot.
var snapMagic = []byte("lockdSNP")

// keepSnapshots is how many snapshot files are kept: the newest, and one
// before it in case the newest is damaged.
const keepSnapshots = 2

// snapshots is the snap/ directory. A snapshot file is synced and renamed
// into place before the log before it is deleted, so a crash at any point
// leaves a loadable state.
//
// Concurrency: save may be called from any goroutine; saves are serialized.
type snapshots struct {
	dir string
	log *slog.Logger
	mu  sync.Mutex
}

// save writes snap to its own file, synced, then removes all but the newest
// keepSnapshots files.
func (s *snapshots) save(snap *raftpb.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	body, err := proto.Marshal(snap)
	if err != nil {
		return err
	}
	md := snap.GetMetadata()
	name := fmt.Sprintf("%016x-%016x.snap", md.GetTerm(), md.GetIndex())
	buf := appendRecord(fileHeader(snapMagic), body)
	if err := writeFileSync(filepath.Join(s.dir, name), buf); err != nil {
		return err
	}
	names, err := s.names()
	if err != nil {
		return err
	}
	for i := 0; i+keepSnapshots < len(names); i++ {
		os.Remove(filepath.Join(s.dir, names[i]))
	}
	return nil
}

// names lists snapshot files, oldest first (names sort by term, index), and
// removes temporary files a crash left behind.
func (s *snapshots) names() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".snap") {
			names = append(names, e.Name())
		} else if strings.HasSuffix(e.Name(), ".tmp") {
			os.Remove(filepath.Join(s.dir, e.Name()))
		}
	}
	slices.Sort(names)
	return names, nil
}

// newest returns the newest snapshot that reads back whole, or nil when
// there is none. Every file it passes over is logged as an error: a damaged
// snapshot is never skipped in silence.
func (s *snapshots) newest() (*raftpb.Snapshot, error) {
	names, err := s.names()
	if err != nil {
		return nil, err
	}
	for i := len(names) - 1; i >= 0; i-- {
		path := filepath.Join(s.dir, names[i])
		snap, err := readSnapshot(path)
		if err == nil {
			return snap, nil
		}
		s.log.Error("datadir: damaged snapshot file; trying an older one", "file", path, "err", err)
	}
	return nil, nil
}

func readSnapshot(path string) (*raftpb.Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < segHeader {
		return nil, fmt.Errorf("%d bytes: too short", len(data))
	}
	if err := checkFileHeader(data, snapMagic); err != nil {
		return nil, err
	}
	payload, n, ok := readRecord(data, segHeader)
	if !ok || segHeader+n != len(data) {
		return nil, fmt.Errorf("checksum mismatch or truncated")
	}
	snap := &raftpb.Snapshot{}
	if err := proto.Unmarshal(payload, snap); err != nil {
		return nil, err
	}
	return snap, nil
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
