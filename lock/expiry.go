package lock

import (
	"container/heap"
	"slices"

	"github.com/tidwall/btree"
)

// lease is the lease of a held lock, in Table.leases. A held points to its
// lease, and the copies of a held that views share point to it too; no view
// reads it, so the table changes it in place.
type lease struct {
	deadline int64 // logical ms
	name     string
	index    int    // position in Table.leases
	shared   bool   // a hold of a read/write lock or semaphore (shared.go)
	owner    string // its holder, when shared
}

// leaseHeap holds the lease of every held lock that has one, earliest
// deadline first. A lock's lease is in it once: moved when it changes, taken
// out when the lock is released or loses its lease. Ties on the deadline go
// by name, then a LOCK's before a shared hold's, then owner: a total order,
// so the order of expiries never depends on the heap's layout (a restored
// table builds its heap anew).
type leaseHeap []*lease

func (h leaseHeap) Len() int { return len(h) }
func (h leaseHeap) Less(i, j int) bool {
	if h[i].deadline != h[j].deadline {
		return h[i].deadline < h[j].deadline
	}
	if h[i].name != h[j].name {
		return h[i].name < h[j].name
	}
	if h[i].shared != h[j].shared {
		return !h[i].shared
	}
	return h[i].owner < h[j].owner
}
func (h leaseHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *leaseHeap) Push(x any) {
	x.(*lease).index = len(*h)
	*h = append(*h, x.(*lease))
}
func (h *leaseHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}

// waitRec is the end of the wait of the queued request id on the lock name,
// at logical time at; shared when it waits for a read/write lock or a
// semaphore.
type waitRec struct {
	at     int64
	name   string
	id     uint64
	shared bool
}

// waitRecLess orders records by (at, name, id, shared), a total order: the
// order of expiries never depends on how the set was built (a restored
// table builds it anew). shared is part of it: a LOCK key and a read/write
// lock of the same name are two queues, and a request ID a node sends again
// once the table forgot it may meet itself in the other one with the same
// deadline; in one order they would be one record, and the wait's end
// would look for the request in the wrong queue.
func waitRecLess(a, b waitRec) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.name != b.name {
		return a.name < b.name
	}
	if a.id != b.id {
		return a.id < b.id
	}
	return !a.shared && b.shared
}

// newWaitSet returns an empty ordered set of wait records. The table's lock
// guards it.
func newWaitSet() *btree.BTreeG[waitRec] {
	return btree.NewBTreeGOptions(waitRecLess, btree.Options{NoLocks: true})
}

// expire ends the leases, waits and lock-delays that ran out by now, in
// the order of their deadlines, then names (see expiresBefore; on the same
// name a wait ends before a lock-delay, and a name in a lock-delay has no
// lease). The heap and the sets hold exactly the leases, the queued
// requests and the lock-delays, so each lease names a lock that is held,
// each wait record a request in its queue (a multi-lock's under its first
// name), and each delay a blocked name; ending it takes it out.
func (t *Table) expire() {
	for {
		lok := len(t.leases) > 0 && t.leases[0].deadline <= t.now
		w, wok := t.waits.Min()
		wok = wok && w.at <= t.now
		d, dok := t.delays.Min()
		dok = dok && d.at <= t.now
		switch {
		case lok && (!wok || t.leases[0].expiresBefore(w)) && (!dok || t.leases[0].expiresBefore(waitRec{at: d.at, name: d.name})):
			if l := t.leases[0]; l.shared {
				t.note(EventExpired, l.name)
				t.stats.Expiries++
				t.expireShared(l.name, l.owner)
			} else {
				t.expireLease(l.name)
			}
		case wok && (!dok || w.at < d.at || w.at == d.at && w.name <= d.name):
			if w.shared {
				t.dropSharedWaiter(w.name, w.id)
				break
			}
			if endWaitsTogether && t.dropExpiredRun(w) {
				break
			}
			q := t.queueOf(w.name)
			i := slices.IndexFunc(q, func(q waiter) bool { return q.id == w.id && q.deadline == w.at })
			t.drop(w.name, q[i])
		case dok:
			t.endDelay(d)
		default:
			return
		}
	}
}

// expiresBefore reports whether the lease l ends before the wait w: by
// deadline, then name; on the same lock the queued request's wait goes
// first.
func (l *lease) expiresBefore(w waitRec) bool {
	if l.deadline != w.at {
		return l.deadline < w.at
	}
	return l.name < w.name
}

// NextDeadline returns the earliest deadline of a lease, a queued
// request's wait or a lock-delay, or, when there is none, the moment every
// remembered request ID will have left the dedup window, in logical ms. A leader stamps
// the log at it, so an idle table forgets the IDs of a past burst and gives
// their memory back.
func (t *Table) NextDeadline() (int64, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	w, wok := t.waits.Min()
	if d, ok := t.delays.Min(); ok && (!wok || d.at < w.at) {
		w, wok = waitRec{at: d.at}, true
	}
	switch {
	case len(t.leases) > 0 && (!wok || t.leases[0].deadline <= w.at):
		return t.leases[0].deadline, true
	case wok:
		return w.at, true
	case t.head < len(t.order):
		return addSat(t.order[len(t.order)-1].at, DedupWindow+1), true
	}
	return 0, false
}

// setLease gives the held lock name, h, a lease of ttl ms from now, or none
// when ttl is 0, and moves its lease in t.leases.
func (t *Table) setLease(name string, h *held, ttl int64) {
	deadline := t.leaseEnd(ttl)
	if deadline == h.deadline {
		return
	}
	h = t.changed(name, h)
	h.deadline = deadline
	t.placeLease(&h.lease, deadline, lease{name: name})
}

// leaseEnd is the deadline of a lease of ttl ms from now, 0 (none) when
// ttl is 0.
func (t *Table) leaseEnd(ttl int64) int64 {
	if ttl > 0 {
		return addSat(t.now, uint64(ttl))
	}
	return 0
}

// placeLease makes *l, a hold's lease, end at deadline in t.leases: taken
// out when deadline is 0, fresh (with the deadline) pushed when there was
// none, moved otherwise.
func (t *Table) placeLease(l **lease, deadline int64, fresh lease) {
	switch {
	case deadline == 0:
		heap.Remove(&t.leases, (*l).index)
		*l = nil
	case *l == nil:
		fresh.deadline = deadline
		*l = &fresh
		heap.Push(&t.leases, *l)
	default:
		(*l).deadline = deadline
		heap.Fix(&t.leases, (*l).index)
	}
}

// endWaitsTogether is false only in a test that compares dropExpiredRun
// with drop one by one.
var endWaitsTogether = true

// dropExpiredRun ends together the waits of the requests queued for the
// held name w.name whose waits end at w.at, starting with w's: those whose
// records follow w's in the wait set with nothing between them. It takes
// the LOCK ... WAIT requests out of the queue in one pass at the end, where
// taking them out one by one (as drop does) scanned and copied the queue
// once each: 10,000 waiters of one name timing out together took 0.4 s of
// every node's apply. The outcome is drop's, one by one, in the records'
// order: each is answered 0 and counted as a wait timeout; a multi-lock
// among them is dropped by drop itself, at its turn (it leaves every queue
// it is in, and the names it leaves are served; this one, held, stays
// held, and no request of its queue is granted meanwhile); the queue keeps
// the others in their order. settle, which drop calls after each, does
// nothing to a held name. It reports false, changing nothing, when the run
// has fewer than two records or one without its request in the queue, so
// that drop handles them.
func (t *Table) dropExpiredRun(w waitRec) bool {
	h, ok := t.byName[w.name]
	if !ok {
		return false
	}
	var run []waitRec
	t.waits.Ascend(w, func(r waitRec) bool {
		if r.at != w.at || r.name != w.name || r.shared {
			return false
		}
		run = append(run, r)
		return true
	})
	if len(run) < 2 {
		return false
	}
	ending := make(map[uint64]bool, len(run))
	for _, r := range run {
		ending[r.id] = true
	}
	queued := make(map[uint64]waiter, len(run)) // the request of each record
	for _, q := range h.waiters {
		if _, seen := queued[q.id]; ending[q.id] && q.deadline == w.at && !seen {
			queued[q.id] = q
		}
	}
	if len(queued) != len(run) {
		return false // a record without its request: leave it to drop
	}
	gone := make(map[uint64]bool, len(run))
	for _, r := range run {
		if _, still := t.waits.Get(r); !still {
			continue // a multi-lock granted while another was dropped
		}
		q := queued[r.id]
		if q.multi != nil {
			t.drop(w.name, q)
			continue
		}
		gone[r.id] = true
		t.waiting--
		t.waits.Delete(r)
		t.stats.WaitTimeouts++
		t.answer(r.id, 0)
	}
	if h, ok = t.byName[w.name]; !ok {
		panic("lock: a held name was freed while its waits ended")
	}
	h = t.own(w.name, h) // drop may have put a copy in its place
	keep := make([]waiter, 0, len(h.waiters))
	for _, q := range h.waiters {
		if !gone[q.id] || q.deadline != w.at {
			keep = append(keep, q)
		}
	}
	h.waiters = nil
	if len(keep) > 0 {
		h.waiters = keep // a new array: a snapshot may still read the old one
	}
	return true
}
