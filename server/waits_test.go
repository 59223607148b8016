package server

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// connectedClients reads INFO's connected_clients on rc.
func (rc *rawConn) connectedClients() int {
	rc.t.Helper()
	info := rc.value("INFO", "clients").(string)
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "connected_clients:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				rc.t.Fatalf("connected_clients: %q", v)
			}
			return n
		}
	}
	rc.t.Fatalf("no connected_clients in %q", info)
	return 0
}

// queue sends LOCK name owner PX 30000 WAIT 600000 on w and returns once
// the request waits in srv's table behind the holder and the waiters before it.
func queue(t testing.TB, srv *Server, w *rawConn, name, owner string) {
	t.Helper()
	before := srv.Node().Table().Waiting()
	w.send(encode("LOCK", name, owner, "PX", "30000", "WAIT", "600000"))
	poll(t, owner+" to queue for "+name, func() bool { return srv.Node().Table().Waiting() == before+1 })
}

// TestHungUpWaiterIsWithdrawn: a client that hangs up while its LOCK ...
// WAIT waits has its request taken out of the queue through the log, and
// its connection slot freed, at once rather than when the wait runs out.
func TestHungUpWaiterIsWithdrawn(t *testing.T) {
	// Two slots: the holder's connection and the waiter's.
	srv := startServer(t, func(c *Config) { c.MaxClients = 2 })
	holder := dial(t, srv)
	tok := holder.int("LOCK", "hung", "holder")

	tests := []struct {
		name   string
		hangUp func(t *testing.T, w *rawConn, id int64)
	}{
		{"the client closes its socket", func(t *testing.T, w *rawConn, _ int64) { w.c.Close() }},
		{"the client resets the connection", func(t *testing.T, w *rawConn, _ int64) {
			w.c.(*net.TCPConn).SetLinger(0)
			w.c.Close()
		}},
		{"the client shuts down its sending side", func(t *testing.T, w *rawConn, _ int64) {
			w.c.(*net.TCPConn).CloseWrite()
			w.with(t).expectClosed()
		}},
		{"the client breaks the protocol", func(t *testing.T, w *rawConn, _ int64) {
			w.send("*abc\r\n")
			if got := w.with(t).reply(); !strings.HasPrefix(got, "-ERR Protocol error: ") {
				t.Fatalf("reply to a bad frame during the wait: %q", got)
			}
			w.with(t).expectClosed()
		}},
		{"CLIENT KILL ID", func(t *testing.T, w *rawConn, id int64) {
			holder.with(t).expect(":1\r\n", "CLIENT", "KILL", "ID", strconv.FormatInt(id, 10))
			w.with(t).expectClosed()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			holder := holder.with(t)
			w := dial(t, srv)
			id := w.int("CLIENT", "ID")
			queue(t, srv, w, "hung", "waiter")
			tt.hangUp(t, w, id)
			poll(t, "the waiter's request to leave the queue", func() bool { return srv.Node().Table().Waiting() == 0 })
			poll(t, "the waiter's slot to be freed", func() bool { return holder.connectedClients() == 1 })
			// The slot takes a new client; the lock was never the waiter's.
			d := dial(t, srv)
			d.expect("+PONG\r\n", "PING")
			d.c.Close()
			if owner, token, _, held := holder.lockInfo("hung"); owner != "holder" || token != tok || !held {
				t.Fatalf("LOCKINFO hung = %q, %d, %v; want the holder's %d", owner, token, held, tok)
			}
			poll(t, "the probe's slot to be freed", func() bool { return holder.connectedClients() == 1 })
		})
	}
	t.Run("a client that hangs up before its request is queued", func(t *testing.T) {
		holder := holder.with(t)
		w := dial(t, srv)
		w.int("CLIENT", "ID") // counted in connected_clients from now on
		w.send(encode("LOCK", "hung", "early", "PX", "30000", "WAIT", "600000"))
		w.c.Close()
		// The handler returns once the request is answered and, if it was
		// queued, withdrawn: then nothing may be left in the queue.
		poll(t, "the waiter's slot to be freed", func() bool { return holder.connectedClients() == 1 })
		if n := srv.Node().Table().Waiting(); n != 0 {
			t.Fatalf("%d requests still queued after the client left", n)
		}
	})
	t.Run("a withdrawn waiter is not handed the lock", func(t *testing.T) {
		holder := holder.with(t)
		w := dial(t, srv)
		queue(t, srv, w, "hung", "waiter")
		w.c.Close()
		poll(t, "the waiter's request to leave the queue", func() bool { return srv.Node().Table().Waiting() == 0 })
		holder.expect(":1\r\n", "UNLOCK", "hung", "holder")
		holder.expect("$-1\r\n", "OWNER", "hung")
	})
}

// TestCommandsSentDuringAWait: what a client pipelines after LOCK ... WAIT
// while it waits is read ahead (to notice a hang-up) and answered after the
// wait, in order, none lost, also past the read-ahead bound.
func TestCommandsSentDuringAWait(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.WireLimits.MaxCommand = 1024 })
	holder := dial(t, srv)
	tests := []struct {
		name   string
		echoes int
	}{
		{"one command", 1},
		{"more than the read-ahead bound", 2000}, // ~28 KiB
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			holder := holder.with(t)
			holder.int("LOCK", "pipe", "holder")
			w := dial(t, srv)
			queue(t, srv, w, "pipe", "waiter")
			var b strings.Builder
			for i := range tt.echoes {
				b.WriteString(encode("ECHO", strconv.Itoa(i)))
			}
			// A command split across writes, its first half read ahead.
			b.WriteString("*1\r\n$4\r\nPI")
			w.send(b.String())
			w.send("NG\r\n")
			holder.expect(":1\r\n", "UNLOCK", "pipe", "holder")
			if _, v, err := w.read(); err != nil || v.(int64) <= 0 {
				t.Fatalf("LOCK ... WAIT after the release: %#v, %v; want a token", v, err)
			}
			for i := range tt.echoes {
				if got := w.reply(); got != bulk(strconv.Itoa(i)) {
					t.Fatalf("reply %d after the wait: %q, want %q", i, got, bulk(strconv.Itoa(i)))
				}
			}
			if got := w.reply(); got != "+PONG\r\n" {
				t.Fatalf("last reply: %q, want +PONG", got)
			}
			w.expect(":1\r\n", "UNLOCK", "pipe", "waiter")
		})
	}
}

// TestCloseDuringWait: a queued LOCK ... WAIT that Close interrupts was
// sent, so its outcome is unknown, and the reply says so.
func TestCloseDuringWait(t *testing.T) {
	srv := startServer(t)
	holder := dial(t, srv)
	holder.int("LOCK", "closing", "holder")
	w := dial(t, srv)
	queue(t, srv, w, "closing", "waiter")
	closeWithin(t, srv, 10*time.Second)
	if got := w.reply(); got != "-TRYAGAIN node shutting down; outcome unknown\r\n" {
		t.Fatalf("queued LOCK ... WAIT at Close: %q", got)
	}
	w.expectClosed()
}
