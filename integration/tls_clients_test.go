package integration

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTLSClientLibraries: redis-cli --tls, redis-py (ssl=True) and ioredis
// (tls) take a lock, read its owner and release it over TLS with a client
// certificate, trusting the node's CA; without a client certificate the
// node (--tls-auth-clients yes) refuses them. The scripts are
// clients/tls_check.py and clients/tls_check.js.
func TestTLSClientLibraries(t *testing.T) {
	cli, node := needRedisCLI(t), needIoredis(t)
	needRedisPy(t)
	ca := newCA(t, "lockd test CA")
	n := startTLSNode(t, ca, tlsNodeOpts{})
	certFile, keyFile := n.client.files(t)
	host, port, _ := strings.Cut(n.addr, ":")

	for _, tc := range []struct {
		name    string
		owner   string // the owner its LOCK names
		refused string // what it says when refused
		// run runs the client; creds are the certificate and key files
		// to present, or none.
		run func(t *testing.T, creds []string) string
	}{
		{"redis-cli", "cli-owner", "Server closed the connection", func(t *testing.T, creds []string) string {
			args := []string{"-h", host, "-p", port, "--tls", "--cacert", ca.file}
			if creds != nil {
				args = append(args, "--cert", creds[0], "--key", creds[1])
			}
			out := runClient(t, cli, append(args, "LOCK", "cli-tls", "cli-owner", "PX", "30000")...)
			if tok, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64); err != nil || tok <= 0 {
				return "error " + out
			}
			return "lock " + strings.TrimSpace(out) + "\n" +
				"owner " + runClient(t, cli, append(args, "OWNER", "cli-tls")...) +
				"unlock " + runClient(t, cli, append(args, "UNLOCK", "cli-tls", "cli-owner")...)
		}},
		{"redis-py", "py-owner", "certificate required", func(t *testing.T, creds []string) string {
			return runClient(t, redisPyPython, append([]string{clientScript(t, "tls_check.py"), host, port, ca.file}, creds...)...)
		}},
		{"ioredis", "io-owner", "certificate required", func(t *testing.T, creds []string) string {
			return runClient(t, node, append([]string{clientScript(t, "tls_check.js"), host, port, ca.file}, creds...)...)
		}},
	} {
		t.Run(tc.name+"/client-certificate", func(t *testing.T) {
			out := tc.run(t, []string{certFile, keyFile})
			m := scriptLines(out, 1)
			if tok, err := strconv.ParseInt(m["lock"], 10, 64); err != nil || tok <= 0 || m["owner"] != tc.owner || m["unlock"] != "1" {
				t.Fatalf("%s over TLS printed:\n%s\nwant a token, owner %s and unlock 1", tc.name, out, tc.owner)
			}
		})
		t.Run(tc.name+"/no-client-certificate", func(t *testing.T) {
			out := tc.run(t, nil)
			if !strings.HasPrefix(out, "error ") || !strings.Contains(out, tc.refused) {
				t.Fatalf("%s over TLS without a client certificate printed:\n%s\nwant an error with %q", tc.name, out, tc.refused)
			}
		})
	}
}

// runClient runs a client program and returns what it printed, stdout and
// stderr together; it fails t if the program does not finish within 20s.
func runClient(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	out, _ := cmd.CombinedOutput() // a refused client exits non-zero; what it printed says why
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish within 20s:\n%s", name, args, out)
	}
	return string(out)
}
