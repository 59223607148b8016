package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// With --log-format json every line lockd writes, from its start through
// serving a PING and a LOCK to its shutdown on SIGTERM, raft's own lines
// included (the harness logs at debug), is a JSON object with a time, a
// level and a msg; the node's lines carry its id as node. A format lockd
// does not know is refused with exit status 2 and a message naming the
// flag.
func TestLogFormatJSON(t *testing.T) {
	c := startNode(t, "--log-format", "json")
	rdb := c.client(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	if tok, err := lockCmd(ctx, rdb, "a", "o"); tok <= 0 || err != nil {
		t.Fatalf("LOCK: %d, %v", tok, err)
	}
	if rc := c.term(1); rc != 0 {
		t.Fatalf("SIGTERM: exit %d", rc)
	}
	msgs := map[string]map[string]any{} // the last line of each message
	lines := strings.Split(strings.TrimSuffix(c.logOf(1), "\n"), "\n")
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not a JSON object (%v):\n%s", i+1, err, line)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if s, ok := m[k].(string); !ok || s == "" {
				t.Fatalf("line %d has no %s:\n%s", i+1, k, line)
			}
		}
		msgs[m["msg"].(string)] = m
	}
	for _, msg := range []string{"lockd ready", "shutting down", "node stopped"} {
		if m, ok := msgs[msg]; !ok || m["node"] != 1.0 {
			t.Errorf("no %q line with node 1 among the %d lines: %v", msg, len(lines), m)
		}
	}

	t.Run("a node that cannot start says why in JSON too", func(t *testing.T) {
		busy := c.nodes[1].client // the node above is stopped; hold its port
		ln, err := net.Listen("tcp", busy)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		_, stderr, rc := runLockd(t, "--log-format", "json", "--listen", busy, "--data-dir", t.TempDir())
		var m map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(stderr)), &m); rc != 1 || err != nil ||
			m["msg"] != "cannot start" || !strings.Contains(fmt.Sprint(m["err"]), "address already in use") {
			t.Fatalf("lockd on a busy port in JSON mode: exit %d, stderr %q (%v); want 1 and one JSON line saying why", rc, stderr, err)
		}
	})
	t.Run("unknown-format", func(t *testing.T) {
		_, stderr, rc := runLockd(t, "--log-format", "xml", "--listen", freePort(t), "--data-dir", t.TempDir())
		if rc != 2 || stderr != "lockd: --log-format \"xml\": want text or json\n" {
			t.Fatalf("lockd --log-format xml: exit %d, %q; want 2 and a message naming --log-format", rc, stderr)
		}
	})
}
