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
	expiry expiryHeap
	fence  uint64 // the last token granted

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
	owner    string
	token    uint64
	deadline int64 // logical ms; 0 = no lease
	waiters  []waiter
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
	for len(t.expiry) > 0 && t.expiry[0].deadline <= t.now {
		e := heap.Pop(&t.expiry).(expiryRec)
		h := t.locks[e.name]
		switch {
		case h == nil:
		case e.waiter != 0:
			t.dropWaiter(h, e.waiter)
		case h.token == e.token && h.deadline == e.deadline:
			t.release(e.name, h)
		}
	}
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
			h = &held{owner: c.Owner, token: t.fence}
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
			heap.Push(&t.expiry, expiryRec{deadline: w.deadline, name: c.Name, waiter: w.id})
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
	for len(h.waiters) > 0 {
		w := h.waiters[0]
		h.waiters = h.waiters[1:]
		t.waiting--
		if w.deadline <= t.now {
			t.answer(w.id, 0)
			continue
		}
		t.fence++
		next := &held{owner: w.owner, token: t.fence, waiters: h.waiters}
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
	if ttl <= 0 {
		h.deadline = 0
		return
	}
	h.deadline = addSat(t.now, uint64(ttl))
	heap.Push(&t.expiry, expiryRec{deadline: h.deadline, name: name, token: h.token})
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

// NextDeadline returns the earliest lease deadline, in logical ms. It may
// name a lease that was already released or renewed; applying a tick past it
// is harmless.
func (t *Table) NextDeadline() (int64, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.expiry) == 0 {
		return 0, false
	}
	return t.expiry[0].deadline, true
}

// expiryRec schedules the expiry of one grant. Records go stale when the lock
// is released or its lease changes; stale records are skipped when popped.
type expiryRec struct {
	deadline int64
	name     string
	token    uint64
	waiter   uint64 // non-zero: the end of this queued request's wait
}

// expiryHeap orders records by (deadline, name, token), a total order, so the
// order of expiries never depends on the heap's layout.
type expiryHeap []expiryRec

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	a, b := &h[i], &h[j]
	if a.deadline != b.deadline {
		return a.deadline < b.deadline
	}
	if a.name != b.name {
		return a.name < b.name
	}
	if a.token != b.token {
		return a.token < b.token
	}
	return a.waiter < b.waiter
}
func (h expiryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)   { *h = append(*h, x.(expiryRec)) }
func (h *expiryHeap) Pop() any {
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
