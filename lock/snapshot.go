package lock

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
)

// snapshotVersion is the first byte of every snapshot.
const snapshotVersion = 1

// Snapshot returns the table's whole state in a canonical binary form: locks
// sorted by name, remembered request IDs in the order they were applied. Two
// tables that applied the same batches return identical bytes. It is
// View().Encode().
func (t *Table) Snapshot() []byte { return t.View().Encode() }

// SnapshotView is a table's state at one moment, which Encode turns into a
// snapshot on any goroutine while the table goes on applying. View does the
// part that grows with the number of locks; Encode the part that grows with
// the remembered request IDs (up to MaxDedup, usually far more than locks).
type SnapshotView struct {
	prefix   []byte           // version, clock, fence and locks, encoded
	seen     []seenRec        // live remembered IDs; their array is not written again
	answered map[uint64]int64 // later results of some of them
}

// View captures the table's state for Encode.
func (t *Table) View() *SnapshotView {
	t.mu.RLock()
	defer t.mu.RUnlock()
	names := make([]string, 0, len(t.locks))
	for n := range t.locks {
		names = append(names, n)
	}
	slices.Sort(names)

	b := make([]byte, 0, 64+len(names)*48)
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
	live := t.order[t.head:len(t.order):len(t.order)]
	t.shared.Store(true)
	return &SnapshotView{prefix: b, seen: live, answered: maps.Clone(t.answered)}
}

// Encode returns the snapshot of the state View captured.
func (v *SnapshotView) Encode() []byte {
	b := make([]byte, 0, len(v.prefix)+binary.MaxVarintLen64+len(v.seen)*20)
	b = append(b, v.prefix...)
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
		h := &held{name: name, owner: d.string(), token: d.uvarint(), deadline: d.varint(), index: -1}
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
			n.waits = append(n.waits, waitRec{deadline: w.deadline, name: name, waiter: w.id})
		}
		if d.err != nil {
			break
		}
		if name == "" || h.owner == "" || h.token == 0 || h.token > n.fence || n.locks[name] != nil {
			return ErrCorrupt
		}
		n.locks[name] = h
		if h.deadline != 0 {
			h.index = len(n.leases)
			n.leases = append(n.leases, h)
		}
	}
	count = d.uvarint()
	if d.err == nil && count > uint64(len(d.b))/3 {
		return ErrCorrupt
	}
	for i := uint64(0); i < count && d.err == nil; i++ {
		r := seenRec{id: d.uvarint(), at: d.varint(), v: d.varint()}
		if d.err != nil {
			break
		}
		if _, dup := n.seen[r.id]; dup || r.id == 0 {
			return ErrCorrupt
		}
		n.seen[r.id] = r.v
		n.order = append(n.order, r)
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return ErrCorrupt
	}
	heap.Init(&n.leases)
	heap.Init(&n.waits)

	t.mu.Lock()
	defer t.mu.Unlock()
	t.locks, t.leases, t.waits, t.fence = n.locks, n.leases, n.waits, n.fence
	t.term, t.stamp, t.now = n.term, n.stamp, n.now
	t.seen, t.answered, t.order, t.head = n.seen, nil, n.order, 0
	t.shared.Store(false) // a view of the old order keeps the old array
	t.waiting = n.waiting
	return nil
}
