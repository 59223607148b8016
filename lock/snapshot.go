package lock

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/lockd/lockd/acl"
	"github.com/lockd/lockd/resp"
	"github.com/tidwall/btree"
)

// snapshotVersion is the first byte of every snapshot. Version 2 added the
// fingerprints of remembered request IDs; version 3 the key space (key
// versions, replies of remembered key-space commands, the script registry)
// and the order of locks by treeKey; version 4 the ACL users, after the
// scripts; version 5 the read/write locks and semaphores, after the users
// (which may then be none). A table without users writes version 3, which
// a node that predates users reads too (so a cluster can be upgraded node
// by node until the first ACL SETUSER); one without read/write locks and
// semaphores writes version 3 or 4, for the same reason. Restore reads
// versions 3 to 5 and refuses any other, and a version 4 without users
// (never written).
const (
	snapshotVersionShared  = 5
	snapshotVersion        = 4
	snapshotVersionNoUsers = 3
)

// Snapshot returns the table's whole state in a canonical binary form: locks
// in treeKey order, remembered request IDs in the order they were applied,
// scripts in the order they were registered. Two tables that applied the
// same batches return identical bytes. It is View().Encode().
func (t *Table) Snapshot() []byte { return t.View().Encode() }

// SnapshotView is a table's state at one moment, which Encode turns into a
// snapshot.
//
// Concurrency: Encode may run on any goroutine, while the table goes on
// applying and while other goroutines encode the same view: it reads only
// what the table no longer writes. View takes a moment whatever the number
// of locks and remembered IDs: it shares the lock tree (copied on write)
// and the array of remembered IDs, and copies only the later results of
// queued requests. Encode does the work that grows with the locks and the
// remembered IDs.
type SnapshotView struct {
	term     uint64
	stamp    int64
	now      int64
	fence    uint64
	mod      uint64
	locks    *btree.Map[string, *held] // the table's tree when taken; its helds are never changed again
	seen     []seenRec                 // live remembered IDs; their array is not written again
	answered map[uint64]int64          // later results of some of them
	scripts  []string                  // bodies, in registration order
	users    *acl.Users                // never changed once made
	shared   []sharedEntry             // a copy (see viewShared)
}

// View captures the table's state for Encode. It takes the write lock:
// copying the lock tree marks the table's own tree, and the locks held now,
// as shared.
func (t *Table) View() *SnapshotView {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.shared = true
	t.gen++ // the locks held now are the view's too
	return &SnapshotView{
		term:     t.term,
		stamp:    t.stamp,
		now:      t.now,
		fence:    t.fence,
		mod:      t.mod,
		locks:    t.locks.Copy(),
		seen:     t.order[t.head:len(t.order):len(t.order)],
		answered: maps.Clone(t.answered),
		scripts:  t.scripts.bodies(),
		users:    t.users.Load(),
		shared:   t.viewShared(),
	}
}

// bodies returns the registered scripts in registration order.
func (r *scriptRegistry) bodies() []string {
	out := make([]string, len(r.order))
	for i, sha := range r.order {
		out[i] = r.body[sha]
	}
	return out
}

// Encode returns the snapshot of the state View captured.
func (v *SnapshotView) Encode() []byte {
	b := make([]byte, 0, 64+v.locks.Len()*48+len(v.seen)*24)
	version := byte(snapshotVersion)
	switch {
	case len(v.shared) > 0:
		version = snapshotVersionShared
	case v.users.Len() == 0:
		version = snapshotVersionNoUsers
	}
	b = append(b, version)
	b = binary.AppendUvarint(b, v.term)
	b = binary.AppendVarint(b, v.stamp)
	b = binary.AppendVarint(b, v.now)
	b = binary.AppendUvarint(b, v.fence)
	b = binary.AppendUvarint(b, v.mod)
	b = binary.AppendUvarint(b, uint64(v.locks.Len()))
	v.locks.Scan(func(key string, h *held) bool {
		b = appendString(b, key[8:])
		b = appendString(b, h.owner)
		b = binary.AppendUvarint(b, h.token)
		b = binary.AppendVarint(b, h.deadline)
		b = binary.AppendUvarint(b, h.version)
		b = binary.AppendUvarint(b, uint64(len(h.waiters)))
		for _, w := range h.waiters {
			b = binary.AppendUvarint(b, w.id)
			b = binary.AppendUvarint(b, uint64(len(w.owner)))
			b = append(b, w.owner...)
			b = binary.AppendVarint(b, w.ttl)
			b = binary.AppendVarint(b, w.deadline)
		}
		return true
	})
	b = binary.AppendUvarint(b, uint64(len(v.seen)))
	for _, r := range v.seen {
		val := r.v
		if len(v.answered) > 0 {
			if a, ok := v.answered[r.id]; ok {
				val = a
			}
		}
		b = binary.AppendUvarint(b, r.id)
		b = binary.AppendVarint(b, r.at)
		b = binary.AppendVarint(b, val)
		b = binary.LittleEndian.AppendUint32(b, r.fp)
		if r.reply == nil {
			b = append(b, 0)
		} else {
			b = resp.Append(append(b, 1), *r.reply)
		}
	}
	b = appendStrings(b, v.scripts)
	if version == snapshotVersionNoUsers {
		return b
	}
	b = appendUsers(b, v.users)
	if version == snapshotVersionShared {
		b = appendShared(b, v.shared)
	}
	return b
}

// appendUsers appends the users section: their number, then each one's
// name and rules (acl.RuleStrings, which make it from a new user), in name
// order.
func appendUsers(b []byte, users *acl.Users) []byte {
	b = binary.AppendUvarint(b, uint64(users.Len()))
	for _, name := range users.Names() {
		u, _ := users.Get(name)
		b = appendString(b, name)
		b = appendStrings(b, acl.RuleStrings(u))
	}
	return b
}

// users reads the users section: at most acl.MaxUsers users of valid names
// in ascending order, each of rules that make a user.
func (d *decoder) users() *acl.Users {
	n := d.count(2)
	if n > acl.MaxUsers {
		d.err = ErrCorrupt
	}
	var users *acl.Users
	prev := ""
	for i := 0; i < n && d.err == nil; i++ {
		name, rules := d.string(), d.strings()
		if d.err != nil {
			break
		}
		if acl.ValidName(name) != nil || name <= prev {
			d.err = ErrCorrupt
			break
		}
		prev = name
		if slices.ContainsFunc(rules, acl.ClearPassword) {
			d.err = ErrCorrupt
			break
		}
		u, err := acl.Apply(&acl.User{Name: name}, rules, nil)
		if err != nil {
			d.err = fmt.Errorf("%w: user %s: %v", ErrCorrupt, name, err)
			break
		}
		users = users.With(u)
	}
	return users
}

// Restore replaces the table's state with a snapshot made by Snapshot.
// On error the table is unchanged.
func (t *Table) Restore(data []byte) error {
	d := decoder{b: data}
	version := d.byte()
	if d.err == nil && (version < snapshotVersionNoUsers || version > snapshotVersionShared) {
		return fmt.Errorf("%w: snapshot version %d (this build reads versions %d to %d)", ErrCorrupt, version, snapshotVersionNoUsers, snapshotVersionShared)
	}
	n := NewTable()
	n.term = d.uvarint()
	n.stamp = d.varint()
	n.now = d.varint()
	if n.now < 0 {
		return ErrCorrupt
	}
	n.fence = d.uvarint()
	if n.fence >= math.MaxInt64 {
		return ErrCorrupt
	}
	n.mod = d.uvarint()
	count := d.uvarint()
	if d.err == nil && count > uint64(len(d.b))/4 {
		return ErrCorrupt
	}
	prev := ""
	for i := uint64(0); i < count && d.err == nil; i++ {
		name := d.string()
		h := &held{key: treeKey(name), owner: d.string(), token: d.uvarint(), deadline: d.varint(), version: d.uvarint(), since: unknownSince}
		nw := d.uvarint()
		if d.err == nil && nw > uint64(len(d.b))/4 {
			return ErrCorrupt
		}
		for j := uint64(0); j < nw && d.err == nil; j++ {
			w := waiter{id: d.uvarint(), owner: d.string(), ttl: d.varint(), deadline: d.varint(), since: unknownSince}
			if d.err != nil {
				break
			}
			if w.id == 0 || w.owner == "" || w.ttl < 0 {
				return ErrCorrupt
			}
			if _, twice := n.waits.Set(waitRec{at: w.deadline, name: name, id: w.id}); twice {
				return ErrCorrupt
			}
			h.waiters = append(h.waiters, w)
			n.waiting++
		}
		if d.err != nil {
			break
		}
		// Keys are strictly ascending, so none is repeated.
		if name == "" || h.key <= prev || h.owner == "" || h.token == 0 || h.token > n.fence || h.version == 0 || h.version > n.mod {
			return ErrCorrupt
		}
		prev = h.key
		n.locks.Load(h.key, h)
		n.byName[name] = h
		if h.deadline != 0 {
			h.lease = &lease{deadline: h.deadline, name: name, index: len(n.leases)}
			n.leases = append(n.leases, h.lease)
		}
	}
	count = d.uvarint()
	if d.err == nil && count > uint64(len(d.b))/7 {
		return ErrCorrupt
	}
	if d.err == nil {
		n.seen = make(map[uint64]remembered, count)
		n.order = make([]seenRec, 0, count)
	}
	for i := uint64(0); i < count && d.err == nil; i++ {
		r := seenRec{id: d.uvarint(), at: d.varint(), v: d.varint(), fp: d.uint32()}
		switch flag := d.byte(); {
		case flag > 1:
			return ErrCorrupt
		case flag == 1 && d.err == nil:
			v, rest, err := resp.Decode(d.b)
			if err != nil {
				return ErrCorrupt
			}
			r.reply, d.b = &v, rest
		}
		if d.err != nil {
			break
		}
		if _, dup := n.seen[r.id]; dup || r.id == 0 {
			return ErrCorrupt
		}
		n.seen[r.id] = remembered{v: r.v, reply: r.reply, fp: r.fp}
		n.order = append(n.order, r)
	}
	for _, body := range d.strings() {
		n.scripts.add(body)
	}
	var users *acl.Users
	switch version {
	case snapshotVersion:
		if users = d.users(); d.err == nil && users.Len() == 0 {
			return ErrCorrupt
		}
	case snapshotVersionShared:
		users = d.users()
		d.sharedLocks(n)
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return ErrCorrupt
	}
	n.seenPeak = len(n.seen)
	heap.Init(&n.leases)

	t.mu.Lock()
	defer t.mu.Unlock()
	t.locks, t.byName, t.gen, t.leases, t.waits, t.fence, t.mod = n.locks, n.byName, n.gen, n.leases, n.waits, n.fence, n.mod
	t.sharedLocks = n.sharedLocks
	t.scripts = n.scripts
	t.term, t.stamp, t.now = n.term, n.stamp, n.now
	t.seen, t.seenPeak, t.answered, t.order, t.head = n.seen, n.seenPeak, nil, n.order, 0
	t.shared = false // a view of the old order keeps the old array
	t.waiting = n.waiting
	t.events = t.events[:0] // they were of the table replaced
	t.putUsers(users)
	return nil
}
