package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/lockd/lockd/replication"
)

// backupWait bounds how long BACKUP waits for the node's applier to take
// the table's view (writing the file is not bounded: it takes what the
// disk takes).
const backupWait = 10 * time.Second

// cmdBackup: BACKUP path writes the node's replicated state, as of the last
// entry it applied, to a new file (see replication.Node.Backup) and
// replies [path, <absolute path>, index, i, term, t, bytes, n]. The path is
// resolved by backupPath. One backup runs at a time on a node; another is
// refused while it runs.
func (s *Server) cmdBackup(c *client, r reply, args [][]byte) {
	path, err := s.backupPath(string(args[1]))
	if err != nil {
		r.err(err)
		return
	}
	if !s.backingUp.CompareAndSwap(false, true) {
		r.err(errors.New("ERR a backup is already being written on this node"))
		return
	}
	defer s.backingUp.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), backupWait)
	defer cancel()
	// As a linearizable read: the backup holds every write acknowledged
	// anywhere before BACKUP arrived, even on a follower that lags.
	if err := s.node.ReadBarrier(ctx); err != nil {
		switch {
		case errors.Is(err, replication.ErrStale):
			err = errUnconfirmedRead
		case errors.Is(err, context.DeadlineExceeded):
			err = errCatchingUp // it did not apply up to the index in time
		}
		r.err(err)
		return
	}
	info, err := s.node.Backup(ctx, path)
	if err != nil {
		if errors.Is(err, replication.ErrBackupExists) {
			err = fmt.Errorf("ERR %s exists: BACKUP never overwrites a file", path)
		}
		r.err(err)
		return
	}
	r.array(8)
	r.bulk("path")
	r.bulk(path)
	r.bulk("index")
	r.int(int64(info.Index))
	r.bulk("term")
	r.int(int64(info.Term))
	r.bulk("bytes")
	r.int(int64(info.Bytes))
}

// backupPath resolves BACKUP's argument: relative to the backup directory
// (Config.BackupDir), or absolute. The file's directory must exist and lie,
// symbolic links resolved, inside the backup directory and outside the data
// directory. Without a backup directory BACKUP is off: a client that may
// run it would otherwise choose where a file of contents it partly controls
// (lock names and values) is created, as Redis's CONFIG SET dir and SAVE
// allowed before Redis 7 protected them.
func (s *Server) backupPath(arg string) (string, error) {
	root := s.cfg.BackupDir
	if root == "" {
		return "", errBackupOff
	}
	realRoot, err := realPath(root)
	if err != nil {
		return "", fmt.Errorf("ERR backup directory: %v", err)
	}
	p := arg
	if !filepath.IsAbs(p) {
		p = filepath.Join(realRoot, p)
	}
	p = filepath.Clean(p)
	base := filepath.Base(p)
	if arg == "" || strings.HasSuffix(arg, "/") || base == "." || base == ".." || base == string(filepath.Separator) {
		return "", errors.New("ERR BACKUP needs a file name")
	}
	dir, err := realPath(filepath.Dir(p))
	if err != nil {
		return "", fmt.Errorf("ERR backup file's directory: %v", err)
	}
	path := filepath.Join(dir, base)
	if !within(path, realRoot) {
		return "", fmt.Errorf("ERR %s is outside the backup directory %s (lockd --backup-dir)", path, realRoot)
	}
	if data, err := realPath(s.cfg.Node.DataDir); err == nil && within(path, data) {
		return "", fmt.Errorf("ERR %s is inside the data directory", path)
	}
	return path, nil
}

// realPath is path made absolute with its symbolic links resolved.
func realPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// within reports whether path is root or below it; both are clean and
// absolute.
func within(path, root string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
