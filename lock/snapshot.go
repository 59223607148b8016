package lock

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// snapshotVersion is the first byte of every snapshot.
const snapshotVersion = 1

// Snapshot returns the table's whole state in a canonical binary form: locks
// sorted by name, remembered request IDs in the order they were applied. Two
// tables that applied the same batches return identical bytes.
func (t *Table) Snapshot() []byte {
	t.mu.RLock()
	defer t.mu.RUnlock()
	names := make([]string, 0, len(t.locks))
	for n := range t.locks {
		names = append(names, n)
	}
	slices.Sort(names)

	b := make([]byte, 0, 64+len(names)*48+(len(t.order)-t.head)*20)
	b = append(b, snapshotVersion)
	b = binary.AppendUvarint(b, t.term)
	b = binary.AppendVarint(b, t.stamp)
	b = binary.AppendVarint(b, t.now)
	b = binary.AppendUvarint(b, t.fence)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, n := range names {
		h := t.locks[n]
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
		b = binary.AppendUvarint(b, uint64(len(h.owner)))
		b = append(b, h.owner...)
		b = binary.AppendUvarint(b, h.token)
		b = binary.AppendVarint(b, h.deadline)
		b = binary.AppendUvarint(b, uint64(len(h.waiters)))
		for _, w := range h.waiters {
			b = binary.AppendUvarint(b, w.id)
			b = binary.AppendUvarint(b, uint64(len(w.owner)))
			b = append(b, w.owner...)
			b = binary.AppendVarint(b, w.ttl)
			b = binary.AppendVarint(b, w.deadline)
		}
	}
	live := t.order[t.head:]
	b = binary.AppendUvarint(b, uint64(len(live)))
	for _, r := range live {
		b = binary.AppendUvarint(b, r.id)
		b = binary.AppendVarint(b, r.at)
		b = binary.AppendVarint(b, t.seen[r.id])
	}
	return b
}

// Restore replaces the table's state with a snapshot made by Snapshot.
// On error the table is unchanged.
func (t *Table) Restore(data []byte) error {
	d := decoder{b: data}
	if v := d.byte(); d.err == nil && v != snapshotVersion {
		return fmt.Errorf("%w: snapshot version %d", ErrCorrupt, v)
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
	count := d.uvarint()
	if d.err == nil && count > uint64(len(d.b))/4 {
		return ErrCorrupt
	}
	for i := uint64(0); i < count && d.err == nil; i++ {
		name := d.string()
		h := &held{owner: d.string(), token: d.uvarint(), deadline: d.varint()}
		nw := d.uvarint()
		if d.err == nil && nw > uint64(len(d.b))/4 {
			return ErrCorrupt
		}
		for j := uint64(0); j < nw && d.err == nil; j++ {
			w := waiter{id: d.uvarint(), owner: d.string(), ttl: d.varint(), deadline: d.varint()}
			if d.err == nil && (w.id == 0 || w.owner == "" || w.ttl < 0) {
				return ErrCorrupt
			}
			h.waiters = append(h.waiters, w)
			n.waiting++
			n.expiry = append(n.expiry, expiryRec{deadline: w.deadline, name: name, waiter: w.id})
		}
		if d.err != nil {
			break
		}
		if name == "" || h.owner == "" || h.token == 0 || h.token > n.fence || n.locks[name] != nil {
			return ErrCorrupt
		}
		n.locks[name] = h
		if h.deadline != 0 {
			n.expiry = append(n.expiry, expiryRec{deadline: h.deadline, name: name, token: h.token})
		}
	}
	count = d.uvarint()
	if d.err == nil && count > uint64(len(d.b))/3 {
		return ErrCorrupt
	}
	for i := uint64(0); i < count && d.err == nil; i++ {
		r := seenRec{id: d.uvarint(), at: d.varint()}
		v := d.varint()
		if d.err != nil {
			break
		}
		if _, dup := n.seen[r.id]; dup || r.id == 0 {
			return ErrCorrupt
		}
		n.seen[r.id] = v
		n.order = append(n.order, r)
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return ErrCorrupt
	}
	heap.Init(&n.expiry)

	t.mu.Lock()
	defer t.mu.Unlock()
	t.locks, t.expiry, t.fence = n.locks, n.expiry, n.fence
	t.term, t.stamp, t.now = n.term, n.stamp, n.now
	t.seen, t.order, t.head = n.seen, n.order, 0
	t.waiting = n.waiting
	return nil
}
