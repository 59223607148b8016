package server

import (
	"fmt"
	"strings"

	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/pubsub"
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
// is detached and served by subscriber (subscriber.go) on a goroutine of its own,
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
// (P)SUBSCRIBE. The client's goroutine only (it sets c.sub under c.mu, for
// watchUsers).
func (c *client) subscriber(s *Server) *pubsub.Sub {
	if c.sub == nil {
		sub := s.hub.NewSub()
		c.mu.Lock() // watchUsers reads it
		c.sub = sub
		c.mu.Unlock()
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
