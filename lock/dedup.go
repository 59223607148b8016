package lock

import (
	"hash/crc32"
	"slices"

	"github.com/lockd/lockd/resp"
)

// DedupWindow is how long, in the table's logical milliseconds, the result of
// a request ID is remembered: 30 s, the longest request timeout a node allows
// (20 s, during which it re-sends the request) plus 10 s for a copy still in
// flight. A command whose ID was applied within the window returns the first
// result and changes nothing (or returns Conflict, when it is another
// command). Nodes must stop re-sending a request well within this window.
// Past MaxDedup remembered IDs the window is shorter.
const DedupWindow = 30_000

// MaxDedup bounds the number of remembered request IDs, and so their memory
// (60 to 90 bytes each, as the map fills); past it the oldest are forgotten
// first, whatever their age. Under more than MaxDedup IDs per DedupWindow
// (about 70,000 a second) the window is therefore shorter than 30 s, and a
// copy of a request that arrives later than that acts again.
const MaxDedup = 1 << 21

// remembered is what the table keeps for a request ID: its result (the
// final one, for a queued request) and the fingerprint of its command.
type remembered struct {
	v     int64
	reply *resp.Value // a key-space command's reply
	fp    uint32
}

// seenRec is one remembered request ID in the order IDs were applied. v is
// its result when remembered and is never written again, so a SnapshotView
// can read it while the table applies; a later result (a queued request
// answered) is in Table.answered.
type seenRec struct {
	id    uint64
	at    int64
	v     int64
	reply *resp.Value
	fp    uint32
}

// shrinkFrom is the peak number of remembered IDs from which the table
// rebuilds its map when it has shrunk to a quarter of its peak.
const shrinkFrom = 1 << 14

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fingerprint identifies what c asks, whatever its ID: the CRC-32C of its
// encoding (AppendCommand) with ID 0. Snapshots carry fingerprints and every
// node must compute the same one: never change it. The encoding is made in
// t.scratch, which the table keeps, so that this allocates nothing.
func (t *Table) fingerprint(c *Command) uint32 {
	anon := *c
	anon.ID = 0
	t.scratch = AppendCommand(t.scratch[:0], &anon)
	return crc32.Checksum(t.scratch, castagnoli)
}

// recall returns the result remembered for id, or Conflict when id was
// used by a command of another fingerprint than fp; ok is false when id is
// not remembered.
func (t *Table) recall(id uint64, fp uint32) (r Result, ok bool) {
	m, ok := t.seen[id]
	switch {
	case !ok:
		return Result{}, false
	case m.fp != fp:
		return Result{Value: Conflict}, true
	}
	return Result{Value: m.v, Reply: m.reply}, true
}

// remember records the result r of the command of fingerprint fp with ID id.
func (t *Table) remember(id uint64, fp uint32, r Result) {
	t.seen[id] = remembered{v: r.Value, reply: r.Reply, fp: fp}
	t.seenPeak = max(t.seenPeak, len(t.seen))
	t.order = append(t.order, seenRec{id: id, at: t.now, v: r.Value, reply: r.Reply, fp: fp})
}

// forget drops the remembered request IDs older than the window, and the
// oldest beyond MaxDedup, and gives back the memory of a past burst: the
// order slice is compacted, into a new array when the old one is far larger
// than what is live, and the maps are rebuilt once they hold a quarter of
// their peak (a Go map never shrinks).
func (t *Table) forget() {
	for t.head < len(t.order) && (t.order[t.head].at < t.now-DedupWindow || len(t.order)-t.head > MaxDedup) {
		id := t.order[t.head].id
		delete(t.seen, id)
		if len(t.answered) > 0 {
			delete(t.answered, id)
			delete(t.multiReplies, id)
		}
		t.head++
	}
	if len(t.answered) == 0 {
		t.answered = nil
	}
	if t.head > 1024 && t.head*2 > len(t.order) {
		live := t.order[t.head:]
		if t.shared || cap(t.order) > 4*len(live) {
			t.order, t.shared = slices.Clone(live), false
		} else {
			t.order = append(t.order[:0], live...)
		}
		t.head = 0
	}
	if t.seenPeak >= shrinkFrom && len(t.seen) < t.seenPeak/4 {
		t.shrink()
	}
}

// shrink rebuilds seen and answered at their present size, in the order
// the IDs were applied.
func (t *Table) shrink() {
	seen := make(map[uint64]remembered, len(t.seen))
	var answered map[uint64]int64
	for _, r := range t.order[t.head:] {
		seen[r.id] = t.seen[r.id]
		if len(t.answered) > 0 {
			if v, ok := t.answered[r.id]; ok {
				if answered == nil {
					answered = make(map[uint64]int64)
				}
				answered[r.id] = v
			}
		}
	}
	t.seen, t.answered, t.seenPeak = seen, answered, len(seen)
}

// MaxRememberedID returns the largest request ID in [lo, hi] that the
// table remembers, 0 when there is none. A cluster restored from a backup
// uses it to start its nodes' IDs past those the table still remembers.
func (t *Table) MaxRememberedID(lo, hi uint64) uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var m uint64
	for _, s := range t.order[t.head:] {
		if s.id >= lo && s.id <= hi {
			m = max(m, s.id)
		}
	}
	return m
}
