package datadir

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func snapshotAt(term, index uint64, data string) *raftpb.Snapshot {
	return &raftpb.Snapshot{Data: []byte(data), Metadata: &raftpb.SnapshotMetadata{Term: &term, Index: &index, ConfState: &raftpb.ConfState{Voters: []uint64{1}}}}
}

func TestSecondProcessOnADirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, 1<<20)
	_, _, err := Open(dir, testOptions(1<<20))
	if err == nil || !strings.Contains(err.Error(), "in use by process") {
		t.Fatalf("second Open of a directory in use: %v", err)
	}
}

func TestDirectoryBelongsToItsClusterAndNode(t *testing.T) {
	dir := t.TempDir()
	d, _ := openTest(t, dir, 1<<20)
	d.Close()
	for _, o := range []Options{{ClusterID: "other", NodeID: 1}, {ClusterID: "test", NodeID: 2}} {
		if _, _, err := Open(dir, o); err == nil || !strings.Contains(err.Error(), "belongs to") {
			t.Fatalf("Open as %+v: %v", o, err)
		}
	}
}

func TestIncarnationIsNewForEachDirectory(t *testing.T) {
	a, _ := openTest(t, t.TempDir(), 1<<20)
	dir := t.TempDir()
	b, _ := openTest(t, dir, 1<<20)
	inc := b.Identity().Incarnation
	if a.Identity().Incarnation == inc || len(inc) != 32 {
		t.Fatalf("incarnations %q and %q", a.Identity().Incarnation, inc)
	}
	b.Close()
	b, _ = openTest(t, dir, 1<<20)
	if b.Identity().Incarnation != inc {
		t.Fatal("the incarnation changed across a reopen")
	}
}

// Request ids are reserved in blocks that are on disk before any id of them
// is used, so a restart never hands out an id again, whatever the clock.
func TestReservedIDsNeverRepeatAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	var firsts []uint64
	for range 3 {
		d, _ := openTest(t, dir, 1<<20)
		a, err := d.ReserveIDs()
		must(t, err)
		b, err := d.ReserveIDs()
		must(t, err)
		firsts = append(firsts, a, b)
		d.Close()
	}
	for i := 1; i < len(firsts); i++ {
		if firsts[i] != firsts[i-1]+IDBlock {
			t.Fatalf("reservations %v overlap or skip", firsts)
		}
	}
}

// SkipIDs moves the next reservation past a sequence number, across a
// reopen, and never back.
func TestSkipIDs(t *testing.T) {
	dir := t.TempDir()
	d, _ := openTest(t, dir, 1<<20)
	must(t, d.SkipIDs(3*IDBlock+5))
	must(t, d.SkipIDs(IDBlock)) // earlier: no effect
	d.Close()
	d, _ = openTest(t, dir, 1<<20)
	defer d.Close()
	if first, err := d.ReserveIDs(); err != nil || first != 4*IDBlock {
		t.Fatalf("ReserveIDs after SkipIDs(3*IDBlock+5) = %d, %v; want %d", first, err, 4*IDBlock)
	}
}

func TestPeersAreKnownByTheirFirstIncarnation(t *testing.T) {
	dir := t.TempDir()
	d, _ := openTest(t, dir, 1<<20)
	must(t, d.CheckPeer(2, "aaaa"))
	must(t, d.CheckPeer(2, "aaaa"))
	d.Close()
	d, _ = openTest(t, dir, 1<<20)
	must(t, d.CheckPeer(2, "aaaa"))
	var lost *LostStateError
	if err := d.CheckPeer(2, "bbbb"); !errors.As(err, &lost) || lost.Node != 2 {
		t.Fatalf("a peer with another incarnation: %v", err)
	}
	must(t, d.CheckPeer(3, "cccc"))
}

func TestDamagedNodeFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	d, _ := openTest(t, dir, 1<<20)
	d.Close()
	path := filepath.Join(dir, "node")
	b, err := os.ReadFile(path)
	must(t, err)
	must(t, os.WriteFile(path, bytes.Replace(b, []byte(`"node_id": 1`), []byte(`"node_id": 3`), 1), 0o600))
	if _, _, err := Open(dir, testOptions(1<<20)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a node file whose checksum fails: %v", err)
	}
}

func TestOldFormatIsRefused(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "wal"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "wal", "0000000000000000-0000000000000001.wal"), []byte{1, 2, 3}, 0o600))
	if _, _, err := Open(dir, testOptions(1<<20)); err == nil || !strings.Contains(err.Error(), "lockd 0.1") {
		t.Fatalf("a 0.1 data directory: %v", err)
	}
}

// A damaged snapshot file is logged, and an older one used when the log
// reaches back to it; when it does not, the node does not start.
func TestDamagedSnapshotIsLoggedNotSkippedInSilence(t *testing.T) {
	for _, tc := range []struct {
		name      string
		compacted bool
	}{{"the log reaches back to the older one", false}, {"the log was compacted past it", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d, _ := openTest(t, dir, 64)
			for i := uint64(1); i <= 8; i++ {
				must(t, d.Save(hard(1, 1, i), []*raftpb.Entry{ent(1, i, "x")}))
			}
			must(t, d.SaveSnapshot(snapshotAt(1, 3, "old")))
			must(t, d.SaveSnapshot(snapshotAt(1, 6, "new")))
			if tc.compacted {
				must(t, d.Compact(6))
			}
			d.Close()
			files, _ := filepath.Glob(filepath.Join(dir, "snap", "*.snap"))
			flipBit(t, files[len(files)-1], 40, 2)

			var logged bytes.Buffer
			o := testOptions(64)
			o.Logger = slog.New(slog.NewTextHandler(&logged, nil))
			d, rec, err := Open(dir, o)
			if !strings.Contains(logged.String(), "damaged snapshot file") {
				t.Fatalf("nothing logged about the damaged snapshot: %q", logged.String())
			}
			if tc.compacted {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Open with the log compacted past the older snapshot: %v", err)
				}
				return
			}
			must(t, err)
			defer d.Close()
			if rec.Snapshot.GetMetadata().GetIndex() != 3 || len(rec.Entries) != 5 {
				t.Fatalf("recovered snapshot %d and %d entries; want 3 and 5", rec.Snapshot.GetMetadata().GetIndex(), len(rec.Entries))
			}
		})
	}
}
