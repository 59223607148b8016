package lock

import (
	"cmp"
	"encoding/binary"
	"maps"
	"slices"

	"github.com/lockd/lockd/resp"
	"github.com/tidwall/btree"
)

// The mutex section ends a version 5 snapshot (snapshotVersionPrimitives),
// after the users and the shared section.

// mutexView is the lock-delay and multi-lock state a SnapshotView holds:
// copies of the blocked names' structs (their waiters arrays shared, never
// written again) and the replies of answered multi-locks.
type mutexView struct {
	blocked      map[string]blocked
	multiReplies map[uint64]*resp.Value
}

// viewMutex copies the state for a view, in time linear in the number of
// blocked names.
func (t *Table) viewMutex() mutexView {
	v := mutexView{multiReplies: maps.Clone(t.multiReplies)}
	if len(t.blocked) > 0 {
		v.blocked = make(map[string]blocked, len(t.blocked))
		for n, b := range t.blocked {
			v.blocked[n] = *b
		}
	}
	return v
}

// reply returns the reply to remember for id: a multi-lock's later grant,
// else r.
func (v *mutexView) reply(id uint64, r *resp.Value) *resp.Value {
	if m, ok := v.multiReplies[id]; ok {
		return m
	}
	return r
}

// appendMutex appends the mutex section, or reports that there is nothing
// to write: the lock-delays of held locks (name, delay, in treeKey order);
// the queued requests with a delay or of a multi-lock (ID, delay, the
// multi-lock's names or none, in ID order); the blocked names (name, end of
// its lock-delay or 0, version, queue as in the locks section, in name
// order).
func (v *mutexView) appendMutex(b []byte, locks *btree.Map[string, *held]) ([]byte, bool) {
	type extra struct {
		id    uint64
		delay int64
		names []string
	}
	var delays []*held
	var names []string
	extras := map[uint64]extra{}
	note := func(q []waiter) {
		for _, w := range q {
			if w.delay != 0 || w.multi != nil {
				e := extra{id: w.id, delay: w.delay}
				if w.multi != nil {
					e.names = w.multi.names
				}
				extras[w.id] = e
			}
		}
	}
	locks.Scan(func(key string, h *held) bool {
		if h.delay != 0 {
			delays = append(delays, h)
			names = append(names, key[8:])
		}
		note(h.waiters)
		return true
	})
	for _, bl := range v.blocked {
		note(bl.waiters)
	}
	some := len(delays) > 0 || len(extras) > 0 || len(v.blocked) > 0
	b = binary.AppendUvarint(b, uint64(len(delays)))
	for i, h := range delays {
		b = appendString(b, names[i])
		b = binary.AppendVarint(b, h.delay)
	}
	b = binary.AppendUvarint(b, uint64(len(extras)))
	for _, e := range slices.SortedFunc(maps.Values(extras), func(a, b extra) int { return cmp.Compare(a.id, b.id) }) {
		b = binary.AppendUvarint(b, e.id)
		b = binary.AppendVarint(b, e.delay)
		b = appendStrings(b, e.names)
	}
	b = binary.AppendUvarint(b, uint64(len(v.blocked)))
	for _, n := range slices.Sorted(maps.Keys(v.blocked)) {
		bl := v.blocked[n]
		b = appendString(b, n)
		b = binary.AppendVarint(b, bl.until)
		b = binary.AppendUvarint(b, bl.version)
		b = appendWaiters(b, bl.waiters)
	}
	return b, some
}

// appendWaiters appends a queue as the locks section has it.
func appendWaiters(b []byte, q []waiter) []byte {
	b = binary.AppendUvarint(b, uint64(len(q)))
	for _, w := range q {
		b = binary.AppendUvarint(b, w.id)
		b = appendString(b, w.owner)
		b = binary.AppendVarint(b, w.ttl)
		b = binary.AppendVarint(b, w.deadline)
	}
	return b
}

// mutex reads the mutex section into n, a table restored up to it: it sets
// the held locks' delays, blocks names, and ties every queued request to
// its delay and multi-lock (a multi-lock's wait record is then one, under
// its first name). Anything inconsistent is ErrCorrupt: a request tied to
// no queue or to another multi-lock's names, a blocked name that is held,
// or one neither in a lock-delay nor reserved for a multi-lock.
func (d *decoder) mutex(n *Table) {
	count := d.countAny(2)
	for i := 0; i < count && d.err == nil; i++ {
		name, delay := d.string(), d.varint()
		h, ok := n.byName[name]
		if d.err == nil && (!ok || h.delay != 0 || delay <= 0 || delay > MaxDelay) {
			d.err = ErrCorrupt
		}
		if d.err == nil {
			h.delay = delay
		}
	}
	type extra struct {
		delay int64
		names []string
		r     *multiReq
		seen  int
	}
	extras := map[uint64]*extra{}
	count = d.countAny(3)
	prevID := uint64(0)
	for i := 0; i < count && d.err == nil; i++ {
		id, e := d.uvarint(), &extra{delay: d.varint(), names: d.strings()}
		if d.err == nil && (id <= prevID || e.delay < 0 || e.delay > MaxDelay || e.delay == 0 && len(e.names) == 0 || len(e.names) > 0 && !validNames(e.names)) {
			d.err = ErrCorrupt
		}
		prevID = id
		extras[id] = e
	}
	count = d.countAny(4)
	prev := ""
	for i := 0; i < count && d.err == nil; i++ {
		name, until, version := d.string(), d.varint(), d.uvarint()
		b := &blocked{until: until, version: version}
		nw := d.countAny(4)
		for j := 0; j < nw && d.err == nil; j++ {
			w := waiter{id: d.uvarint(), owner: d.string(), ttl: d.varint(), deadline: d.varint(), since: unknownSince}
			if d.err != nil {
				break
			}
			if _, twice := n.waits.Set(waitRec{at: w.deadline, name: name, id: w.id}); twice || w.id == 0 || w.owner == "" || w.ttl < 0 {
				d.err = ErrCorrupt
			}
			b.waiters = append(b.waiters, w)
			n.waiting++
		}
		_, held := n.byName[name]
		if d.err == nil && (name <= prev || held || until < 0 || version == 0 || version > n.mod || until == 0 && len(b.waiters) == 0) {
			d.err = ErrCorrupt
		}
		prev = name
		n.blocked[name] = b
		if until != 0 {
			n.delays.Set(delayRec{at: until, name: name})
		}
	}
	if d.err != nil {
		return
	}
	tie := func(name string, q []waiter) bool {
		for i := range q {
			w := &q[i]
			e, ok := extras[w.id]
			if !ok {
				continue
			}
			e.seen++
			w.delay = e.delay
			if len(e.names) == 0 {
				continue
			}
			if e.r == nil {
				e.r = &multiReq{id: w.id, owner: w.owner, ttl: w.ttl, delay: e.delay, deadline: w.deadline, since: unknownSince, names: e.names}
			}
			if !slices.Contains(e.names, name) || w.owner != e.r.owner || w.ttl != e.r.ttl || w.deadline != e.r.deadline {
				return false
			}
			w.multi = e.r
			n.waits.Delete(waitRec{at: w.deadline, name: name, id: w.id})
		}
		return true
	}
	ok := true
	for name, h := range n.byName {
		ok = ok && tie(name, h.waiters)
	}
	for name, b := range n.blocked {
		ok = ok && tie(name, b.waiters) && (b.until != 0 || b.waiters[0].multi != nil)
	}
	for _, e := range extras {
		switch {
		case len(e.names) == 0 && e.seen != 1, len(e.names) > 0 && e.seen != len(e.names):
			ok = false
		case e.r != nil:
			n.waits.Set(e.r.rec())
			n.multiWaiting++
		}
	}
	// The table never leaves a multi-lock waiting that could take all its
	// names: restored, its names would stay blocked until its wait ran out.
	for _, b := range n.blocked {
		if ok && b.until == 0 && n.ready(b.waiters[0].multi) {
			ok = false
		}
	}
	if !ok {
		d.err = ErrCorrupt
	}
}
