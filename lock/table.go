package lock

import (
	"container/heap"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// DedupWindow is how long, in the table's logical milliseconds, the result of a
// request ID is remembered. A command whose ID was applied within the window
// returns the first result and changes nothing. Nodes must give up on a
// request (and stop re-sending it) well within this window.
const DedupWindow = 60_000

// MaxDedup bounds the number of remembered request IDs; past it the oldest are
// forgotten first, whatever their age.
const MaxDedup = 1 << 21

// Table is the replicated lock map.
//
// Clock: the table keeps a logical time Now in milliseconds. Within one term,
// Now advances by the difference between successive leader stamps. The first
// batch of a new term sets the new leader's stamp as the reference and leaves
// Now where it was: the takeover gap counts as zero, so every lease keeps the
// time it had left at the last entry the old leader committed, counted again
// from the new leader's first entry, whatever the two leaders' clocks say.
// Lease deadlines are logical times.
type Table struct {
	mu sync.RWMutex

	locks  map[string]*held
	leases leaseHeap // the held locks that have a lease
	waits  waitHeap  // the ends of queued requests' waits
	fence  uint64    // the last token granted

	term  uint64 // term of the last applied batch
	stamp int64  // leader stamp of the last applied batch
	now   int64  // logical time in ms

	seen     map[uint64]int64 // request ID -> result
	answered map[uint64]int64 // IDs whose result changed after it was remembered
	order    []seenRec        // IDs in the order they were applied
	head     int              // order[head:] are live
	// shared is set while a SnapshotView may read order's array: the next
	// compaction copies the live records to a new array instead of moving
	// them down in place.
	shared atomic.Bool

	out     []Result // results of queued requests, produced during one Apply
	waiting int      // queued requests on all locks
}

type held struct {
	name     string
	owner    string
	token    uint64
	deadline int64 // logical ms; 0 = no lease
	waiters  []waiter
	index    int // position in Table.leases; -1 when not there
}

// waiter is a queued OpLockWait request.
type waiter struct {
	id       uint64
	owner    string
	ttl      int64
	deadline int64 // logical ms when it gives up
}

// seenRec is one remembered request ID. v is its result when remembered and
// is never written again, so a SnapshotView can read it while the table
// applies; a later result (a queued request answered) is in Table.answered.
type seenRec struct {
	id uint64
	at int64
	v  int64
}

// Info describes a held lock.
type Info struct {
	Owner    string
	Token    uint64
	Deadline int64 // logical ms; 0 = no lease
	Waiters  int   // requests queued for it
}

// Result is the outcome of one command with a non-zero ID.
// For OpLock, Value is the fencing token, or 0 when the lock is held by
// someone else. For OpUnlock and OpRenew it is 1 or 0.
type Result struct {
	ID    uint64
	Value int64
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{locks: make(map[string]*held), seen: make(map[uint64]int64)}
}

// Apply applies one batch taken from a raft entry of term entryTerm and
// returns the results of its commands that carry an ID, appending to dst.
//
// A batch stamped for another term than the entry's was proposed by a node
// that had lost leadership by the time raft appended it; its stamp cannot be
// trusted, so it is ignored whole (its requests are retried by their nodes).
func (t *Table) Apply(entryTerm uint64, b *Batch, dst []Result) []Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b.Term != entryTerm || b.Term < t.term {
		return dst
	}
	t.out = t.out[:0]
	t.advance(b.Term, b.Stamp)
	for i := range b.Cmds {
		c := &b.Cmds[i]
		if c.ID != 0 {
			if v, ok := t.seen[c.ID]; ok {
				dst = append(dst, Result{ID: c.ID, Value: v})
				continue
			}
		}
		v := t.exec(c)
		if c.ID != 0 {
			t.remember(c.ID, v)
			dst = append(dst, Result{ID: c.ID, Value: v})
		}
	}
	return append(dst, t.out...)
}

// advance moves the logical clock to the batch's stamp, expires the leases
// that ran out and forgets request IDs older than the window.
func (t *Table) advance(term uint64, stamp int64) {
	if term == t.term {
		if stamp > t.stamp {
			t.now = addSat(t.now, uint64(stamp)-uint64(t.stamp))
			t.stamp = stamp
		}
	} else {
		t.term, t.stamp = term, stamp
	}
	t.expire()
	t.forget()
}

// expire ends the leases and waits that ran out by now, in the order of
// their deadlines.
func (t *Table) expire() {
	for {
		lease := len(t.leases) > 0 && t.leases[0].deadline <= t.now
		wait := len(t.waits) > 0 && t.waits[0].deadline <= t.now
		switch {
		case lease && (!wait || t.leases[0].expiresBefore(&t.waits[0])):
			h := heap.Pop(&t.leases).(*held)
			t.release(h.name, h)
		case wait:
			w := heap.Pop(&t.waits).(waitRec)
			if h := t.locks[w.name]; h != nil {
				t.dropWaiter(h, w.waiter)
			}
		default:
			return
		}
	}
}

// forget drops the remembered request IDs older than the window, and the
// oldest beyond MaxDedup.
func (t *Table) forget() {
	for t.head < len(t.order) && (t.order[t.head].at < t.now-DedupWindow || len(t.order)-t.head > MaxDedup) {
		id := t.order[t.head].id
		delete(t.seen, id)
		if len(t.answered) > 0 {
			delete(t.answered, id)
		}
		t.head++
	}
	if t.head > 1024 && t.head*2 > len(t.order) {
		if t.shared.Swap(false) {
			t.order = slices.Clone(t.order[t.head:])
		} else {
			t.order = append(t.order[:0], t.order[t.head:]...)
		}
		t.head = 0
	}
}

func (t *Table) remember(id uint64, v int64) {
	t.seen[id] = v
	t.order = append(t.order, seenRec{id: id, at: t.now, v: v})
}

func (t *Table) exec(c *Command) int64 {
	h := t.locks[c.Name]
	switch c.Op {
	case OpLock, OpLockWait:
		if h == nil {
			t.fence++
			h = &held{name: c.Name, owner: c.Owner, token: t.fence, index: -1}
			t.locks[c.Name] = h
			t.setLease(c.Name, h, c.TTL)
			return int64(h.token)
		}
		if h.owner == c.Owner {
			t.setLease(c.Name, h, c.TTL)
			return int64(h.token)
		}
		if c.Op == OpLockWait && c.Wait > 0 {
			w := waiter{id: c.ID, owner: c.Owner, ttl: c.TTL, deadline: addSat(t.now, uint64(c.Wait))}
			h.waiters = append(h.waiters, w)
			t.waiting++
			heap.Push(&t.waits, waitRec{deadline: w.deadline, name: c.Name, waiter: w.id})
			return Queued
		}
		return 0
	case OpUnlock:
		if h != nil && h.owner == c.Owner {
			t.release(c.Name, h)
			return 1
		}
		return 0
	case OpCancel:
		if h != nil {
			t.dropWaiter(h, c.Target)
		}
		return 0
	case OpRenew:
		if h != nil && h.owner == c.Owner && c.TTL > 0 {
			t.setLease(c.Name, h, c.TTL)
			return 1
		}
		return 0
	}
	return 0
}

// release ends h's hold on name and hands the lock to the first waiter
// whose wait has not run out.
func (t *Table) release(name string, h *held) {
	if h.index >= 0 {
		heap.Remove(&t.leases, h.index)
	}
	for len(h.waiters) > 0 {
		w := h.waiters[0]
		h.waiters = h.waiters[1:]
		t.waiting--
		if w.deadline <= t.now {
			t.answer(w.id, 0)
			continue
		}
		t.fence++
		next := &held{name: name, owner: w.owner, token: t.fence, waiters: h.waiters, index: -1}
		t.locks[name] = next
		t.setLease(name, next, w.ttl)
		t.answer(w.id, int64(next.token))
		return
	}
	delete(t.locks, name)
}

// dropWaiter takes the queued request id out of h's queue and answers it 0.
func (t *Table) dropWaiter(h *held, id uint64) {
	for i, w := range h.waiters {
		if w.id == id {
			h.waiters = append(h.waiters[:i:i], h.waiters[i+1:]...)
			t.waiting--
			t.answer(id, 0)
			return
		}
	}
}

// answer gives a queued request its final result.
func (t *Table) answer(id uint64, v int64) {
	if _, ok := t.seen[id]; ok {
		t.seen[id] = v
		if t.answered == nil {
			t.answered = make(map[uint64]int64)
		}
		t.answered[id] = v
	}
	t.out = append(t.out, Result{ID: id, Value: v})
}

func (t *Table) setLease(name string, h *held, ttl int64) {
	switch {
	case ttl <= 0:
		h.deadline = 0
		if h.index >= 0 {
			heap.Remove(&t.leases, h.index)
		}
	case h.index >= 0:
		h.deadline = addSat(t.now, uint64(ttl))
		heap.Fix(&t.leases, h.index)
	default:
		h.deadline = addSat(t.now, uint64(ttl))
		heap.Push(&t.leases, h)
	}
}

// Get returns the holder of name.
func (t *Table) Get(name string) (Info, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	h := t.locks[name]
	if h == nil {
		return Info{}, false
	}
	return Info{Owner: h.owner, Token: h.token, Deadline: h.deadline, Waiters: len(h.waiters)}, true
}

// Waiting returns the number of requests queued for locks.
func (t *Table) Waiting() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.waiting
}

// Len returns the number of held locks.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.locks)
}

// Clock returns the term and stamp of the last applied batch and the logical
// time they correspond to.
func (t *Table) Clock() (term uint64, stamp, now int64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.term, t.stamp, t.now
}

// NextDeadline returns the earliest deadline of a lease or a queued
// request's wait, in logical ms. It may name the wait of a request that was
// already answered; applying a tick past it is harmless.
func (t *Table) NextDeadline() (int64, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	switch {
	case len(t.leases) > 0 && (len(t.waits) == 0 || t.leases[0].deadline <= t.waits[0].deadline):
		return t.leases[0].deadline, true
	case len(t.waits) > 0:
		return t.waits[0].deadline, true
	}
	return 0, false
}

// leaseHeap holds every lock that has a lease, earliest deadline first. A
// lock is in it once: moved when its lease changes, taken out when it is
// released, so it never holds more than the locks. Ties on the deadline go by
// name, a total order: the order of expiries never depends on the heap's
// layout (a restored table builds its heap anew).
type leaseHeap []*held

func (h leaseHeap) Len() int { return len(h) }
func (h leaseHeap) Less(i, j int) bool {
	if h[i].deadline != h[j].deadline {
		return h[i].deadline < h[j].deadline
	}
	return h[i].name < h[j].name
}
func (h leaseHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *leaseHeap) Push(x any) {
	x.(*held).index = len(*h)
	*h = append(*h, x.(*held))
}
func (h *leaseHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	x.index = -1
	return x
}

// expiresBefore reports whether h's lease ends before the wait w: by
// deadline, then name; on the same lock the queued request's wait goes
// first.
func (h *held) expiresBefore(w *waitRec) bool {
	if h.deadline != w.deadline {
		return h.deadline < w.deadline
	}
	return h.name < w.name
}

// waitRec schedules the end of one queued request's wait. Records go stale
// when the request is answered first; stale records are skipped when popped.
type waitRec struct {
	deadline int64
	name     string
	waiter   uint64
}

// waitHeap orders records by (deadline, name, waiter), a total order.
type waitHeap []waitRec

func (h waitHeap) Len() int { return len(h) }
func (h waitHeap) Less(i, j int) bool {
	a, b := &h[i], &h[j]
	if a.deadline != b.deadline {
		return a.deadline < b.deadline
	}
	if a.name != b.name {
		return a.name < b.name
	}
	return a.waiter < b.waiter
}
func (h waitHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *waitHeap) Push(x any)   { *h = append(*h, x.(waitRec)) }
func (h *waitHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// addSat returns a+d, or math.MaxInt64 when that overflows. The logical clock
// and deadlines saturate rather than wrap into the past.
func addSat(a int64, d uint64) int64 {
	if d > uint64(math.MaxInt64-a) {
		return math.MaxInt64
	}
	return a + int64(d)
}
