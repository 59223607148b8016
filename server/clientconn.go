package server

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lockd/lockd/respguard"
)

// listener wraps accepted connections with the wire guard and a clientConn,
// and hands those that protected mode refuses (refuse) to denials instead.
type listener struct {
	net.Listener
	limits       respguard.Limits
	writeTimeout time.Duration
	idleTimeout  time.Duration
	refuse       func(remote net.Addr) bool
	denials      *denials
}

func (l listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.refuse != nil && l.refuse(c.RemoteAddr()) {
			l.denials.deny(c, errProtectedMode)
			continue
		}
		return &clientConn{Conn: respguard.Wrap(c, l.limits), writeTimeout: l.writeTimeout, idleTimeout: l.idleTimeout}, nil
	}
}

// clientConn is a client connection as redcon reads and writes it, over the
// wire guard. It fails a write that cannot complete within writeTimeout,
// fails a read that waits longer than idleTimeout (when positive) for the
// client to send something, tells whether its reader is blocked waiting for
// input, and watches for a hang-up while a command blocks (watch).
//
// Concurrency: one goroutine at a time reads: redcon's connection goroutine,
// or during a watch the watcher, which is done before watch's stop returns.
// Write, Close and the rest of net.Conn may be called from any goroutine.
type clientConn struct {
	net.Conn     // the wire guard's
	writeTimeout time.Duration
	idleTimeout  time.Duration
	reading      atomic.Bool // Read waits for the wire

	// What the last watches read ahead, served by Read before the wire, and
	// the error that ended a watch, returned after it. Owned by the
	// goroutine that may read.
	ahead    []byte
	aheadErr error
}

func (c *clientConn) Read(b []byte) (int, error) {
	if len(c.ahead) > 0 {
		n := copy(b, c.ahead)
		c.ahead = c.ahead[n:]
		if len(c.ahead) == 0 {
			c.ahead = nil
		}
		return n, nil
	}
	if c.aheadErr != nil {
		return 0, c.aheadErr
	}
	if c.idleTimeout > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(c.idleTimeout)); err != nil {
			return 0, err
		}
	}
	c.reading.Store(true)
	defer c.reading.Store(false)
	return c.Conn.Read(b)
}

func (c *clientConn) Write(b []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	return c.Conn.Write(b)
}

// watch reads the connection on a goroutine of its own while the caller,
// the connection's goroutine, is blocked in a command. What the client sends
// meanwhile (pipelined commands) is kept, up to limit bytes in all, for Read
// to return afterwards in order; past limit the watcher stops reading and
// the client waits for the command like any other. When a read fails — the
// client hung up or reset the connection, CLIENT KILL or Close closed it,
// the wire guard refused what it sent — the watcher calls hangup, once, and
// stops; Read returns that error after what was read ahead. The idle timeout
// does not run during a watch: a client blocked in a command is not idle.
//
// stop ends the watch: it sets a read deadline in the past, which ends the
// watcher's read, waits until the watcher is done and clears the deadline.
// The caller must call it before it returns to redcon, which reads next.
func (c *clientConn) watch(limit int, hangup func()) (stop func()) {
	c.Conn.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(c.ahead) < limit {
			// Mostly nothing comes: start small, then double.
			c.ahead = slices.Grow(c.ahead, min(max(512, len(c.ahead)), limit-len(c.ahead)))
			n, err := c.Conn.Read(c.ahead[len(c.ahead):min(cap(c.ahead), limit)])
			c.ahead = c.ahead[:len(c.ahead)+n]
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) { // not stop's deadline
					c.aheadErr = err
					hangup()
				}
				return
			}
		}
	}()
	return func() {
		c.Conn.SetReadDeadline(time.Unix(1, 0))
		<-done
		c.Conn.SetReadDeadline(time.Time{})
		if len(c.ahead) == 0 {
			c.ahead = nil // nothing came: keep no buffer while idle
		}
	}
}

// whileWatched runs block, a command that may block for long (LOCK ...
// WAIT), with a context that ends if the client hangs up meanwhile (see
// clientConn.watch), and reports whether it did. A client that hung up is
// done with: block's result is not answered, the rest of its pipeline is
// ignored and its connection is closed, so its slot is free when the
// handler returns.
func (s *Server) whileWatched(c *client, block func(ctx context.Context)) (hungUp bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := c.nc.watch(s.cfg.WireLimits.MaxCommand, cancel)
	block(ctx)
	stop()
	if ctx.Err() == nil {
		return false
	}
	c.quit = true
	c.conn.Close()
	return true
}
