package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockd/lockd/replication"
)

// LEADER TRANSFER on a node alone: every request it cannot carry out is
// refused with its error, and the node still leads. (The transfers
// themselves are in replication's tests and integration's.)
func TestLeaderTransferErrors(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"LEADER"}, "-ERR wrong number of arguments for 'leader' command\r\n"},
		{"unknown subcommand", []string{"LEADER", "MOVE"}, "-ERR unknown subcommand 'MOVE'. Try LEADER HELP.\r\n"},
		{"id not a number", []string{"LEADER", "TRANSFER", "two"}, "-ERR value is not an integer or out of range\r\n"},
		{"id 0", []string{"LEADER", "TRANSFER", "0"}, "-ERR value is not an integer or out of range\r\n"},
		{"id past 65535", []string{"LEADER", "TRANSFER", "65536"}, "-ERR value is not an integer or out of range\r\n"},
		{"too many arguments", []string{"LEADER", "TRANSFER", "1", "2"}, "-ERR syntax error\r\n"},
		{"unknown node", []string{"LEADER", "TRANSFER", "9"}, "-ERR no such node: 9\r\n"},
		{"no other voter", []string{"leader", "transfer"}, "-ERR node is not a voter: no voter but the leader\r\n"},
		{"to itself", []string{"LEADER", "TRANSFER", "1"}, ":1\r\n"},
		{"help", []string{"LEADER", "HELP"}, "*2\r\n+LEADER <subcommand> [<arg> ...]. Subcommands are:\r\n+TRANSFER [<id>]\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.expect(tt.want, tt.args...)
			if st := srv.Node().Status(); st.Role != "leader" {
				t.Errorf("after %v the node is %s", tt.args, st.Role)
			}
		})
	}
}

// BACKUP writes a new file inside the backup directory and replies where
// and at which index; a path that escapes the directory (by "..", an
// absolute path or a symbolic link), lies in the data directory, has no
// directory, or names an existing file is refused and nothing is written.
func TestBackup(t *testing.T) {
	root := t.TempDir()
	backups, outside := filepath.Join(root, "backups"), filepath.Join(root, "outside")
	for _, d := range []string{backups, outside} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(backups, "link")); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(backups, "data")
	srv := startServer(t, func(c *Config) { c.Node.DataDir, c.BackupDir = data, backups })
	c := dial(t, srv)
	c.expect(":1\r\n", "LOCK", "a", "me")

	v, ok := c.value("BACKUP", "first.backup").([]any)
	want := filepath.Join(backups, "first.backup")
	if !ok || len(v) != 8 || v[0] != "path" || v[1] != want || v[2] != "index" || v[3].(int64) <= 0 {
		t.Fatalf("BACKUP first.backup = %#v", v)
	}
	info, err := replication.Restore(want, replication.RestoreConfig{DataDir: t.TempDir(), ID: 1, Peers: map[uint64]string{1: "127.0.0.1:1"}})
	if err != nil || int64(info.Index) != v[3] || int64(info.Bytes) != v[7] {
		t.Fatalf("Restore of the backup = %+v, %v; BACKUP said %v", info, err, v)
	}
	if v, ok := c.value("BACKUP", filepath.Join(backups, "abs.backup")).([]any); !ok || v[1] != filepath.Join(backups, "abs.backup") {
		t.Fatalf("BACKUP of an absolute path inside = %#v", v)
	}

	for _, tt := range []struct {
		name, path, want string
	}{
		{"an existing file", "first.backup", "-ERR " + want + " exists: BACKUP never overwrites a file\r\n"},
		{"up and out", "../outside/x", "-ERR " + filepath.Join(outside, "x") + " is outside the backup directory " + backups + " (lockd --backup-dir)\r\n"},
		{"absolute, outside", filepath.Join(outside, "y"), "-ERR " + filepath.Join(outside, "y") + " is outside the backup directory " + backups + " (lockd --backup-dir)\r\n"},
		{"through a symbolic link", "link/z", "-ERR " + filepath.Join(outside, "z") + " is outside the backup directory " + backups + " (lockd --backup-dir)\r\n"},
		{"into the data directory", "data/snap/x", "-ERR " + filepath.Join(data, "snap", "x") + " is inside the data directory\r\n"},
		{"a directory that does not exist", "nowhere/x", "-ERR backup file's directory: lstat " + filepath.Join(backups, "nowhere") + ": no such file or directory\r\n"},
		{"no file name", "", "-ERR BACKUP needs a file name\r\n"},
		{"a directory's name", "sub/", "-ERR BACKUP needs a file name\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.expect(tt.want, "BACKUP", tt.path)
		})
	}
	c.expect("-ERR wrong number of arguments for 'backup' command\r\n", "BACKUP")
	for _, d := range []string{outside, filepath.Join(data, "snap")} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".snap") {
				t.Errorf("%s holds %s", d, e.Name())
			}
		}
	}
	if ents, _ := os.ReadDir(backups); len(ents) != 4 { // first, abs, link, data
		t.Errorf("the backup directory holds %v", ents)
	}
}

// Without a backup directory BACKUP is off: a client would otherwise choose
// where a file of contents it partly wrote is created.
func TestBackupIsOffWithoutABackupDirectory(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	c.expect("-ERR BACKUP is off: start lockd with --backup-dir, a directory for backups only\r\n", "BACKUP", "../x.backup")
}
