package replication

import "sync"

// mailbox is the queue between two goroutines of a node: put never blocks
// (the raft loop must never wait for a storage goroutine), and the one
// reader, woken through ready, takes everything queued at once, so a busy
// sender costs the reader one wake-up per batch rather than one per item.
// The loop's proposals, the appender's work and the applier's work each
// have one. A mailbox with a limit refuses items beyond it; the others are
// bounded by what feeds them (raft's limits on in-flight and committed
// entries).
//
// Concurrency: any goroutine may put; one goroutine calls take. ready may be
// read by anyone, but only the reader should.
type mailbox[T any] struct {
	limit int // 0: none

	mu    sync.Mutex
	items []T
	spare []T // the reader's last batch, for reuse
	wake  chan struct{}
}

func newMailbox[T any](limit int) *mailbox[T] {
	return &mailbox[T]{limit: limit, wake: make(chan struct{}, 1)}
}

// put queues v and wakes the reader if the mailbox was empty. It reports
// false, and drops v, when the mailbox holds its limit.
func (m *mailbox[T]) put(v T) bool {
	m.mu.Lock()
	if m.limit > 0 && len(m.items) >= m.limit {
		m.mu.Unlock()
		return false
	}
	m.items = append(m.items, v)
	first := len(m.items) == 1
	m.mu.Unlock()
	if first {
		signal(m.wake)
	}
	return true
}

// putAll queues vs as put queues each, in order, under one lock and with
// at most one wake-up; what passes the limit is dropped. It reports how
// many it queued.
func (m *mailbox[T]) putAll(vs []T) int {
	m.mu.Lock()
	k := len(vs)
	if m.limit > 0 {
		k = max(0, min(k, m.limit-len(m.items)))
	}
	m.items = append(m.items, vs[:k]...)
	first := k > 0 && len(m.items) == k
	m.mu.Unlock()
	if first {
		signal(m.wake)
	}
	return k
}

// ready is readable when items may be waiting; after reading it the reader
// calls take. A wake-up may find the mailbox empty (items taken since).
func (m *mailbox[T]) ready() <-chan struct{} { return m.wake }

// take returns everything queued, in order, and empties the mailbox; a
// pending wake-up is consumed with it (a put after it wakes the reader
// again). The slice is the reader's until its next take.
func (m *mailbox[T]) take() []T {
	select {
	case <-m.wake:
	default:
	}
	m.mu.Lock()
	items := m.items
	clear(m.spare)
	m.items, m.spare = m.spare[:0], items
	m.mu.Unlock()
	return items
}

// signal wakes the reader of c, a channel of capacity 1, unless a wake-up
// is already pending.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
