package replication

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lockd/lockd/lock"
)

// TestBackupRestore: a backup taken on a follower of a cluster under use,
// restored into the data directories of a new three-node cluster, gives it
// every lock with its owner and token, its leases (which then run out as
// they would have), its scripts, and a token counter whose next grant is
// larger than any before; and a new node's first request is not taken for
// a request of the old cluster that the table still remembers.
func TestBackupRestore(t *testing.T) {
	old := testCluster(t, 3, nil)
	lead := waitLeader(t, old)
	ctx := context.Background()
	// Node 1's first request: the new cluster's node 1 will draw the same
	// request id for its own first one.
	first := lock.Command{Op: lock.OpLock, Name: "first", Owner: "one"}
	if tok, err := old[1].Execute(ctx, first); err != nil || tok <= 0 {
		t.Fatalf("LOCK first = %d, %v", tok, err)
	}
	if v, err := old[1].Execute(ctx, lock.Command{Op: lock.OpUnlock, Name: "first", Owner: "one"}); err != nil || v != 1 {
		t.Fatalf("UNLOCK first = %d, %v", v, err)
	}
	acked := lockFresh(t, old[lead], "held", 40)
	for i := range 10 { // released: not in the backup
		if v, err := old[lead].Execute(ctx, lock.Command{Op: lock.OpUnlock, Name: fmt.Sprintf("held-%d", i), Owner: "held"}); err != nil || v != 1 {
			t.Fatalf("UNLOCK: %d, %v", v, err)
		}
	}
	acked = acked[10:]
	leased := lock.Command{Op: lock.OpLock, Name: "leased", Owner: "l", TTL: 60_000}
	short := lock.Command{Op: lock.OpLock, Name: "short", Owner: "s", TTL: 1500}
	for _, c := range []lock.Command{leased, short} {
		tok, err := old[lead].Execute(ctx, c)
		if err != nil || tok <= 0 {
			t.Fatalf("LOCK %s: %d, %v", c.Name, tok, err)
		}
		acked = append(acked, ackedLock{c.Name, c.Owner, tok})
	}
	script := "return 1"
	if _, err := old[lead].Do(ctx, lock.Command{Op: lock.OpScriptLoad, X: &lock.Extra{Script: script}}); err != nil {
		t.Fatal(err)
	}
	maxToken := int64(0)
	for _, a := range acked {
		maxToken = max(maxToken, a.token)
	}
	f := followerOf(old, lead)
	appliedEverywhere(t, old)
	path := filepath.Join(t.TempDir(), "lockd.backup")
	info, err := old[f].Backup(ctx, path)
	if err != nil {
		t.Fatalf("Backup on follower %d: %v", f, err)
	}
	if info.ClusterID != "test" || info.Node != f || info.Index == 0 || info.Term == 0 {
		t.Fatalf("Backup = %+v", info)
	}
	if read, err := ReadBackup(path); err != nil || read != info {
		t.Fatalf("ReadBackup = %+v, %v; Backup said %+v", read, err, info)
	}
	_, _, oldNow := old[f].Table().Clock()
	leaseLeft := int64(0)
	if i, ok := old[f].Table().Get("leased"); ok {
		leaseLeft = i.Deadline - oldNow
	}
	for _, n := range old {
		n.Close()
	}

	base := t.TempDir()
	peers := map[uint64]string{1: "", 2: "", 3: ""}
	for id := range peers {
		got, err := Restore(path, RestoreConfig{DataDir: filepath.Join(base, fmt.Sprint(id)), ID: id, Peers: peers})
		if err != nil || got != info {
			t.Fatalf("Restore node %d = %+v, %v; want %+v", id, got, err, info)
		}
	}
	restored := testCluster(t, 3, func(c *Config) { c.DataDir = filepath.Join(base, fmt.Sprint(c.ID)) })
	newLead := waitLeader(t, restored)
	sum := sha1.Sum([]byte(script))
	for id, n := range restored {
		if n.Status().Applied < info.Index {
			t.Errorf("node %d applied %d, below the backup's %d", id, n.Status().Applied, info.Index)
		}
		holdsAll(t, id, n, acked[:len(acked)-1]) // "short" may already have run out
		if body, ok := n.Table().Script(hex.EncodeToString(sum[:])); !ok || body != script {
			t.Errorf("node %d: the script is not registered", id)
		}
		if _, ok := n.Table().Get("held-0"); ok {
			t.Errorf("node %d holds held-0, released before the backup", id)
		}
		_, _, now := n.Table().Clock()
		if i, ok := n.Table().Get("leased"); !ok || i.Deadline-now > leaseLeft || i.Deadline-now <= 0 {
			t.Errorf("node %d: leased has %d ms left (%+v, held %v); it had %d at the backup", id, i.Deadline-now, i, ok, leaseLeft)
		}
	}
	tok, err := restored[1].Execute(ctx, first) // node 1's first request
	if err != nil || tok <= maxToken {
		t.Fatalf("new node 1's first LOCK = %d, %v; want a token above the backup's %d", tok, err, maxToken)
	}
	if i, ok := restored[newLead].Table().Get("first"); !ok || int64(i.Token) != tok {
		t.Fatalf("first is %+v (held %v) after a LOCK granted token %d", i, ok, tok)
	}
	poll(t, "the short lease to run out in the new cluster", func() bool {
		_, held := restored[newLead].Table().Get("short")
		return !held
	})
}

// TestBackupRefusesAnExistingFile: BACKUP never overwrites, and leaves no
// temporary file behind.
func TestBackupRefusesAnExistingFile(t *testing.T) {
	nodes := testCluster(t, 1, nil)
	waitLeader(t, nodes)
	dir := t.TempDir()
	path := filepath.Join(dir, "b")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].Backup(context.Background(), path); !errors.Is(err, ErrBackupExists) {
		t.Fatalf("Backup over an existing file = %v, want ErrBackupExists", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Fatalf("the existing file now holds %q", b)
	}
	if _, err := nodes[1].Backup(context.Background(), filepath.Join(dir, "missing", "b")); err == nil {
		t.Fatal("Backup into a missing directory succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("the directory holds %v, want only b", ents)
	}
}

// TestRestoreRefuses: a file that is not a whole, intact backup of this
// cluster, or a directory that is not empty, is refused with an error that
// says why, and nothing is written.
func TestRestoreRefuses(t *testing.T) {
	nodes := testCluster(t, 1, nil)
	waitLeader(t, nodes)
	lockFresh(t, nodes[1], "x", 5)
	good := filepath.Join(t.TempDir(), "good")
	if _, err := nodes[1].Backup(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := slices.Clone(data)
		b[i] ^= 0x10
		return b
	}
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "something"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	peers := map[uint64]string{1: ""}
	for _, tt := range []struct {
		name    string
		file    []byte // nil: good
		cfg     RestoreConfig
		bad     bool   // the error wraps ErrBadBackup
		wantErr string // in the error's text
	}{
		{name: "garbage", file: []byte("*1\r\n$4\r\nPING\r\n"), bad: true, wantErr: "does not start with"},
		{name: "empty file", file: []byte{}, bad: true, wantErr: "does not start with"},
		{name: "truncated", file: data[:len(data)-1], bad: true, wantErr: "truncated or extended"},
		{name: "header only", file: data[:30], bad: true, wantErr: "truncated"},
		{name: "extended", file: append(slices.Clone(data), 0), bad: true, wantErr: "truncated or extended"},
		{name: "a bit flipped in the body", file: flip(len(data) - 10), bad: true, wantErr: "checksum mismatch"},
		{name: "a bit flipped in the index", file: flip(12), bad: true, wantErr: "checksum mismatch"},
		{name: "a bit flipped in the checksum", file: flip(len(data) - 1), bad: true, wantErr: "checksum mismatch"},
		{name: "another version", file: flip(9), bad: true, wantErr: "format version"},
		{name: "another cluster", cfg: RestoreConfig{ClusterID: "other"}, wantErr: `backup of cluster "test", not "other"`},
		{name: "a directory that is not empty", cfg: RestoreConfig{DataDir: full}, wantErr: "is not empty"},
		{name: "an id not among the peers", cfg: RestoreConfig{ID: 2}, wantErr: "not among the peers"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			from := good
			if tt.file != nil {
				from = filepath.Join(t.TempDir(), "backup")
				if err := os.WriteFile(from, tt.file, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := tt.cfg
			if cfg.DataDir == "" {
				cfg.DataDir = filepath.Join(t.TempDir(), "data")
			}
			if cfg.ID == 0 {
				cfg.ID = 1
			}
			cfg.Peers = peers
			_, err := Restore(from, cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, ErrBadBackup) != tt.bad {
				t.Fatalf("Restore = %v; want an error with %q (ErrBadBackup: %v)", err, tt.wantErr, tt.bad)
			}
			if cfg.DataDir == full {
				if ents, _ := os.ReadDir(full); len(ents) != 1 {
					t.Fatalf("the non-empty directory now holds %v", ents)
				}
			} else if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("Restore left %s behind: %v", cfg.DataDir, err)
			}
		})
	}
	if _, err := Restore(good, RestoreConfig{DataDir: filepath.Join(t.TempDir(), "ok"), ID: 1, Peers: peers}); err != nil {
		t.Fatalf("the good file: %v", err)
	}
	if !bytes.Equal(data, must(os.ReadFile(good))) {
		t.Fatal("Restore changed its backup file")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Every single flipped bit of a backup file, and every truncation, is
// refused as ErrBadBackup.
func TestBackupDetectsEveryFlippedBitAndCut(t *testing.T) {
	tab := lock.NewTable()
	tab.Apply(1, &lock.Batch{Term: 1, Stamp: 5, Cmds: []lock.Command{
		{Op: lock.OpLock, ID: 1, Name: "a", Owner: "x", TTL: 1000}, {Op: lock.OpLock, ID: 2, Name: "b", Owner: "y"},
	}}, nil)
	data := encodeBackup(BackupInfo{ClusterID: "prod", Node: 2, Index: 9, Term: 3}, tab.Snapshot())
	if info, _, _, err := decodeBackup(data); err != nil || info.Index != 9 || info.Term != 3 || info.ClusterID != "prod" || info.Node != 2 {
		t.Fatalf("decodeBackup of the intact file = %+v, %v", info, err)
	}
	for i := range data {
		for bit := range 8 {
			b := slices.Clone(data)
			b[i] ^= 1 << bit
			if _, _, _, err := decodeBackup(b); !errors.Is(err, ErrBadBackup) {
				t.Fatalf("bit %d of byte %d flipped: %v", bit, i, err)
			}
		}
	}
	for n := range data {
		if _, _, _, err := decodeBackup(data[:n]); !errors.Is(err, ErrBadBackup) {
			t.Fatalf("cut to %d bytes: %v", n, err)
		}
	}
}
