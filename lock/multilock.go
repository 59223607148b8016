package lock

import (
	"slices"

	"github.com/lockd/lockd/resp"
)

// Multi-locks. MLOCK (OpMultiLock) takes all its names (Name and X.Keys)
// for Owner in one step, or none: a name is free for it when nobody holds
// or blocks it, or when Owner holds it already (a re-grant: token kept,
// lease and lock-delay reset). Its result is the array of the tokens, in
// the order of the names; 0 (null) when it cannot take them all.
//
// With a Wait it instead joins the queue of every one of its names at once
// (result Queued), with one wait record, keyed by its first name. A free
// name it joins, or one released while it heads its queue, stays reserved
// for it (blocked: see lockdelay.go) until it can take every name: each is
// then free, held by its owner, or reserved for it with no lock-delay. As
// every queue is in log order, the oldest waiting request heads each of
// its queues, so two multi-locks never wait for each other. When its wait
// runs out or it is cancelled it leaves every queue, and the names it
// reserved are served to the requests behind it.

// MaxMultiNames bounds the names of one MLOCK or MUNLOCK.
const MaxMultiNames = 64

// multiReq is a queued multi-lock, shared (never changed) by its waiter in
// each of its names' queues.
type multiReq struct {
	id       uint64
	owner    string
	ttl      int64
	delay    int64
	deadline int64
	since    int64
	names    []string
}

// rec is its wait record.
func (r *multiReq) rec() waitRec { return waitRec{at: r.deadline, name: r.names[0], id: r.id} }

// validNames reports whether names can be a multi-lock's: 1 to
// MaxMultiNames non-empty names, none repeated.
func validNames(names []string) bool {
	if len(names) == 0 || len(names) > MaxMultiNames {
		return false
	}
	for i, n := range names {
		if n == "" || slices.Contains(names[:i], n) {
			return false
		}
	}
	return true
}

// mlock runs an OpMultiLock.
func (t *Table) mlock(c *Command) Result {
	names := c.names()
	if !validNames(names) || c.Owner == "" || c.Delay > MaxDelay {
		v := resp.ErrorValue("ERR invalid MLOCK")
		return Result{Reply: &v}
	}
	free := true
	for _, n := range names {
		if h, ok := t.byName[n]; ok && h.owner != c.Owner || !ok && t.blocked[n] != nil {
			free = false
			break
		}
	}
	if free {
		v := t.takeAll(names, c.Owner, c.TTL, c.Delay, nil)
		return Result{Value: int64(len(names)), Reply: &v}
	}
	if c.Wait <= 0 {
		t.stats.Refusals++
		return Result{}
	}
	r := &multiReq{id: c.ID, owner: c.Owner, ttl: c.TTL, delay: c.Delay, deadline: addSat(t.now, uint64(c.Wait)), since: t.now, names: names}
	if _, again := t.waits.Set(r.rec()); again {
		return Result{Value: Queued}
	}
	for _, n := range names {
		t.push(n, waiter{id: r.id, owner: r.owner, ttl: r.ttl, deadline: r.deadline, since: r.since, delay: r.delay, multi: r})
	}
	t.multiWaiting++
	return Result{Value: Queued}
}

// ready reports whether the queued multi-lock r can take all its names:
// each is held by its owner or reserved for it (heading the queue of a
// blocked name not in a lock-delay).
func (t *Table) ready(r *multiReq) bool {
	for _, n := range r.names {
		if h, ok := t.byName[n]; ok {
			if h.owner != r.owner {
				return false
			}
			continue
		}
		b := t.blocked[n]
		if b == nil || b.until != 0 || len(b.waiters) == 0 || b.waiters[0].multi != r {
			return false
		}
	}
	return true
}

// takeAll grants names to owner, with a lease of ttl ms and the lock-delay
// delay, and returns the array of their tokens. Each is free, held by
// owner, or (when queued, r, is set) reserved for r; r leaves its queues
// and is answered the array.
func (t *Table) takeAll(names []string, owner string, ttl, delay int64, r *multiReq) resp.Value {
	tokens := make([]resp.Value, len(names))
	if r != nil {
		t.multiWaiting--
	}
	for i, n := range names {
		if r != nil {
			t.unlink(n, slices.IndexFunc(t.queueOf(n), func(w waiter) bool { return w.multi == r }))
		}
		if h, ok := t.byName[n]; ok {
			t.regrant(n, h, ttl, delay)
			tokens[i] = resp.IntValue(int64(h.token))
			continue
		}
		var rest []waiter
		if b, ok := t.blocked[n]; ok {
			rest = b.waiters
			delete(t.blocked, n)
		}
		h := t.grant(n, owner, ttl)
		h.delay, h.waiters = delay, rest
		t.note(EventGrant, n)
		tokens[i] = resp.IntValue(int64(h.token))
	}
	v := resp.ArrayValue(tokens...)
	if r != nil {
		t.waits.Delete(r.rec())
		t.stats.Wait.observeSince(r.since, t.now)
		t.answerMulti(r.id, len(names), v)
	}
	for _, n := range names {
		t.wake(n)
	}
	return v
}

// wake grants their names to the queued multi-locks in the queue of name
// that its new holder asked for, when they can take them all now: a name
// their owner holds counts as theirs. It costs nothing while no multi-lock
// waits.
func (t *Table) wake(name string) {
	h, ok := t.byName[name]
	if !ok || t.multiWaiting == 0 {
		return
	}
	var mine []*multiReq
	for _, w := range h.waiters {
		if w.multi != nil && w.owner == h.owner {
			mine = append(mine, w.multi)
		}
	}
	for _, r := range mine {
		if t.queued(r) && t.ready(r) {
			t.takeAll(r.names, r.owner, r.ttl, r.delay, r)
		}
	}
}

// queued reports whether the multi-lock r still waits.
func (t *Table) queued(r *multiReq) bool {
	_, ok := t.waits.Get(r.rec())
	return ok
}

// dropMulti takes the queued multi-lock r out of all its queues, answers
// it 0 and serves the names it leaves.
func (t *Table) dropMulti(r *multiReq) {
	for _, n := range r.names {
		t.unlink(n, slices.IndexFunc(t.queueOf(n), func(w waiter) bool { return w.multi == r }))
	}
	t.multiWaiting--
	t.waits.Delete(r.rec())
	t.stats.WaitTimeouts++
	t.answer(r.id, 0)
	for _, n := range r.names {
		t.settle(n)
	}
}

// answerMulti gives the queued multi-lock id its grant of n names, whose
// tokens are v.
func (t *Table) answerMulti(id uint64, n int, v resp.Value) {
	if m, ok := t.seen[id]; ok {
		m.v, m.reply = int64(n), &v
		t.seen[id] = m
		if t.answered == nil {
			t.answered = make(map[uint64]int64)
		}
		t.answered[id] = int64(n)
		if t.multiReplies == nil {
			t.multiReplies = make(map[uint64]*resp.Value)
		}
		t.multiReplies[id] = &v
	}
	t.out = append(t.out, Result{ID: id, Value: int64(n), Reply: &v})
}

// munlock runs an OpMultiUnlock: it releases each of the names Owner
// holds and returns how many there were.
func (t *Table) munlock(c *Command) int64 {
	names := c.names()
	if !validNames(names) {
		return 0
	}
	n := int64(0)
	for _, name := range names {
		if h, ok := t.byName[name]; ok && h.owner == c.Owner {
			t.note(EventDel, name)
			t.release(name, h)
			n++
		}
	}
	return n
}
