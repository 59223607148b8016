package pubsub

import (
	"slices"
	"sync"
)

// Sub is one client's subscriptions and the queue of messages waiting to be
// written to it.
//
// Concurrency: Subscribe, Unsubscribe, PSubscribe, PUnsubscribe, Channels,
// Patterns, Count and Close belong to the client's goroutine; Take, Ready
// and Overflowed to its writer; publishers reach it through the hub. Every
// method may run at the same time as the others.
type Sub struct {
	hub *Hub

	// Guarded by hub.mu.
	channels map[string]struct{}
	patterns map[string]struct{}
	closed   bool

	mu    sync.Mutex
	queue []Message
	bytes int
	cut   bool          // cut off (overflow or CutAll): nothing more is queued
	why   string        // why it was cut off
	ready chan struct{} // holds a token while queue is non-empty and not yet taken
	over  chan struct{} // closed when cut
}

// Subscribe subscribes s to channel and returns the number of its
// subscriptions, channels and patterns together.
func (s *Sub) Subscribe(channel string) int {
	return s.change(s.channels, s.hub.channels, channel, true)
}

// Unsubscribe ends s's subscription to channel, if any, and returns the
// number of its subscriptions left.
func (s *Sub) Unsubscribe(channel string) int {
	return s.change(s.channels, s.hub.channels, channel, false)
}

// PSubscribe subscribes s to the channels that match pattern.
func (s *Sub) PSubscribe(pattern string) int {
	return s.change(s.patterns, s.hub.patterns, pattern, true)
}

// PUnsubscribe ends s's subscription to pattern, if any.
func (s *Sub) PUnsubscribe(pattern string) int {
	return s.change(s.patterns, s.hub.patterns, pattern, false)
}

func (s *Sub) change(own map[string]struct{}, all map[string]map[*Sub]struct{}, key string, on bool) int {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	switch {
	case s.closed:
	case on:
		add(all, key, s)
		own[key] = struct{}{}
	default:
		if _, ok := own[key]; ok {
			remove(all, key, s)
			delete(own, key)
		}
	}
	return len(s.channels) + len(s.patterns)
}

// Channels returns the channels s subscribes to, sorted.
func (s *Sub) Channels() []string { return s.keys(s.channels) }

// Patterns returns the patterns s subscribes to, sorted.
func (s *Sub) Patterns() []string { return s.keys(s.patterns) }

func (s *Sub) keys(m map[string]struct{}) []string {
	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Count returns the number of s's subscriptions.
func (s *Sub) Count() int {
	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	return len(s.channels) + len(s.patterns)
}

// Close ends every subscription of s; it receives nothing more.
func (s *Sub) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	for c := range s.channels {
		remove(s.hub.channels, c, s)
	}
	for p := range s.patterns {
		remove(s.hub.patterns, p, s)
	}
	clear(s.channels)
	clear(s.patterns)
	s.closed = true
}

// push queues m, or cuts s off when that would take its queue past the
// hub's limit. It never blocks.
func (s *Sub) push(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		return
	}
	if s.bytes+m.size() > s.hub.limit {
		s.cutLocked("too many messages waiting")
		return
	}
	s.queue = append(s.queue, m)
	s.bytes += m.size()
	if len(s.queue) == 1 {
		select {
		case s.ready <- struct{}{}:
		default:
		}
	}
}

// cutLocked cuts s off for why; s.mu is held.
func (s *Sub) cutLocked(why string) {
	if s.cut {
		return
	}
	s.cut, s.why = true, why
	s.queue, s.bytes = nil, 0
	close(s.over)
}

// Why says why s was cut off ("" while it is not).
func (s *Sub) Why() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.why
}

// Ready has a value when messages may be waiting: then Take them.
func (s *Sub) Ready() <-chan struct{} { return s.ready }

// Overflowed is closed once s was cut off: for not reading, or by CutAll.
func (s *Sub) Overflowed() <-chan struct{} { return s.over }

// Take appends the queued messages to dst, in the order they were
// published, and empties the queue.
func (s *Sub) Take(dst []Message) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	dst = append(dst, s.queue...)
	clear(s.queue)
	s.queue, s.bytes = s.queue[:0], 0
	return dst
}
