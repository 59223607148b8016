package replication

import (
	"errors"
	"fmt"
	"time"

	"github.com/lockd/lockd/internal/datadir"
	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// applier is the goroutine that applies committed entries to the table in
// log order, answers their waiters, publishes the applied index (in
// published: the one place readers look) and tells raft the entries are
// applied. Every SnapshotEntries entries it takes the table's view and
// starts a snapshot goroutine that encodes and writes it.
//
// Concurrency: its queue takes committed entries from the loop, snapshot
// restores from the appender and backup requests from Backup; the table is
// written only here (readers use its own locking). It stops with the node,
// and stops the node when a snapshot cannot be restored or written.
type applier struct {
	n     *Node
	table *lock.Table
	disk  *datadir.Dir
	mem   *raft.MemoryStorage
	every uint64 // SnapshotEntries
	q     *mailbox[applyWork]

	applied   uint64      // what the table reflects
	snapIndex uint64      // the last snapshot's index
	snapping  bool        // a snapshot goroutine is running; set and cleared here
	members   *membership // as of applied, for snapshots
	// joined is set when a member was added since the last snapshot: the
	// next snapshot is taken at once, so that the one the new member
	// receives lists it (raft's follower ignores a snapshot that does not).
	joined   bool
	snapDone chan struct{}
	results  []lock.Result
	events   []lock.Event
}

// applyWork is one item of the applier's queue: committed entries (a
// MsgStorageApply) with the members after them when they changed them, a
// snapshot from the leader to restore the table from, or a backup's request
// for the table as applied so far (backup.go).
type applyWork struct {
	msg     *raftpb.Message
	members *membership
	restore *raftpb.Snapshot
	backup  chan<- backupPoint // buffered
}

func (a *applier) run() {
	defer a.n.wg.Done()
	for {
		select {
		case <-a.q.ready():
		case <-a.snapDone:
			a.snapping = false
			a.maybeSnapshot()
			continue
		case <-a.n.stopc:
			return
		case <-a.n.haltc:
			return
		}
		for _, it := range a.q.take() {
			if it.backup != nil {
				it.backup <- a.point()
				continue
			}
			if it.restore != nil {
				if err := a.restore(it.restore); err != nil {
					a.n.stopOnError(err)
					return
				}
				continue
			}
			a.apply(it.msg.GetEntries())
			if m := it.members; m != nil {
				a.joined = a.joined || len(a.members.cs.GetVoters()) > 0 && len(m.addrs) > len(a.members.addrs)
				a.members = m
			}
			for _, r := range it.msg.GetResponses() {
				a.n.deliver(r)
			}
		}
		a.n.loop.applied()
		a.maybeSnapshot()
	}
}

func (a *applier) restore(s *raftpb.Snapshot) error {
	index := s.GetMetadata().GetIndex()
	if index <= a.applied {
		return nil
	}
	addrs, table, err := splitSnapshotData(s.GetData())
	if err == nil {
		err = a.table.Restore(table)
	}
	if err != nil {
		return fmt.Errorf("snapshot from leader at %d: %w", index, err)
	}
	cs := s.GetMetadata().GetConfState()
	a.members = &membership{index: index, cs: cs, addrs: a.n.knownAddrs(cs, addrs)}
	a.snapIndex, a.applied = index, index
	a.n.pub.setApplied(index)
	a.n.log.Info("installed snapshot", "index", index, "locks", a.table.Len())
	if a.n.cfg.EventsLost != nil {
		a.n.cfg.EventsLost()
	}
	return nil
}

// apply applies committed entries in order and answers their waiters. The
// applied index is published before the waiters hear their results, so a
// client that got its reply never sees an applied index from before its
// write.
func (a *applier) apply(ents []*raftpb.Entry) {
	a.results = a.results[:0]
	for _, e := range ents {
		if e.GetIndex() <= a.applied {
			continue
		}
		if e.GetType() == raftpb.EntryNormal && len(e.GetData()) > 0 {
			b, err := lock.DecodeBatch(e.GetData())
			if err != nil {
				// Every node skips the same entry, so tables stay equal.
				a.n.log.Error("skipping undecodable entry", "index", e.GetIndex(), "err", err)
			} else {
				a.results = a.table.Apply(e.GetTerm(), &b, a.results)
			}
		}
		a.applied = e.GetIndex()
	}
	if a.n.cfg.Events != nil {
		a.events = a.table.TakeEvents(a.events[:0])
		if len(a.events) > 0 {
			a.n.cfg.Events(a.events)
			clear(a.events)
		}
	}
	a.n.pub.setApplied(a.applied)
	for _, r := range a.results {
		a.n.pending.resolve(r)
	}
}

// newTable returns an empty table that records events when notify is set.
func newTable(notify bool) *lock.Table {
	t := lock.NewTable()
	t.SetNotify(notify)
	return t
}

// maybeSnapshot starts a snapshot once enough entries were applied since
// the last one. Only the table's view is taken here, between two applies;
// encoding it (which grows with the remembered request IDs, ~16 ms per
// million) and writing it happen on a goroutine of its own, so that applies
// and log writes go on meanwhile. One snapshot is made at a time.
func (a *applier) maybeSnapshot() {
	if (a.applied-a.snapIndex < a.every && !(a.joined && a.applied > a.snapIndex)) || a.snapping {
		return
	}
	a.snapping, a.joined = true, false
	a.snapIndex = a.applied
	view, m := a.table.View(), a.members
	a.n.wg.Add(1)
	go a.snapshot(a.applied, m, view)
}

// snapshot encodes view, the table at index, with m, the members there,
// makes it raft's snapshot, writes it to disk and then has the appender
// drop the log before it.
func (a *applier) snapshot(index uint64, m *membership, view *lock.SnapshotView) {
	defer a.n.wg.Done()
	defer func() { a.snapDone <- struct{}{} }() // buffered: one snapshot at a time
	start := time.Now()
	snap, err := a.mem.CreateSnapshot(index, m.cs, appendSnapshotData(nil, m.addrs, view.Encode()))
	if err != nil {
		if !errors.Is(err, raft.ErrSnapOutOfDate) { // a newer one came from the leader
			a.n.log.Warn("snapshot", "index", index, "err", err)
		}
		return
	}
	if err := a.disk.SaveSnapshot(snap); err != nil {
		a.n.stopOnError(err)
		return
	}
	if o := a.n.cfg.Observer; o != nil {
		o.SnapshotSaved(time.Since(start), len(snap.GetData()))
	}
	a.n.appender.q.put(appendWork{compact: index})
}
