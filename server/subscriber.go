package server

import (
	"bytes"
	"fmt"

	"github.com/lockd/lockd/pubsub"
	"github.com/tidwall/redcon"
)

// A subscribed client's connection (see pubsub.go): detached from redcon's
// loop, read and run by subscriber, its messages written by pump.

// allowedSubscribed reports whether a RESP2 client with subscriptions may
// run the command name (lower case), as in Redis.
func allowedSubscribed(name string) bool {
	switch name {
	case "subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ping", "quit", "reset":
		return true
	}
	return false
}

// detach takes the client's connection out of redcon's loop, once: from its
// next command on, subscriber serves it (started by Server.closed, when
// redcon is done with it).
func (s *Server) detach(c *client) {
	if c.detached.Load() {
		return
	}
	c.dconn = c.conn.Detach()
	c.detached.Store(true)
	c.nc.idleTimeout = 0 // as Redis's timeout, which spares subscribers
}

// subscriber serves a detached client until it disconnects, quits, is
// killed or overflows, or the server closes: it reads and runs its
// commands, while pump writes its messages.
func (s *Server) subscriber(c *client) {
	dc := c.dconn
	done, pumped := make(chan struct{}), make(chan struct{})
	defer func() {
		close(done)
		<-pumped
		c.sub.Close()
		c.nc.Close()
		s.mu.Lock()
		delete(s.clients, c.id)
		s.mu.Unlock()
		s.conns.Done()
	}()
	c.wmu.Lock()
	err := dc.Flush() // what the handler wrote before the detach
	c.wmu.Unlock()
	go s.pump(c, dc, done, pumped)
	if err != nil {
		return
	}
	backlog := c.backlog
	c.backlog = nil
	for {
		var args [][]byte
		if len(backlog) > 0 {
			args, backlog = backlog[0], backlog[1:]
		} else {
			cmd, err := dc.ReadCommand()
			if err != nil {
				return
			}
			args = cmd.Args
		}
		if !s.runSubscribed(c, dc, args) {
			return
		}
	}
}

// runSubscribed runs one command of a detached client and flushes its
// reply; it reports whether the connection goes on.
//
// A command that changes subscriptions (or QUIT) runs under client.wmu, so that its
// confirmations go out before any message of the subscriptions it made.
// Any other is answered into a buffer of its own, copied to the connection
// under wmu once it is done: one that blocks (LOCK ... WAIT, a write
// waiting for its commit) does not hold the messages back meanwhile.
func (s *Server) runSubscribed(c *client, dc redcon.DetachedConn, args [][]byte) bool {
	p := s.prepare(c, args)
	var out redcon.Conn = dc
	if p.spec != nil && p.spec.run != nil && isSubscription(p.spec.name) {
		c.wmu.Lock()
		defer c.wmu.Unlock()
	} else {
		b := newBufConn(dc)
		out = b
		defer func() {
			c.wmu.Lock()
			defer c.wmu.Unlock()
			b.copyTo(dc)
		}()
	}
	c.result = ResultOK
	r := reply{c: out, resp3: c.resp3.Load(), res: &c.result}
	switch {
	case r.resp3 || c.subscriptions() == 0 || p.spec == nil:
		s.dispatch(out, c, p)
	case !allowedSubscribed(p.spec.name):
		r.err(fmt.Errorf("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", p.spec.name))
	case p.spec.name == "ping" && p.err == nil && len(args) <= 2:
		r.array(2)
		r.bulk("pong")
		if len(args) == 2 {
			r.bulkBytes(args[1])
		} else {
			r.bulk("")
		}
	default:
		s.dispatch(out, c, p)
	}
	s.observe(c, p.spec, p.start)
	if out != redcon.Conn(dc) {
		return !c.quit // flushed by the deferred copy
	}
	return dc.Flush() == nil && !c.quit
}

// isSubscription reports whether the command name (lower case) changes a
// client's subscriptions, or is QUIT (whose reply must go out before it
// closes the connection).
func isSubscription(name string) bool {
	switch name {
	case "subscribe", "psubscribe", "unsubscribe", "punsubscribe", "quit":
		return true
	}
	return false
}

// bufConn is a connection whose replies are written to a buffer of its
// own (redcon's Writer over it) until copyTo. The rest of redcon.Conn is
// the connection's.
type bufConn struct {
	redcon.Conn
	buf bytes.Buffer
	w   *redcon.Writer
}

func newBufConn(c redcon.Conn) *bufConn {
	b := &bufConn{Conn: c}
	b.w = redcon.NewWriter(&b.buf)
	return b
}

func (b *bufConn) WriteError(msg string)       { b.w.WriteError(msg) }
func (b *bufConn) WriteString(str string)      { b.w.WriteString(str) }
func (b *bufConn) WriteBulk(bulk []byte)       { b.w.WriteBulk(bulk) }
func (b *bufConn) WriteBulkString(bulk string) { b.w.WriteBulkString(bulk) }
func (b *bufConn) WriteInt(num int)            { b.w.WriteInt(num) }
func (b *bufConn) WriteInt64(num int64)        { b.w.WriteInt64(num) }
func (b *bufConn) WriteUint64(num uint64)      { b.w.WriteUint64(num) }
func (b *bufConn) WriteArray(count int)        { b.w.WriteArray(count) }
func (b *bufConn) WriteNull()                  { b.w.WriteNull() }
func (b *bufConn) WriteRaw(data []byte)        { b.w.WriteRaw(data) }
func (b *bufConn) WriteAny(v any)              { b.w.WriteAny(v) }

// copyTo writes what was replied to c and flushes c; the caller holds
// client.wmu.
func (b *bufConn) copyTo(c redcon.DetachedConn) {
	b.w.Flush()
	c.WriteRaw(b.buf.Bytes())
	c.Flush()
}

// pump writes the messages queued for a detached client until done is
// closed, the client falls too far behind (then it closes the connection,
// which ends subscriber too), or a write fails.
//
// A write to a client that does not read blocks until WriteTimeout; the
// queue meanwhile grows, and its overflow closes the connection at once
// from a watcher goroutine, which ends the blocked write. The watcher stops
// with pump.
func (s *Server) pump(c *client, dc redcon.DetachedConn, done <-chan struct{}, pumped chan<- struct{}) {
	watched := make(chan struct{})
	defer func() {
		<-watched
		close(pumped)
	}()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(watched)
		select {
		case <-c.sub.Overflowed():
			s.log.Warn("subscriber disconnected", "why", c.sub.Why(), "client", c.id, "addr", c.addr, "limit", s.cfg.PubSubBufferLimit)
			c.nc.Close()
		case <-stop:
		}
	}()
	var msgs []pubsub.Message
	for {
		select {
		case <-c.sub.Ready():
		case <-c.sub.Overflowed():
			c.nc.Close() // the watcher may not have seen it yet
			return
		case <-done:
			return
		}
		msgs = c.sub.Take(msgs[:0])
		if len(msgs) == 0 {
			continue
		}
		c.wmu.Lock()
		r := reply{c: dc, resp3: c.resp3.Load()}
		for _, m := range msgs {
			if m.Pattern != "" {
				r.push(4)
				r.bulk("pmessage")
				r.bulk(m.Pattern)
			} else {
				r.push(3)
				r.bulk("message")
			}
			r.bulk(m.Channel)
			r.bulk(m.Payload)
		}
		err := dc.Flush()
		c.wmu.Unlock()
		clear(msgs)
		if err != nil {
			c.nc.Close()
			return
		}
	}
}
