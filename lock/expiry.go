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
// semaphore (IDs are unique, so the order needs no shared).
type waitRec struct {
	at     int64
	name   string
	id     uint64
	shared bool
}

// waitRecLess orders records by (at, name, id), a total order: the order of
// expiries never depends on how the set was built (a restored table builds
// it anew).
func waitRecLess(a, b waitRec) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.name != b.name {
		return a.name < b.name
	}
	return a.id < b.id
}

// newWaitSet returns an empty ordered set of wait records. The table's lock
// guards it.
func newWaitSet() *btree.BTreeG[waitRec] {
	return btree.NewBTreeGOptions(waitRecLess, btree.Options{NoLocks: true})
}

// expire ends the leases and waits that ran out by now, in the order of
// their deadlines (see expiresBefore). The heap and the set hold exactly the
// leases and the queued requests, so each lease names a lock that is held,
// and each wait record a request in its queue; ending it takes it out.
func (t *Table) expire() {
	for {
		lok := len(t.leases) > 0 && t.leases[0].deadline <= t.now
		w, wok := t.waits.Min()
		wok = wok && w.at <= t.now
		switch {
		case lok && (!wok || t.leases[0].expiresBefore(w)):
			l := t.leases[0]
			t.note(EventExpired, l.name)
			t.stats.Expiries++
			if l.shared {
				t.expireShared(l.name, l.owner)
			} else {
				t.release(l.name, t.byName[l.name])
			}
		case wok && w.shared:
			t.dropSharedWaiter(w.name, w.id)
		case wok:
			h := t.byName[w.name]
			i := slices.IndexFunc(h.waiters, func(q waiter) bool { return q.id == w.id && q.deadline == w.at })
			t.dropWaiter(w.name, h, i)
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

// NextDeadline returns the earliest deadline of a lease or a queued
// request's wait, or, when there is none, the moment every remembered
// request ID will have left the dedup window, in logical ms. A leader stamps
// the log at it, so an idle table forgets the IDs of a past burst and gives
// their memory back.
func (t *Table) NextDeadline() (int64, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	w, wok := t.waits.Min()
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
	deadline := int64(0)
	if ttl > 0 {
		deadline = addSat(t.now, uint64(ttl))
	}
	if deadline == h.deadline {
		return
	}
	h = t.changed(name, h)
	h.deadline = deadline
	switch {
	case deadline == 0:
		heap.Remove(&t.leases, h.lease.index)
		h.lease = nil
	case h.lease == nil:
		h.lease = &lease{deadline: deadline, name: name}
		heap.Push(&t.leases, h.lease)
	default:
		h.lease.deadline = deadline
		heap.Fix(&t.leases, h.lease.index)
	}
}
