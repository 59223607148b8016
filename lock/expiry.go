package lock

import (
	"slices"

	"github.com/tidwall/btree"
)

// timer is the end of a lease (id 0) or of a queued request's wait (id is
// the request's ID) on the lock name, at logical time at.
type timer struct {
	at   int64
	name string
	id   uint64
}

// timerLess orders timers by (at, name, id), a total order: the order of
// expiries never depends on how the set was built (a restored table builds
// its sets anew).
func timerLess(a, b timer) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.name != b.name {
		return a.name < b.name
	}
	return a.id < b.id
}

// newTimers returns an empty ordered set of timers. The table's lock
// guards it.
func newTimers() *btree.BTreeG[timer] {
	return btree.NewBTreeGOptions(timerLess, btree.Options{NoLocks: true})
}

// expire ends the leases and waits that ran out by now, in the order of
// their deadlines (see expiresBefore). The sets hold exactly the leases and
// the queued requests, so each timer names a lock that is held, and a wait
// timer a request in its queue; ending it takes the timer out.
func (t *Table) expire() {
	for {
		l, lok := t.leases.Min()
		w, wok := t.waits.Min()
		lok = lok && l.at <= t.now
		wok = wok && w.at <= t.now
		switch {
		case lok && (!wok || expiresBefore(l, w)):
			h := t.byName[l.name]
			t.release(l.name, h)
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
func expiresBefore(l, w timer) bool {
	if l.at != w.at {
		return l.at < w.at
	}
	return l.name < w.name
}

// NextDeadline returns the earliest deadline of a lease or a queued
// request's wait, in logical ms.
func (t *Table) NextDeadline() (int64, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	l, lok := t.leases.Min()
	w, wok := t.waits.Min()
	switch {
	case lok && (!wok || l.at <= w.at):
		return l.at, true
	case wok:
		return w.at, true
	}
	return 0, false
}
