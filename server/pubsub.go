package server

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/pubsub"
	"github.com/tidwall/redcon"
)

// Pub/sub, as Redis's: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE,
// PUBLISH, PUBSUB, and keyspace notifications.
//
// PUBLISH goes through the log like a write, and every node delivers each
// message to its own subscribers when it applies it, so a subscriber on any
// node receives every message, in log order. Keyspace notifications come
// from the same place: each node delivers what its own apply did (keys set,
// deleted, expired, granted) to its own subscribers, when
// NotifyKeyspaceEvents asks for them.
//
// A client that subscribes leaves redcon's connection loop: its connection
// is detached and served by subscriber (below) on a goroutine of its own,
// with a writer goroutine (pump) that writes the messages the hub queues for
// it. Both write through the connection's buffer under client.wmu, so a
// message never lands inside a reply. A subscriber that lets more than
// PubSubBufferLimit bytes of messages wait is disconnected.

// keyspaceEvents is a parsed notify-keyspace-events value.
type keyspaceEvents uint16

const (
	notifyKeyspace keyspaceEvents = 1 << iota // K: __keyspace@0__:<key> channels
	notifyKeyevent                            // E: __keyevent@0__:<event> channels
	notifyGeneric                             // g: del, expire, persist, and lockd's grant
	notifyString                              // $: set
	notifyExpired                             // x: expired
	notifyOther                               // Redis's classes lockd has no events of (l s h z t e m n d)
	notifyAll      = notifyGeneric | notifyString | notifyExpired | notifyOther
)

// parseKeyspaceEvents parses Redis's notify-keyspace-events letters.
func parseKeyspaceEvents(s string) (keyspaceEvents, error) {
	var f keyspaceEvents
	for _, c := range []byte(s) {
		switch c {
		case 'K':
			f |= notifyKeyspace
		case 'E':
			f |= notifyKeyevent
		case 'g':
			f |= notifyGeneric
		case '$':
			f |= notifyString
		case 'x':
			f |= notifyExpired
		case 'A':
			f |= notifyAll
		case 'l', 's', 'h', 'z', 't', 'e', 'm', 'n', 'd':
			f |= notifyOther
		default:
			return 0, fmt.Errorf("notify-keyspace-events %q: unknown class %q", s, c)
		}
	}
	return f, nil
}

// class is the notify-keyspace-events class of an event kind.
func class(k lock.EventKind) keyspaceEvents {
	switch k {
	case lock.EventSet:
		return notifyString
	case lock.EventExpired:
		return notifyExpired
	}
	return notifyGeneric
}

// deliver hands what the node's apply did to its subscribers. The applier
// calls it (replication.Config.Events); it never blocks.
func (s *Server) deliver(evs []lock.Event) {
	idle := s.hub.Idle()
	for _, e := range evs {
		switch {
		case e.Kind == lock.EventUserDeleted:
			s.closeUser(e.Name)
			continue
		case idle:
			continue
		case e.Kind == lock.EventPublish:
			s.hub.Publish(e.Name, e.Payload)
			continue
		}
		if s.notify&class(e.Kind) == 0 {
			continue
		}
		kind := e.Kind.String()
		if s.notify&notifyKeyspace != 0 {
			s.hub.Publish("__keyspace@0__:"+e.Name, kind)
		}
		if s.notify&notifyKeyevent != 0 {
			s.hub.Publish("__keyevent@0__:"+kind, e.Name)
		}
	}
}

// closeUser closes the connections authenticated as the user name, which
// ACL DELUSER deleted (the applier calls it through deliver, in log order:
// a user made again right after keeps none of the old connections). The
// connections are closed on a goroutine of its own, which ends once they
// are: closing a TLS connection may wait to send its close alert.
func (s *Server) closeUser(name string) {
	s.mu.Lock()
	var ncs []*clientConn
	for _, c := range s.clients {
		c.mu.Lock()
		if c.user == name {
			ncs = append(ncs, c.nc)
		}
		c.mu.Unlock()
	}
	s.mu.Unlock()
	if len(ncs) > 0 {
		go func() {
			for _, nc := range ncs {
				nc.Close()
			}
		}()
	}
}

// dropSubscribers disconnects every subscriber: the node installed a
// snapshot, so the messages and notifications of the entries it replaced
// are never delivered. A subscriber is disconnected rather than left to miss
// them unawares: while it stays connected it receives every message in log
// order. The applier calls it (replication.Config.EventsLost).
func (s *Server) dropSubscribers() {
	if n := s.hub.CutAll("the node installed a snapshot: it skips the messages of the entries the snapshot replaced"); n > 0 {
		s.log.Warn("installed a snapshot: disconnected the subscribers, which would miss its entries' messages", "subscribers", n)
	}
}

// publishArgs builds PUBLISH channel message.
func (s *Server) publishArgs(args [][]byte) (lock.Command, error) {
	if len(args[1]) > s.cfg.MaxChannelLen {
		return lock.Command{}, errChannelLen
	}
	return lock.Command{Op: lock.OpPublish, Name: string(args[1]), Owner: string(args[2])}, nil
}

// cmdSubscribe runs SUBSCRIBE and PSUBSCRIBE: one confirmation per
// channel or pattern, with the client's count of subscriptions after it.
func (s *Server) cmdSubscribe(c *client, r reply, args [][]byte) {
	pattern := len(args[0]) > 0 && (args[0][0] == 'p' || args[0][0] == 'P')
	for _, a := range args[1:] {
		if len(a) > s.cfg.MaxChannelLen {
			r.err(errChannelLen)
			return
		}
	}
	kind, sub := "subscribe", c.subscriber(s)
	if pattern {
		kind = "psubscribe"
	}
	for _, a := range args[1:] {
		var n int
		if pattern {
			n = sub.PSubscribe(string(a))
		} else {
			n = sub.Subscribe(string(a))
		}
		r.push(3)
		r.bulk(kind)
		r.bulkBytes(a)
		r.int(int64(n))
	}
	s.detach(c)
}

// cmdUnsubscribe runs UNSUBSCRIBE and PUNSUBSCRIBE: without arguments,
// from every channel (pattern) the client subscribes to.
func (s *Server) cmdUnsubscribe(c *client, r reply, args [][]byte) {
	pattern := len(args[0]) > 0 && (args[0][0] == 'p' || args[0][0] == 'P')
	kind := "unsubscribe"
	if pattern {
		kind = "punsubscribe"
	}
	names := make([]string, 0, len(args)-1)
	for _, a := range args[1:] {
		names = append(names, string(a))
	}
	sub := c.sub
	if len(names) == 0 && sub != nil {
		if pattern {
			names = sub.Patterns()
		} else {
			names = sub.Channels()
		}
	}
	if len(names) == 0 {
		r.push(3)
		r.bulk(kind)
		r.null()
		r.int(int64(c.subscriptions()))
		return
	}
	for _, name := range names {
		n := 0
		switch {
		case sub == nil:
		case pattern:
			n = sub.PUnsubscribe(name)
		default:
			n = sub.Unsubscribe(name)
		}
		r.push(3)
		r.bulk(kind)
		r.bulk(name)
		r.int(int64(n))
	}
}

// cmdPubSub runs PUBSUB CHANNELS [pattern], NUMSUB [channel ...] and
// NUMPAT, about this node's subscribers.
func (s *Server) cmdPubSub(c *client, r reply, args [][]byte) {
	switch sub := strings.ToUpper(string(args[1])); {
	case sub == "CHANNELS" && len(args) <= 3:
		pattern := ""
		if len(args) == 3 {
			pattern = string(args[2])
		}
		chans := s.hub.Channels(pattern)
		r.array(len(chans))
		for _, ch := range chans {
			r.bulk(ch)
		}
	case sub == "NUMSUB":
		r.array(2 * (len(args) - 2))
		for _, a := range args[2:] {
			r.bulkBytes(a)
			r.int(int64(s.hub.NumSub(string(a))))
		}
	case sub == "NUMPAT" && len(args) == 2:
		r.int(int64(s.hub.NumPat()))
	default:
		r.err(fmt.Errorf("ERR unknown subcommand or wrong number of arguments for '%s'. Try PUBSUB HELP.", clip(args[1])))
	}
}

// subscriber returns the client's subscriptions, made on its first
// (P)SUBSCRIBE. The client's goroutine only.
func (c *client) subscriber(s *Server) *pubsub.Sub {
	if c.sub == nil {
		c.sub = s.hub.NewSub()
	}
	return c.sub
}

// subscriptions is the client's count of channels and patterns.
func (c *client) subscriptions() int {
	if c.sub == nil {
		return 0
	}
	return c.sub.Count()
}

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
