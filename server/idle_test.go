package server

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdleTimeout: Config.IdleTimeout disconnects a client that sends
// nothing for that long, as Redis's timeout; a client blocked in LOCK ...
// WAIT is not idle, and is still watched for a hang-up.
func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	srv := startServer(t, func(c *Config) { c.IdleTimeout = idle })
	closedAfter := func(t *testing.T, c *rawConn, from time.Time) {
		t.Helper()
		c.with(t).expectClosed()
		if d := time.Since(from); d < idle {
			t.Fatalf("disconnected after %v, before the idle timeout %v", d, idle)
		}
	}

	t.Run("a client that sends nothing is disconnected", func(t *testing.T) {
		start := time.Now()
		closedAfter(t, dial(t, srv), start)
	})
	t.Run("idle time counts from the last command", func(t *testing.T) {
		c := dial(t, srv)
		start := time.Now()
		c.with(t).expect("+PONG\r\n", "PING")
		closedAfter(t, c, start)
	})
	t.Run("a client blocked in LOCK ... WAIT is not idle", func(t *testing.T) {
		holder := dial(t, srv)
		holder.with(t).int("LOCK", "idle", "holder")
		w := dial(t, srv).with(t)
		wait := 5 * idle
		start := time.Now()
		w.expect("$-1\r\n", "LOCK", "idle", "waiter", "WAIT", strconv.FormatInt(wait.Milliseconds(), 10))
		if d := time.Since(start); d < wait {
			t.Fatalf("LOCK ... WAIT %v answered after %v", wait, d)
		}
		start = time.Now()
		w.expect("+PONG\r\n", "PING")
		closedAfter(t, w, start)
	})
	t.Run("a client blocked past the idle timeout is withdrawn when it hangs up", func(t *testing.T) {
		dial(t, srv).with(t).int("LOCK", "idle2", "holder")
		w := dial(t, srv).with(t)
		queue(t, srv, w, "idle2", "waiter")
		// A silent client that connects after the waiter's last command is
		// disconnected after it: the waiter has then been blocked for longer
		// than the idle timeout.
		dial(t, srv).with(t).expectClosed()
		w.c.Close()
		poll(t, "the waiter's request to leave the queue", func() bool { return srv.Node().Table().Waiting() == 0 })
		c := dial(t, srv).with(t) // the holder's connection was idle too
		c.expect(":1\r\n", "UNLOCK", "idle2", "holder")
		c.expect("$-1\r\n", "OWNER", "idle2")
	})
}

// TestIdleTimeoutValidation: a negative IdleTimeout is refused.
func TestIdleTimeoutValidation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = New(Config{Listener: ln, IdleTimeout: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "idle timeout") {
		t.Fatalf("New with IdleTimeout -1s: %v", err)
	}
}
