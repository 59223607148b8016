package main

import (
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// A metrics address that cannot be listened on stops lockd, saying which
// flag, after closing the node it started.
func TestMetricsListenInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var stderr strings.Builder
	args := []string{"--listen", "127.0.0.1:0", "--cluster-listen", "127.0.0.1:0",
		"--data-dir", filepath.Join(t.TempDir(), "data"), "--metrics-listen", taken.Addr().String()}
	if rc := run(args, io.Discard, &stderr); rc != 1 {
		t.Fatalf("run = %d; want 1 (stderr %q)", rc, stderr.String())
	}
	if !strings.Contains(stderr.String(), "lockd: --metrics-listen: listen tcp "+taken.Addr().String()) {
		t.Fatalf("stderr %q: want lockd: --metrics-listen: and why", stderr.String())
	}
}
