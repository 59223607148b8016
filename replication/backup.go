package replication

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/lockd/lockd/internal/datadir"
	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3/raftpb"
)

// Backup and restore. A backup is the table at an applied index, taken by
// the applier between two applies (so it is exactly the state after that
// entry) and written by the caller's goroutine to a new file (backupfile.go
// has the format). Restore seeds an empty data directory with it as the
// snapshot a new cluster starts from: every node of the new cluster is
// seeded from the same file, so all start from the same snapshot at the
// same index, with the new members as the configuration.

// ErrBackupExists is Backup's error when its file already exists.
var ErrBackupExists = errors.New("backup file exists")

// backupPoint is the table at an applied index, for a backup.
type backupPoint struct {
	index, term uint64
	view        *lock.SnapshotView
}

// point takes the table's view at what it applied; the applier's goroutine
// calls it between applies.
func (a *applier) point() backupPoint {
	term, err := a.mem.Term(a.applied)
	if err != nil { // never in practice: the log keeps what was applied
		term = a.n.pub.term.Load()
	}
	return backupPoint{index: a.applied, term: term, view: a.table.View()}
}

// Backup writes the node's replicated state, as of the last entry it
// applied, to a new file at path (absolute; its directory must exist):
// a temporary file in the same directory, synced, then linked to path,
// which fails if path exists (ErrBackupExists), then the directory synced.
// Nothing is left behind on error. It waits for the applier at most until
// ctx ends. Any goroutine may call it; the node keeps serving meanwhile.
func (n *Node) Backup(ctx context.Context, path string) (BackupInfo, error) {
	if err := n.failed(); err != nil {
		return BackupInfo{}, err
	}
	if _, err := os.Lstat(path); err == nil {
		return BackupInfo{}, fmt.Errorf("%w: %s", ErrBackupExists, path)
	}
	ch := make(chan backupPoint, 1)
	n.applier.q.put(applyWork{backup: ch})
	var p backupPoint
	select {
	case p = <-ch:
	case <-ctx.Done():
		return BackupInfo{}, ctx.Err()
	case <-n.stopc:
		return BackupInfo{}, ErrClosed
	case <-n.haltc:
		return BackupInfo{}, n.failed()
	}
	if p.index == 0 {
		return BackupInfo{}, errors.New("nothing applied yet")
	}
	info := BackupInfo{ClusterID: n.disk.Identity().ClusterID, Node: n.cfg.ID, Index: p.index, Term: p.term}
	data := encodeBackup(info, p.view.Encode())
	info.Bytes = len(data)
	if err := writeNewFile(path, data); err != nil {
		return BackupInfo{}, err
	}
	n.log.Info("backup written", "path", path, "index", info.Index, "term", info.Term, "bytes", info.Bytes)
	return info, nil
}

// writeNewFile writes data to a new file at path, atomically and durably;
// an existing file at path is left alone (ErrBackupExists).
func writeNewFile(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".lockd-backup-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrBackupExists, path)
		}
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RestoreConfig says which node's data directory Restore seeds.
type RestoreConfig struct {
	// DataDir is the directory to seed: it must not exist or be empty.
	DataDir string
	// ID is the node's id, one of Peers' keys.
	ID uint64
	// Peers are the new cluster's members (only their ids are used here;
	// the node is started with the same --peers).
	Peers map[uint64]string
	// ClusterID is the new cluster's id; "" takes the backup's. Another
	// id than the backup's is refused: the backup is another cluster's.
	ClusterID string
}

// ReadBackup reads and checks a backup file whole (see decodeBackup).
func ReadBackup(path string) (BackupInfo, error) {
	info, _, _, err := readBackup(path)
	return info, err
}

func readBackup(path string) (BackupInfo, []byte, *lock.Table, error) {
	st, err := os.Stat(path)
	if err != nil {
		return BackupInfo{}, nil, nil, err
	}
	if st.Size() > maxBackupBody+backupFixed+1<<16 {
		return BackupInfo{}, nil, nil, fmt.Errorf("%w: %d bytes, more than any backup", ErrBadBackup, st.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return BackupInfo{}, nil, nil, err
	}
	return decodeBackup(data)
}

// Restore seeds the empty data directory c.DataDir from the backup file
// from: the node starts (with the same id, peers and cluster id) from the
// backup's state as a snapshot at its index and term, with c.Peers as
// voters, and its request ids start past every id the backup's table
// remembers, so that none is taken for a repeat of an old request. Seed
// every member of the new cluster from the same file. A bad file, another
// cluster's backup or a directory that is not empty is refused before
// anything is written; if writing fails, the directory is removed again.
func Restore(from string, c RestoreConfig) (BackupInfo, error) {
	switch {
	case c.ID == 0 || c.ID > 0xffff:
		return BackupInfo{}, fmt.Errorf("node id %d: must be 1..65535", c.ID)
	case !hasPeer(c.Peers, c.ID):
		return BackupInfo{}, fmt.Errorf("node id %d is not among the peers", c.ID)
	case c.DataDir == "":
		return BackupInfo{}, errors.New("no data directory")
	}
	for id := range c.Peers {
		if id == 0 || id > 0xffff {
			return BackupInfo{}, fmt.Errorf("peer id %d: must be 1..65535", id)
		}
	}
	info, body, table, err := readBackup(from)
	if err != nil {
		return BackupInfo{}, err
	}
	if c.ClusterID == "" {
		c.ClusterID = info.ClusterID
	} else if c.ClusterID != info.ClusterID {
		return BackupInfo{}, fmt.Errorf("%s is a backup of cluster %q, not %q: restore it with --cluster-id %q (and start the new cluster with it)",
			from, info.ClusterID, c.ClusterID, info.ClusterID)
	}
	created, err := emptyDir(c.DataDir)
	if err != nil {
		return BackupInfo{}, err
	}
	if err := seed(c, info, body, table); err != nil {
		if created {
			os.RemoveAll(c.DataDir)
		} else {
			clearDir(c.DataDir)
		}
		return BackupInfo{}, err
	}
	return info, nil
}

// emptyDir checks that path does not exist or is an empty directory, and
// reports whether it does not exist.
func emptyDir(path string) (missing bool, err error) {
	ents, err := os.ReadDir(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	case err != nil:
		return false, err
	case len(ents) > 0:
		return false, fmt.Errorf("%s is not empty: restore seeds a new node's directory only", path)
	}
	return false, nil
}

// clearDir removes what seed wrote into a directory that was empty.
func clearDir(path string) {
	ents, _ := os.ReadDir(path)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(path, e.Name()))
	}
}

// seed writes the snapshot, the log's reset to it and the hard state into
// a new data directory.
func seed(c RestoreConfig, info BackupInfo, body []byte, table *lock.Table) error {
	d, _, err := datadir.Open(c.DataDir, datadir.Options{ClusterID: c.ClusterID, NodeID: c.ID})
	if err != nil {
		return err
	}
	defer d.Close()
	lo := c.ID << 48
	if last := table.MaxRememberedID(lo, lo|(1<<48-1)); last != 0 {
		if err := d.SkipIDs(last &^ lo); err != nil {
			return err
		}
	}
	cs := &raftpb.ConfState{Voters: slices.Sorted(maps.Keys(c.Peers))}
	snap := &raftpb.Snapshot{Data: body, Metadata: &raftpb.SnapshotMetadata{ConfState: cs, Index: &info.Index, Term: &info.Term}}
	if err := d.SaveSnapshot(snap); err != nil {
		return err
	}
	if err := d.ResetLog(info.Index); err != nil {
		return err
	}
	return d.Save(&raftpb.HardState{Term: &info.Term, Commit: &info.Index}, nil)
}
