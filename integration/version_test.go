package integration

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// lockd --version prints its version and the build's module information
// (as go version -m does: the Go version, the main module, each dependency
// with its version) on stdout and exits 0 at once, without opening its
// data directory or its ports; a node of the same binary reports that
// version in INFO as lockd_version, and the release alone in HELLO.
func TestVersionFlag(t *testing.T) {
	busy, err := net.Listen("tcp", freePort(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	dir := filepath.Join(t.TempDir(), "data")
	stdout, stderr, rc := runLockd(t, "--version", "--listen", busy.Addr().String(), "--cluster-listen", busy.Addr().String(), "--data-dir", dir)
	if rc != 0 || stderr != "" {
		t.Fatalf("lockd --version: exit %d, stderr %q; want 0 and nothing", rc, stderr)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lockd --version made its data directory (%v)", err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`\Alockd 0\.1\.0 \S.*\n`),
		regexp.MustCompile(`(?m)^go\t` + regexp.QuoteMeta(runtime.Version()) + `$`),
		regexp.MustCompile(`(?m)^mod\tgithub\.com/lockd/lockd\t\S+\t`),
		regexp.MustCompile(`(?m)^dep\tgo\.etcd\.io/raft/v3\tv3\.\d+\.\d+\S*\th1:\S+$`),
		regexp.MustCompile(`(?m)^dep\tgithub\.com/tidwall/redcon\tv\d+\.\d+\.\d+\S*\th1:\S+$`),
	} {
		if !want.MatchString(stdout) {
			t.Errorf("lockd --version does not match %s:\n%s", want, stdout)
		}
	}

	t.Run("INFO-and-HELLO", func(t *testing.T) {
		version, _, _ := strings.Cut(strings.TrimPrefix(stdout, "lockd "), "\n")
		c := startNode(t)
		rdb := c.client(1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		info, err := rdb.Info(ctx, "server").Result()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(info, "\r\nlockd_version:"+version+"\r\n") {
			t.Errorf("INFO server has no lockd_version:%s:\n%s", version, info)
		}
		hello, err := rdb.Do(ctx, "HELLO", "3").Result()
		if m, ok := hello.(map[any]any); err != nil || !ok || m["version"] != "0.1.0" {
			t.Errorf("HELLO 3 = %#v, %v; want version 0.1.0, the release alone", hello, err)
		}
	})
}

// runLockd runs the lockd binary with args, which must make it exit by
// itself within 10 seconds, and returns what it printed and its exit code.
func runLockd(t testing.TB, args ...string) (stdout, stderr string, rc int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, lockdBin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("lockd %q still ran after 10s; stderr:\n%s", args, errOut.String())
	}
	return out.String(), errOut.String(), exitCode(err)
}
