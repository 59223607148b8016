package lock

import (
	"encoding/binary"
	"slices"
	"strings"
)

// sharedEntry is a read/write lock or semaphore as a SnapshotView holds it:
// a copy, which the table never changes.
type sharedEntry struct {
	name string
	lock sharedLock // its holders' leases are not read
}

// viewShared copies the read/write locks and semaphores, in no order (Encode
// sorts them), for a SnapshotView. Unlike the LOCK tree (shared
// copy-on-write), this costs O(names + holders + waiters) under the table's
// write lock at View time, in three allocations: a price paid for their
// simpler in-place updates while they are few next to the LOCK names
// (BenchmarkViewShared).
func (t *Table) viewShared() []sharedEntry {
	if len(t.sharedLocks) == 0 {
		return nil
	}
	nh, nw := 0, 0
	for _, s := range t.sharedLocks {
		nh += len(s.holders)
		nw += len(s.waiters)
	}
	out := make([]sharedEntry, 0, len(t.sharedLocks))
	hs, ws := make([]holder, 0, nh), make([]sharedWaiter, 0, nw)
	for name, s := range t.sharedLocks {
		h0, w0 := len(hs), len(ws)
		hs, ws = append(hs, s.holders...), append(ws, s.waiters...)
		out = append(out, sharedEntry{name: name, lock: sharedLock{sem: s.sem, limit: s.limit,
			holders: hs[h0:len(hs):len(hs)], waiters: ws[w0:len(ws):len(ws)]}})
	}
	return out
}

// appendShared appends the shared section of a version 5 snapshot: the
// number of names, then for each in name order its kind (0 read/write, 1
// semaphore), limit, holders in grant order (owner, mode, token, deadline)
// and waiters in queue order (id, owner, mode, ttl, deadline).
func appendShared(b []byte, entries []sharedEntry) []byte {
	entries = slices.SortedFunc(slices.Values(entries), func(a, b sharedEntry) int { return strings.Compare(a.name, b.name) })
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = appendString(b, e.name)
		kind := byte(0)
		if e.lock.sem {
			kind = 1
		}
		b = append(b, kind)
		b = binary.AppendUvarint(b, uint64(e.lock.limit))
		b = binary.AppendUvarint(b, uint64(len(e.lock.holders)))
		for _, h := range e.lock.holders {
			b = appendString(b, h.owner)
			b = append(b, byte(h.mode))
			b = binary.AppendUvarint(b, h.token)
			b = binary.AppendVarint(b, h.deadline)
		}
		b = binary.AppendUvarint(b, uint64(len(e.lock.waiters)))
		for _, w := range e.lock.waiters {
			b = binary.AppendUvarint(b, w.id)
			b = appendString(b, w.owner)
			b = append(b, byte(w.mode))
			b = binary.AppendVarint(b, w.ttl)
			b = binary.AppendVarint(b, w.deadline)
		}
	}
	return b
}

// sharedLocks reads the shared section into n, whose fence is read
// already: names ascending, each held or waited for, holders and waiters
// of modes of its kind, holders that fit together (no reader beside a
// writer, no more than the limit), tokens given out, waiter IDs unique.
func (d *decoder) sharedLocks(n *Table) {
	count := d.count(4)
	prev := ""
	for i := 0; i < count && d.err == nil; i++ {
		name := d.string()
		kind := d.byte()
		s := &sharedLock{sem: kind == 1, limit: int(min(d.uvarint(), MaxSemLimit+1))}
		if d.err == nil && (name == "" || (i > 0 && name <= prev) || kind > 1 || (s.sem != (s.limit != 0)) || s.limit > MaxSemLimit) {
			d.err = ErrCorrupt
		}
		prev = name
		nh := d.count(4)
		for j := 0; j < nh && d.err == nil; j++ {
			h := holder{owner: d.string(), mode: Mode(d.byte()), token: d.uvarint(), deadline: d.varint(), since: unknownSince}
			if d.err == nil && (h.owner == "" || !s.modeOK(h.mode) || h.token == 0 || h.token > n.fence || h.deadline < 0 ||
				s.holderIndex(h.owner) >= 0 || !s.fits(h.mode)) {
				d.err = ErrCorrupt
			}
			if d.err != nil {
				break
			}
			if h.deadline != 0 {
				h.lease = &lease{deadline: h.deadline, name: name, index: len(n.leases), shared: true, owner: h.owner}
				n.leases = append(n.leases, h.lease)
			}
			s.holders = append(s.holders, h)
		}
		nw := d.count(5)
		for j := 0; j < nw && d.err == nil; j++ {
			w := sharedWaiter{id: d.uvarint(), owner: d.string(), mode: Mode(d.byte()), ttl: d.varint(), deadline: d.varint(), since: unknownSince}
			if d.err == nil && (w.id == 0 || w.owner == "" || !s.modeOK(w.mode) || w.ttl < 0) {
				d.err = ErrCorrupt
			}
			if d.err != nil {
				break
			}
			if _, twice := n.waits.Set(waitRec{at: w.deadline, name: name, id: w.id, shared: true}); twice {
				d.err = ErrCorrupt
				break
			}
			s.waiters = append(s.waiters, w)
			n.waiting++
		}
		if d.err == nil && len(s.holders) == 0 && len(s.waiters) == 0 {
			d.err = ErrCorrupt
		}
		if d.err == nil {
			if n.sharedLocks == nil {
				n.sharedLocks = make(map[string]*sharedLock)
			}
			n.sharedLocks[name] = s
		}
	}
}

// modeOK reports whether a hold or request in mode m is of s's kind.
func (s *sharedLock) modeOK(m Mode) bool {
	if s.sem {
		return m == ModeSem
	}
	return m == ModeRead || m == ModeWrite
}
