package main

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/lockd/lockd/server"
)

// The version INFO and HELLO report starts with the release and names the
// build: its module version, and the revision when the module version does
// not already name it.
func TestVersionOf(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name string
		info string // debug.BuildInfo.String's form; "" for no build information
		want string
	}{
		{"no-build-info", "", "0.1.0"},
		{"no-vcs", "go\tgo1.26.8\npath\tgithub.com/lockd/lockd/cmd/lockd\nmod\tgithub.com/lockd/lockd\t(devel)\t\n", "0.1.0 (devel)"},
		{"checkout-modified", "go\tgo1.26.8\nmod\tgithub.com/lockd/lockd\tv0.0.0-20261126161501-0123456789ab+dirty\t\n" +
			"build\tvcs.revision=" + rev + "\nbuild\tvcs.modified=true\n", "0.1.0 v0.0.0-20261126161501-0123456789ab+dirty"},
		{"tagged-commit", "go\tgo1.26.8\nmod\tgithub.com/lockd/lockd\tv0.1.0\t\nbuild\tvcs.revision=" + rev + "\n", "0.1.0 v0.1.0 0123456789ab"},
		{"short-revision", "go\tgo1.26.8\nmod\tgithub.com/lockd/lockd\t(devel)\t\nbuild\tvcs.revision=abc\n", "0.1.0 (devel) abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bi *debug.BuildInfo
			if tc.info != "" {
				var err error
				if bi, err = debug.ParseBuildInfo(tc.info); err != nil {
					t.Fatal(err)
				}
			}
			if got := versionOf(bi); got != tc.want {
				t.Fatalf("versionOf = %q; want %q", got, tc.want)
			}
		})
	}
	if server.DefaultVersion != "0.1.0" {
		t.Fatalf("the release is %s: update the cases", server.DefaultVersion)
	}
}

// lockd --version prints its version and this build's module information on
// stdout and exits 0, whatever else the flags say, without opening the data
// directory or a port; the node's configuration carries the same version.
func TestVersion(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	dir := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"two-dashes", []string{"--version"}},
		{"one-dash", []string{"-version"}},
		{"port-in-use-and-bad-values", []string{"--listen", busy.Addr().String(), "--data-dir", dir, "--fsync", "sometimes", "--log-format", "xml", "--version"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// --peers is wrong, and checked after the logger is made: should
			// --version not stop run, it exits 2 instead of starting a node.
			args := append(tc.args, "--peers", "1=nowhere")
			var stdout, stderr strings.Builder
			if rc := run(args, &stdout, &stderr); rc != 0 || stderr.Len() != 0 {
				t.Fatalf("run(%q) = %d, stderr %q; want 0 and nothing", tc.args, rc, stderr.String())
			}
			out := stdout.String()
			want := "lockd " + versionOf(buildInfo()) + "\ngo\t" + runtime.Version() + "\n"
			if !strings.HasPrefix(out, want) || !strings.Contains(out, "\nmod\tgithub.com/lockd/lockd\t") {
				t.Fatalf("run(%q) printed\n%s\nwant it to start with\n%sand name the module github.com/lockd/lockd", tc.args, out, want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("run(%q) made the data directory (%v)", tc.args, err)
			}
		})
	}
	t.Run("config", func(t *testing.T) {
		o, err := parseFlags(nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := o.config(nil, nil, nil, nil, nil).Build, versionOf(buildInfo()); got != want {
			t.Fatalf("Config.Build = %q; want %q", got, want)
		}
	})
}
