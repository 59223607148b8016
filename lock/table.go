package lock

import (
	"container/heap"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/lockd/lockd/acl"
	"github.com/lockd/lockd/resp"
	"github.com/tidwall/btree"
)

// Table is the replicated lock map.
//
// Concurrency: every method may be called from any goroutine. Apply, Restore
// and View (so Snapshot, for the moment of its View) take the table's write
// lock; Get, Len, Waiting, Clock, NextDeadline, Stats and UsersChanged its
// read lock; Users none.
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

	// The held locks are in two places. locks is ordered by treeKey (a hash
	// of the name, then the name: the order SCAN's cursor follows) and
	// copied on write: View shares it with a SnapshotView in O(1), and the
	// table's later writes copy the nodes they change instead of changing
	// what the view reads. byName holds the same pointers for lookups, which
	// in the tree would cost a descent of string comparisons.
	locks  btree.Map[string, *held]
	byName map[string]*held
	mod    uint64                 // the last version given to a changed key (see held.version)
	wall   int64                  // the Wall of the batch being applied
	gen    uint64                 // the number of views taken (see held)
	leases leaseHeap              // the lease of each held lock that has one
	waits  *btree.BTreeG[waitRec] // one (deadline, name, id) per queued request
	fence  uint64                 // the last token granted
	// blocked holds the names nobody holds that no one may take yet, in a
	// lock-delay or reserved for a multi-lock (see lockdelay.go); delays
	// the end of each lock-delay.
	blocked      map[string]*blocked
	delays       *btree.BTreeG[delayRec]
	multiWaiting int // queued multi-locks

	sharedLocks map[string]*sharedLock // read/write locks and semaphores (shared.go)

	term  uint64 // term of the last applied batch
	stamp int64  // leader stamp of the last applied batch
	now   int64  // logical time in ms

	seen     map[uint64]remembered // request ID -> result and fingerprint
	seenPeak int                   // the most IDs seen has held since it was made
	answered map[uint64]int64      // IDs whose result changed after it was remembered
	order    []seenRec             // IDs in the order they were applied
	head     int                   // order[head:] are live
	// shared is set while a SnapshotView may read order's array: the next
	// compaction copies the live records to a new array instead of moving
	// them down in place.
	shared bool
	// multiReplies is the reply of each multi-lock in answered that was
	// granted (see multilock.go).
	multiReplies map[uint64]*resp.Value

	out     []Result // results of queued requests, produced during one Apply
	scratch []byte   // the encoding of the last command fingerprinted
	waiting int      // entries of all queues (a multi-lock counts once per name)

	scripts scriptRegistry
	loaded  map[string]struct{} // a scratch table's keys loaded so far (see Load)

	notify bool    // record events (see events.go)
	events []Event // recorded since the last TakeEvents
	stats  Stats   // what Apply decided, for metrics (stats.go)

	// users is the ACL users (see users.go), read without the lock;
	// usersChanged is closed and replaced when they change.
	users        atomic.Pointer[acl.Users]
	usersChanged chan struct{}
}

// held is a held lock, in Table.locks and Table.byName under its name.
//
// A SnapshotView may share a held: one made before the last View (gen below
// the table's) is never changed again; the table changes a copy and puts it
// in its place (see own). Its waiters array may be shared with the copies
// too, so no element of it is ever written twice: a request joins the queue
// by an append past the queue's end (which no copy reads), the head of the
// queue leaves by reslicing, and taking a request out of the middle or the
// end makes a new slice, or one whose capacity ends at its length.
type held struct {
	key      string // its treeKey
	owner    string
	token    uint64
	version  uint64 // Table.mod when it last changed: a key-space write, an expiry or a grant
	deadline int64  // logical ms; 0 = no lease
	since    int64  // logical ms when owner got it; unknownSince after Restore
	lease    *lease // its entry in Table.leases; nil when deadline is 0
	delay    int64  // the lock-delay, in ms, its lease leaves when it runs out
	waiters  []waiter
	gen      uint64 // Table.gen when it was made
}

// waiter is a queued OpLockWait request.
type waiter struct {
	id       uint64
	owner    string
	ttl      int64
	deadline int64 // logical ms when it gives up
	since    int64 // logical ms when it was queued; unknownSince after Restore

	delay int64     // the lock-delay of the hold it asks for
	multi *multiReq // the multi-lock it is part of; nil for a LOCK ... WAIT
}

// Info describes a held lock.
type Info struct {
	Owner    string
	Token    uint64
	Deadline int64  // logical ms; 0 = no lease
	Waiters  int    // requests queued for it
	Version  uint64 // changes with every change to the key (see Check)
}

// Result is the outcome of one command with a non-zero ID.
// For OpLock, Value is the fencing token, or 0 when the lock is held by
// someone else. For OpUnlock and OpRenew it is 1 or 0. An OpLockWait may
// also get Queued, and any command Conflict. A key-space command's result is
// Reply (Value 0), or Retry for an OpEffects whose checks failed. The shared
// operations (shared.go) answer as OpLock/OpLockWait, OpUnlock and OpRenew
// do, or with an error Reply (Value 0) that refuses them. An
// OpMultiLock's grant is Reply, the array of its tokens, with Value the
// number of names; its refusal Value 0 and no Reply; it may be Queued.
type Result struct {
	ID    uint64
	Value int64
	Reply *resp.Value
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{byName: make(map[string]*held), waits: newWaitSet(), blocked: make(map[string]*blocked), delays: newDelaySet(), seen: make(map[uint64]remembered), scripts: newScriptRegistry(),
		usersChanged: make(chan struct{})}
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
	t.wall = b.Wall
	oneByOne := 0 // the index up to which cancels go one by one (cancelRun declined them)
	for i := 0; i < len(b.Cmds); i++ {
		c := &b.Cmds[i]
		if c.Op == OpCancel && cancelsTogether && i >= oneByOne {
			var together bool
			var n int
			if dst, together, n = t.cancelRun(b.Cmds[i:], dst); together {
				i += n - 1
				continue
			}
			oneByOne = i + n
		}
		if c.ID == 0 {
			t.run(c)
			continue
		}
		fp := t.fingerprint(c)
		r, ok := t.recall(c.ID, fp)
		if !ok {
			r = t.run(c)
			if r.Value != Retry {
				t.remember(c.ID, fp, r)
			}
		}
		r.ID = c.ID
		dst = append(dst, r)
	}
	return append(dst, t.out...)
}

// advance moves the logical clock to the batch's stamp, expires the leases
// and waits that ran out and forgets request IDs older than the window.
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

// run executes one command and returns its result (without ID).
func (t *Table) run(c *Command) Result {
	if c.Op == OpMultiLock {
		return t.mlock(c)
	}
	if c.Op.keySpace() {
		v, retry := t.execKey(c)
		if retry {
			return Result{Value: Retry}
		}
		return Result{Reply: &v}
	}
	if c.Op.sharedOp() {
		return t.execShared(c)
	}
	return Result{Value: t.exec(c)}
}

func (t *Table) exec(c *Command) int64 {
	h, ok := t.byName[c.Name]
	switch c.Op {
	case OpLock, OpLockWait:
		if _, blocked := t.blocked[c.Name]; !ok && !blocked {
			t.grant(c.Name, c.Owner, c.TTL).delay = c.Delay
			t.note(EventGrant, c.Name)
			return int64(t.fence)
		}
		if ok && h.owner == c.Owner {
			t.regrant(c.Name, h, c.TTL, c.Delay)
			return int64(h.token)
		}
		if c.Op == OpLockWait && c.Wait > 0 {
			t.enqueue(c.Name, waiter{id: c.ID, owner: c.Owner, ttl: c.TTL, deadline: addSat(t.now, uint64(c.Wait)), since: t.now, delay: c.Delay})
			return Queued
		}
		t.stats.Refusals++
		return 0
	case OpUnlock:
		if ok && h.owner == c.Owner {
			t.note(EventDel, c.Name)
			t.release(c.Name, h)
			return 1
		}
		return 0
	case OpCancel:
		if q := t.queueOf(c.Name); q != nil {
			if i := slices.IndexFunc(q, func(w waiter) bool { return w.id == c.Target }); i >= 0 {
				t.drop(c.Name, q[i])
			}
		}
		t.dropSharedWaiter(c.Name, c.Target)
		return 0
	case OpMultiUnlock:
		return t.munlock(c)
	case OpRenew:
		if ok && h.owner == c.Owner && c.TTL > 0 {
			t.setLease(c.Name, h, c.TTL)
			t.note(EventExpire, c.Name)
			return 1
		}
		return 0
	}
	return 0
}

// grant gives the free lock name to owner with a new token and a lease of
// ttl ms (none when 0), and returns its held.
func (t *Table) grant(name, owner string, ttl int64) *held {
	t.fence++
	t.mod++
	h := &held{key: treeKey(name), owner: owner, token: t.fence, version: t.mod, gen: t.gen, since: t.now}
	t.stats.Grants++
	t.put(name, h)
	t.setLease(name, h, ttl)
	return h
}

// put stores h as the held lock name, in the tree and the map.
func (t *Table) put(name string, h *held) {
	t.locks.Set(h.key, h)
	t.byName[name] = h
}

// own returns the held lock name, h, ready to be changed in place: h itself
// when no view shares it, else a copy of it that takes its place.
func (t *Table) own(name string, h *held) *held {
	if h.gen == t.gen {
		return h
	}
	c := *h
	c.gen = t.gen
	t.put(name, &c)
	return &c
}

// changed gives the held lock name, h, a new version and returns it ready to
// be changed in place (see own).
func (t *Table) changed(name string, h *held) *held {
	h = t.own(name, h)
	t.mod++
	h.version = t.mod
	return h
}

// regrant gives the lock name, held as h by the owner asking again, the
// lease of ttl ms (none when 0) and the lock-delay delay: its token stays.
func (t *Table) regrant(name string, h *held, ttl, delay int64) {
	if ttl != 0 || h.deadline != 0 {
		t.note(EventExpire, name)
	}
	if h.delay != delay {
		h = t.own(name, h)
		h.delay = delay
	}
	t.setLease(name, h, ttl)
}

// enqueue puts w at the end of the queue of name. A request already queued
// there with the same ID and deadline (the same request, delivered again
// after its ID was forgotten) is not queued twice.
func (t *Table) enqueue(name string, w waiter) {
	if _, again := t.waits.Set(waitRec{at: w.deadline, name: name, id: w.id}); again {
		return
	}
	t.push(name, w)
}

// release ends h's hold on name and hands the lock to the first waiter
// whose wait has not run out (see settle; a LOCK ... WAIT at the head whose
// wait has not run out takes it at once).
func (t *Table) release(name string, h *held) {
	if q := h.waiters; len(q) > 0 && q[0].multi == nil && q[0].deadline > t.now {
		if h.lease != nil {
			heap.Remove(&t.leases, h.lease.index)
		}
		t.stats.Hold.observeSince(h.since, t.now)
		t.handTo(name, h.key, q[0], q[1:])
		return
	}
	if t.free(name, h) {
		t.settle(name)
	}
}

// free ends h's hold on name, leaving its queue, if any, on the name
// blocked; it reports whether there was a queue.
func (t *Table) free(name string, h *held) bool {
	if h.lease != nil {
		heap.Remove(&t.leases, h.lease.index)
	}
	t.stats.Hold.observeSince(h.since, t.now)
	t.locks.Delete(h.key)
	delete(t.byName, name)
	if len(h.waiters) == 0 {
		return false
	}
	t.block(name).waiters = h.waiters
	return true
}

// answer gives a queued request its final result (a multi-lock's grant:
// see answerMulti).
func (t *Table) answer(id uint64, v int64) {
	if r, ok := t.seen[id]; ok {
		r.v = v
		t.seen[id] = r
		if t.answered == nil {
			t.answered = make(map[uint64]int64)
		}
		t.answered[id] = v
	}
	t.out = append(t.out, Result{ID: id, Value: v})
}

// Get returns the holder of name.
func (t *Table) Get(name string) (Info, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	h, ok := t.byName[name]
	if !ok {
		return Info{}, false
	}
	return Info{Owner: h.owner, Token: h.token, Deadline: h.deadline, Waiters: len(h.waiters), Version: h.version}, true
}

// Waiting returns the number of requests queued for locks, a multi-lock
// once per name.
func (t *Table) Waiting() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.waiting
}

// Len returns the number of held locks.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.locks.Len()
}

// Clock returns the term and stamp of the last applied batch and the logical
// time they correspond to.
func (t *Table) Clock() (term uint64, stamp, now int64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.term, t.stamp, t.now
}

// addSat returns a+d, or math.MaxInt64 when that overflows. The logical clock
// and deadlines saturate rather than wrap into the past.
func addSat(a int64, d uint64) int64 {
	if d > uint64(math.MaxInt64-a) {
		return math.MaxInt64
	}
	return a + int64(d)
}
