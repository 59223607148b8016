package integration

import (
	"bufio"
	"context"
	"io"
	"testing"
	"time"
)

// TestIdleTimeoutFlag: --timeout 1 disconnects a client silent for a
// second; a client blocked in LOCK ... WAIT for longer is answered.
func TestIdleTimeoutFlag(t *testing.T) {
	c := startNode(t, "--timeout", "1")
	ctx := context.Background()
	silent := dialRaw(t, c)
	if replies, closed := readUntilClosed(t, silent, 10*time.Second); len(replies) != 0 || !closed {
		t.Fatalf("silent client: replies %q, closed %v; want a close", replies, closed)
	}
	if tok, err := lockCmd(ctx, oneConn(t, c), "idle", "holder"); tok <= 0 || err != nil {
		t.Fatalf("LOCK idle holder = %d, %v", tok, err)
	}
	w := dialRaw(t, c)
	w.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(w, encodeRESP("LOCK", "idle", "waiter", "WAIT", "2500"))
	rd := bufio.NewReader(w)
	if r, err := readReply(rd); r != "nil" || err != nil {
		t.Fatalf("LOCK ... WAIT 2500 with --timeout 1 = %q, %v; want a null after the wait", r, err)
	}
	io.WriteString(w, "PING\r\n")
	if r, err := readReply(rd); r != "+PONG" || err != nil {
		t.Fatalf("PING after the wait = %q, %v", r, err)
	}
}
