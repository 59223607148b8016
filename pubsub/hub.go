// Package pubsub routes the messages a node delivers, PUBLISH's and the
// keyspace notifications, to the clients of that node that subscribed to
// them, as Redis's pub/sub does.
//
// A publisher never waits for a subscriber: a message is appended to each
// receiving subscriber's queue, and the subscriber's connection writes its
// queue out on its own goroutine. A subscriber whose queue grows past the
// hub's limit (one that does not read) is cut off: its queue is dropped and
// Overflowed is closed, and its connection is expected to close, as Redis
// closes a client past its pubsub output buffer limit.
package pubsub

import (
	"slices"
	"sync"
)

// Message is one message as a subscriber receives it: Pattern is the pattern
// it matched for a pattern subscription ("pmessage"), empty for a channel
// subscription ("message").
type Message struct {
	Pattern string
	Channel string
	Payload string
}

// size is what a message counts against its subscriber's limit: its bytes
// and a little for the framing.
func (m Message) size() int { return len(m.Pattern) + len(m.Channel) + len(m.Payload) + 32 }

// Hub holds the subscriptions of one node's clients.
//
// Concurrency: every method may be called from any goroutine. Publish takes
// the hub's read lock, so publishers run in parallel; subscribing takes its
// write lock.
type Hub struct {
	match func(pattern, channel string) bool
	limit int

	mu       sync.RWMutex
	channels map[string]map[*Sub]struct{}
	patterns map[string]map[*Sub]struct{}
}

// NewHub returns a hub that matches pattern subscriptions with match and
// cuts off a subscriber once more than limit bytes of messages wait in its
// queue.
func NewHub(match func(pattern, channel string) bool, limit int) *Hub {
	return &Hub{
		match:    match,
		limit:    limit,
		channels: make(map[string]map[*Sub]struct{}),
		patterns: make(map[string]map[*Sub]struct{}),
	}
}

// Publish queues payload for every subscriber of channel and every pattern
// subscription that matches it, and returns how many subscriptions received
// it (a client subscribed to the channel and to two matching patterns
// counts three times, as in Redis).
func (h *Hub) Publish(channel, payload string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for s := range h.channels[channel] {
		s.push(Message{Channel: channel, Payload: payload})
		n++
	}
	for p, subs := range h.patterns {
		if !h.match(p, channel) {
			continue
		}
		for s := range subs {
			s.push(Message{Pattern: p, Channel: channel, Payload: payload})
			n++
		}
	}
	return n
}

// Receivers returns how many subscriptions a message published on channel
// now would reach.
func (h *Hub) Receivers(channel string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := len(h.channels[channel])
	for p, subs := range h.patterns {
		if h.match(p, channel) {
			n += len(subs)
		}
	}
	return n
}

// Channels returns the channels with at least one subscriber that match
// pattern (every one when pattern is empty), sorted (PUBSUB CHANNELS).
func (h *Hub) Channels(pattern string) []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []string
	for c := range h.channels {
		if pattern == "" || h.match(pattern, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// NumSub returns the number of subscribers of channel (PUBSUB NUMSUB).
func (h *Hub) NumSub(channel string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.channels[channel])
}

// NumPat returns the number of distinct patterns subscribed to (PUBSUB
// NUMPAT).
func (h *Hub) NumPat() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.patterns)
}

// NewSub returns a subscriber with no subscriptions.
func (h *Hub) NewSub() *Sub {
	return &Sub{
		hub:      h,
		ready:    make(chan struct{}, 1),
		over:     make(chan struct{}),
		channels: make(map[string]struct{}),
		patterns: make(map[string]struct{}),
	}
}

// add puts s in m's set for key and reports whether it was not there.
func add(m map[string]map[*Sub]struct{}, key string, s *Sub) bool {
	set := m[key]
	if set == nil {
		set = make(map[*Sub]struct{})
		m[key] = set
	}
	if _, ok := set[s]; ok {
		return false
	}
	set[s] = struct{}{}
	return true
}

// remove takes s out of m's set for key.
func remove(m map[string]map[*Sub]struct{}, key string, s *Sub) {
	set := m[key]
	delete(set, s)
	if len(set) == 0 {
		delete(m, key)
	}
}

// Idle reports whether no client subscribes to anything: then nothing
// published reaches anyone.
func (h *Hub) Idle() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.channels) == 0 && len(h.patterns) == 0
}

// CutAll cuts off every subscriber, as an overflow does (Overflowed is
// closed), for why, and returns how many it cut off: their connections are
// expected to close. A node does it when it skips messages (it installed a
// snapshot), so that no subscriber misses messages unawares.
func (h *Hub) CutAll(why string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	subs := map[*Sub]bool{}
	for _, m := range []map[string]map[*Sub]struct{}{h.channels, h.patterns} {
		for _, set := range m {
			for s := range set {
				subs[s] = true
			}
		}
	}
	for s := range subs {
		s.mu.Lock()
		s.cutLocked(why)
		s.mu.Unlock()
	}
	return len(subs)
}
