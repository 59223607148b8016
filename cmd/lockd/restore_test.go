package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// lockd restore's flags: what it needs is required, and a file that is not
// a backup is refused with exit status 1. (A whole restore runs in
// integration's TestBackupRestoreNewCluster.)
func TestRestoreFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
		rc   int
		want string
	}{
		{"help", []string{"restore", "-h"}, 0, "usage: lockd restore"},
		{"nothing", []string{"restore"}, 2, "--from, --data-dir and --id are required"},
		{"no --from", []string{"restore", "--data-dir", dir, "--id", "1"}, 2, "required"},
		{"an argument", []string{"restore", "--from", "f", "--data-dir", dir, "--id", "1", "extra"}, 2, `unexpected argument "extra"`},
		{"bad --peers", []string{"restore", "--from", "f", "--data-dir", dir, "--id", "1", "--peers", "1"}, 2, "is not id=host:port"},
		{"no such file", []string{"restore", "--from", filepath.Join(dir, "none"), "--data-dir", filepath.Join(dir, "d"), "--id", "1"}, 1, "no such file"},
		{"id not among the peers", []string{"restore", "--from", "f", "--data-dir", dir, "--id", "4", "--peers", "1=a:1"}, 1, "not among the peers"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if rc := run(tt.args, &stdout, &stderr); rc != tt.rc || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("lockd %v: exit %d, stderr %q; want %d and %q", tt.args, rc, stderr.String(), tt.rc, tt.want)
			}
		})
	}
}
