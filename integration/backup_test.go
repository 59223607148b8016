package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBackupRestoreNewCluster: BACKUP on a follower of a cluster in use,
// then lockd restore into the empty data directories of a new three-node
// cluster, which starts with every lock (owner and token), every lease
// (with no more time than it had), the scripts, and a token counter whose
// next grant is larger than any before.
func TestBackupRestoreNewCluster(t *testing.T) {
	ctx := context.Background()
	backups := t.TempDir()
	old := startCluster(t, 3, clusterOpts{extra: []string{"--backup-dir", backups}})
	lead := old.waitLeader(10*time.Second, nil)
	f := 1 + lead%3
	rdb := old.client(lead)
	tokens, leased := map[string]int64{}, map[string]bool{}
	var maxToken int64
	for i := range 30 {
		name := fmt.Sprintf("job-%d", i)
		opts := []any{}
		if i%3 == 0 {
			opts, leased[name] = []any{"PX", 600_000}, true
		}
		tok, err := lockCmd(ctx, rdb, name, "worker", opts...)
		if err != nil || tok <= 0 {
			t.Fatalf("LOCK %s = %d, %v", name, tok, err)
		}
		tokens[name], maxToken = tok, max(maxToken, tok)
	}
	if err := rdb.Do(ctx, "UNLOCK", "job-1", "worker").Err(); err != nil {
		t.Fatal(err)
	}
	delete(tokens, "job-1")
	sha, err := rdb.Do(ctx, "SCRIPT", "LOAD", "return 7").Text()
	if err != nil {
		t.Fatal(err)
	}
	// A relative path is relative to the backup directory.
	v, err := old.client(f).Do(ctx, "BACKUP", "cluster.backup").Slice()
	if err != nil || len(v) != 8 {
		t.Fatalf("BACKUP on follower %d = %v, %v", f, v, err)
	}
	backup := filepath.Join(backups, "cluster.backup")
	if v[1] != backup {
		t.Fatalf("BACKUP wrote %v, want %s", v[1], backup)
	}
	t.Logf("BACKUP cluster.backup on node %d: %v", f, v)
	for i := 1; i <= 3; i++ {
		old.kill(i)
	}

	restored := startCluster(t, 3, clusterOpts{seed: func(i int, dir, peers string) {
		out, err := exec.Command(lockdBin, "restore", "--from", backup, "--data-dir", dir,
			"--id", fmt.Sprint(i), "--peers", peers).CombinedOutput()
		if err != nil {
			t.Fatalf("lockd restore node %d: %v\n%s", i, err, out)
		}
		if i == 1 {
			t.Logf("lockd restore: %s", bytes.TrimSpace(out))
		}
	}})
	for i := 1; i <= 3; i++ {
		rc := restored.client(i)
		for name, tok := range tokens {
			m, err := rc.Do(ctx, "LOCKINFO", name).Result()
			info, ok := m.(map[any]any)
			if err != nil || !ok || info["owner"] != "worker" || info["token"] != tok {
				t.Fatalf("node %d: LOCKINFO %s = %v, %v; want owner worker, token %d", i, name, m, err, tok)
			}
			ttl := info["ttl_ms"].(int64)
			if leased[name] != (ttl > 0) || ttl > 600_000 {
				t.Fatalf("node %d: %s has ttl_ms %d", i, name, ttl)
			}
		}
		if owner, err := ownerOf(ctx, rc, "job-1"); err != nil || owner != "" {
			t.Fatalf("node %d: OWNER job-1 (released before the backup) = %q, %v", i, owner, err)
		}
		if n, err := rc.Do(ctx, "EVALSHA", sha, 0).Int(); err != nil || n != 7 {
			t.Fatalf("node %d: EVALSHA of the loaded script = %d, %v", i, n, err)
		}
	}
	tok, err := lockCmd(ctx, restored.client(2), "after-restore", "me")
	if err != nil || tok <= maxToken {
		t.Fatalf("LOCK after the restore = %d, %v; want a token above %d", tok, err, maxToken)
	}
}

// TestRestoreRefusesBadInput: lockd restore exits 1 with a reason, and
// writes nothing, for a file that is not a whole backup, for a directory
// that is not empty and for another cluster's backup; 2 for bad flags.
func TestRestoreRefusesBadInput(t *testing.T) {
	c := startNode(t, "--backup-dir", t.TempDir())
	v, err := c.client(1).Do(context.Background(), "BACKUP", "good.backup").Slice()
	if err != nil {
		t.Fatal(err)
	}
	good := v[1].(string)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := bytes.Clone(data)
	flipped[len(flipped)-6] ^= 1 // in the body
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(filepath.Join(full, "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, from, into string
		extra            []string
		rc               int
		want             string
	}{
		{"garbage", write("garbage", []byte("hello, world")), "", nil, 1, `it does not start with "lockdBAK"`},
		{"truncated", write("truncated", data[:len(data)-3]), "", nil, 1, "truncated or extended"},
		{"a flipped bit", write("flipped", flipped), "", nil, 1, "checksum mismatch"},
		{"no such file", filepath.Join(dir, "missing"), "", nil, 1, "no such file or directory"},
		{"a directory that is not empty", good, full, nil, 1, "is not empty"},
		{"another cluster", good, "", []string{"--cluster-id", "other"}, 1, `is a backup of cluster "lockd", not "other"`},
		{"no --id", good, "", []string{"--id", "0"}, 2, "--from, --data-dir and --id are required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			into := tt.into
			if into == "" {
				into = filepath.Join(t.TempDir(), "data")
			}
			args := append([]string{"restore", "--from", tt.from, "--data-dir", into, "--id", "1"}, tt.extra...)
			out, err := exec.Command(lockdBin, args...).CombinedOutput()
			if rc := exitCode(err); rc != tt.rc || !strings.Contains(string(out), tt.want) {
				t.Fatalf("lockd %v: exit %d, %q; want exit %d and %q", args, rc, out, tt.rc, tt.want)
			}
			if into == full {
				if ents, _ := os.ReadDir(full); len(ents) != 1 {
					t.Fatalf("%s now holds %v", full, ents)
				}
			} else if _, err := os.Stat(into); !os.IsNotExist(err) {
				t.Fatalf("lockd restore left %s behind (%v)", into, err)
			}
		})
	}
}
