package lock

import (
	"slices"

	"github.com/lockd/lockd/resp"
	"github.com/tidwall/btree"
)

// Blocked names. A name nobody holds is blocked while no one may take it:
// in its lock-delay (a hold taken with a Delay whose lease ran out: the
// name stays unavailable to every owner until the delay ends), or reserved
// for the multi-lock at the head of its queue (see multilock.go). A blocked
// name is not a key: GET, EXISTS, LOCKINFO, SCAN and DBSIZE do not see it.
// LOCK and MLOCK without WAIT get 0 (null) on it, with WAIT they queue; SET
// NX gets null and any other SET that would create it an error. Its queue
// is served, in order, when the delay ends (settle).

// MaxDelay bounds a lock-delay, in ms (DELAY and --lock-delay): an hour.
const MaxDelay = 3_600_000

// blocked is a blocked name's state, in Table.blocked. A SnapshotView
// holds copies of these structs, made by View; their waiters arrays are
// shared, so they follow held's rule: no element is written twice.
type blocked struct {
	until   int64 // the end of its lock-delay, logical ms; 0 when not in one
	version uint64
	waiters []waiter
}

// delayRec is the end of the lock-delay of name at logical time at.
type delayRec struct {
	at   int64
	name string
}

// newDelaySet returns an empty set of delay ends, ordered by (at, name).
func newDelaySet() *btree.BTreeG[delayRec] {
	return btree.NewBTreeGOptions(func(a, b delayRec) bool {
		if a.at != b.at {
			return a.at < b.at
		}
		return a.name < b.name
	}, btree.Options{NoLocks: true})
}

// block returns the blocked state of name, which nobody holds, making it
// (with a new version) when there is none.
func (t *Table) block(name string) *blocked {
	b, ok := t.blocked[name]
	if !ok {
		t.mod++
		b = &blocked{version: t.mod}
		t.blocked[name] = b
	}
	return b
}

// expireLease ends the hold on name whose lease ran out. With a lock-delay
// the name stays blocked until the lease's deadline plus the delay; its
// queue waits for that.
func (t *Table) expireLease(name string) {
	h := t.byName[name]
	t.note(EventExpired, name)
	t.stats.Expiries++
	if h.delay <= 0 {
		t.release(name, h)
		return
	}
	t.free(name, h)
	b := t.block(name)
	b.until = addSat(h.deadline, uint64(h.delay))
	t.delays.Set(delayRec{at: b.until, name: name})
}

// endDelay ends the lock-delay d: the head of the name's queue is served.
func (t *Table) endDelay(d delayRec) {
	t.delays.Delete(d)
	t.blocked[d.name].until = 0
	t.settle(d.name)
}

// queueOf returns the queue of name, held or blocked; nil when it has none.
// The caller must not write its elements.
func (t *Table) queueOf(name string) []waiter {
	if h, ok := t.byName[name]; ok {
		return h.waiters
	}
	if b, ok := t.blocked[name]; ok {
		return b.waiters
	}
	return nil
}

// push appends w to the queue of name: a held lock's, or (blocking it) a
// free name's.
func (t *Table) push(name string, w waiter) {
	if h, ok := t.byName[name]; ok {
		h = t.own(name, h)
		h.waiters = append(h.waiters, w)
	} else {
		b := t.block(name)
		b.waiters = append(b.waiters, w)
	}
	t.waiting++
}

// unlink takes the i-th request out of the queue of name, without
// answering it. The head leaves by reslicing; any other makes a new slice.
func (t *Table) unlink(name string, i int) {
	cut := func(q []waiter) []waiter {
		if i == 0 {
			q = q[1:]
		} else {
			q = append(q[:i:i], q[i+1:]...)
		}
		if len(q) == 0 {
			return nil
		}
		return q
	}
	if h, ok := t.byName[name]; ok {
		h = t.own(name, h)
		h.waiters = cut(h.waiters)
	} else {
		b := t.blocked[name]
		b.waiters = cut(b.waiters)
	}
	t.waiting--
}

// drop takes the queued request w, found in the queue of name, out of
// every queue it is in and answers it 0; the names it leaves are served
// (see settle).
func (t *Table) drop(name string, w waiter) {
	if w.multi != nil {
		t.dropMulti(w.multi)
		return
	}
	t.dropOne(name, w)
	t.settle(name)
}

// dropOne takes the LOCK ... WAIT w out of the queue of name and answers it 0.
// It finds w by its ID and deadline: a request sent again after the table
// forgot its ID may be queued twice, and each copy leaves at its own end.
func (t *Table) dropOne(name string, w waiter) {
	t.unlink(name, slices.IndexFunc(t.queueOf(name), func(q waiter) bool { return q.id == w.id && q.deadline == w.deadline }))
	t.waits.Delete(waitRec{at: w.deadline, name: name, id: w.id})
	t.stats.WaitTimeouts++
	t.answer(w.id, 0)
}

// settle serves the queue of name when nobody holds it and it is not in a
// lock-delay: requests whose wait has run out are answered 0; a LOCK ...
// WAIT at the head is granted the lock; a multi-lock at the head is
// granted all its names if it can take them all, else the name stays
// reserved for it. A name left with an empty queue is free again. It does
// nothing to a held name.
func (t *Table) settle(name string) {
	for {
		b, ok := t.blocked[name]
		if !ok || b.until != 0 {
			return
		}
		if len(b.waiters) == 0 {
			delete(t.blocked, name)
			return
		}
		w := b.waiters[0]
		switch {
		case w.deadline <= t.now && w.multi != nil:
			t.dropMulti(w.multi)
		case w.deadline <= t.now:
			t.dropOne(name, w)
		case w.multi != nil:
			if t.ready(w.multi) {
				t.takeAll(w.multi.names, w.multi.owner, w.multi.ttl, w.multi.delay, w.multi)
			}
			return
		default:
			delete(t.blocked, name)
			t.handTo(name, treeKey(name), w, b.waiters[1:])
			return
		}
	}
}

// handTo grants name, whose tree key is key and which nobody holds, to the
// LOCK ... WAIT w at the head of its queue, and leaves rest queued.
func (t *Table) handTo(name, key string, w waiter, rest []waiter) {
	t.waits.Delete(waitRec{at: w.deadline, name: name, id: w.id})
	t.waiting--
	t.fence++
	t.mod++
	h := &held{key: key, owner: w.owner, token: t.fence, version: t.mod, gen: t.gen, since: t.now, delay: w.delay}
	if len(rest) > 0 {
		h.waiters = rest
	}
	t.stats.Grants++
	t.stats.Wait.observeSince(w.since, t.now)
	t.put(name, h)
	t.setLease(name, h, w.ttl)
	t.answer(w.id, int64(h.token))
	t.note(EventGrant, name)
	t.wake(name)
}

// blockedError is the reply to a SET that would create the blocked name.
func (t *Table) blockedError(name string) resp.Value {
	if b := t.blocked[name]; b.until != 0 {
		return resp.Errorf("LOCKDELAY %s is in its lock-delay for %d ms", name, max(b.until-t.now, 0))
	}
	return resp.Errorf("LOCKRESERVED %s is reserved for a queued MLOCK", name)
}
