package replication

import (
	"errors"
	"fmt"
	"time"

	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// applyItem is one unit of work for the apply goroutine: committed entries
// (msg), or a snapshot from the leader to restore the table from.
type applyItem struct {
	msg     *raftpb.Message
	restore *raftpb.Snapshot
}

// appendLoop is the goroutine that owns the log on disk. It takes the
// MsgStorageAppend messages of successive Readys in order, writes them all,
// syncs once, updates the in-memory log raft reads, and only then delivers
// their responses (votes, acknowledgements; an acknowledgement a later one
// in the batch supersedes is dropped, see supersededAcks): nothing is
// promised before it is durable. It also drops the log before a snapshot the node has written.
func (n *Node) appendLoop() {
	defer n.wg.Done()
	var batch, responses []*raftpb.Message
	for {
		select {
		case m := <-n.appendc:
			batch = append(batch[:0], m)
		more:
			for len(batch) < 256 {
				select {
				case m := <-n.appendc:
					batch = append(batch, m)
				default:
					break more
				}
			}
			if err := n.persist(batch); err != nil {
				n.stopOnError(err)
				return
			}
			responses = responses[:0]
			for _, m := range batch {
				responses = append(responses, m.GetResponses()...)
			}
			for _, r := range supersededAcks(responses) {
				if !n.deliver(r) {
					return
				}
			}
		case index := <-n.compc:
			if err := n.compactLog(index); err != nil {
				n.stopOnError(err)
				return
			}
		case <-n.stopc:
			return
		case <-n.haltc:
			return
		}
	}
}

// persist writes the batch's snapshots, entries and hard states with one
// sync (none when only the commit index moved: the sync rule in
// internal/datadir's doc), then makes them visible to raft's in-memory log.
func (n *Node) persist(batch []*raftpb.Message) error {
	for _, m := range batch {
		if s := m.GetSnapshot(); s != nil && !raft.IsEmptySnap(s) {
			if err := n.installSnapshot(s); err != nil {
				return err
			}
		}
		if err := n.disk.Write(hardStateOf(m), m.GetEntries()); err != nil {
			return err
		}
	}
	if err := n.disk.Flush(); err != nil {
		return err
	}
	for _, m := range batch {
		if err := n.mem.Append(m.GetEntries()); err != nil {
			return err
		}
		if hs := hardStateOf(m); hs != nil {
			if err := n.mem.SetHardState(hs); err != nil {
				return err
			}
		}
	}
	return nil
}

// hardStateOf returns the hard state a MsgStorageAppend carries, or nil.
func hardStateOf(m *raftpb.Message) *raftpb.HardState {
	if m.Term == nil && m.Vote == nil && m.Commit == nil {
		return nil
	}
	return &raftpb.HardState{Term: m.Term, Vote: m.Vote, Commit: m.Commit}
}

// installSnapshot persists a snapshot from the leader, replaces the log with
// it, and queues the table's restore behind the entries already queued.
func (n *Node) installSnapshot(s *raftpb.Snapshot) error {
	if err := n.disk.SaveSnapshot(s); err != nil {
		return err
	}
	if err := n.disk.ResetLog(s.GetMetadata().GetIndex()); err != nil {
		return err
	}
	if err := n.mem.ApplySnapshot(s); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		return err
	}
	select {
	case n.applyc <- applyItem{restore: s}:
	case <-n.stopc:
	}
	return nil
}

// compactLog drops the log before a snapshot at index that is on disk,
// keeping SnapshotEntries/2 entries for slow followers.
func (n *Node) compactLog(index uint64) error {
	keep := n.cfg.SnapshotEntries / 2
	if index <= keep {
		return nil
	}
	compact := index - keep
	if err := n.mem.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return err
	}
	return n.disk.Compact(compact)
}

// applyLoop is the goroutine that applies committed entries to the table in
// log order, answers their waiters, and tells raft they are applied.
func (n *Node) applyLoop() {
	defer n.wg.Done()
	for {
		select {
		case it := <-n.applyc:
			if it.restore != nil {
				if err := n.restore(it.restore); err != nil {
					n.stopOnError(err)
					return
				}
				continue
			}
			n.apply(it.msg.GetEntries())
			for _, r := range it.msg.GetResponses() {
				if !n.deliver(r) {
					return
				}
			}
			signal(n.appliedc)
			n.maybeSnapshot()
		case <-n.stopc:
			return
		case <-n.haltc:
			return
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (n *Node) restore(s *raftpb.Snapshot) error {
	index := s.GetMetadata().GetIndex()
	if index <= n.applied.Load() {
		return nil
	}
	if err := n.table.Restore(s.GetData()); err != nil {
		return fmt.Errorf("snapshot from leader at %d: %w", index, err)
	}
	n.snapIndex = index
	n.applied.Store(index)
	n.appliedT.Store(int64(time.Since(n.start)))
	n.notifyApplied()
	n.log.Info("installed snapshot", "index", index, "locks", n.table.Len())
	return nil
}

// apply applies committed entries in order and answers their waiters. The
// applied index moves before the waiters hear their results, so a client
// that got its reply never sees an applied index from before its write.
func (n *Node) apply(ents []*raftpb.Entry) {
	n.results = n.results[:0]
	for _, e := range ents {
		if e.GetIndex() <= n.applied.Load() {
			continue
		}
		if e.GetType() == raftpb.EntryNormal && len(e.GetData()) > 0 {
			b, err := lock.DecodeBatch(e.GetData())
			if err != nil {
				// Every node skips the same entry, so tables stay equal.
				n.log.Error("skipping undecodable entry", "index", e.GetIndex(), "err", err)
			} else {
				n.results = n.table.Apply(e.GetTerm(), &b, n.results)
			}
		}
		n.applied.Store(e.GetIndex())
	}
	n.appliedT.Store(int64(time.Since(n.start)))
	for _, r := range n.results {
		n.pending.resolve(r)
	}
	n.notifyApplied()
}

// notifyApplied wakes the readers waiting in WaitApplied.
func (n *Node) notifyApplied() {
	ch := make(chan struct{})
	close(*n.advanced.Swap(&ch))
}

// maybeSnapshot starts a snapshot once enough entries were applied since
// the last one. Only the table's view is taken here, between two applies;
// encoding it (which grows with the remembered request IDs, ~16 ms per
// million) and writing it happen on a goroutine of its own, so that applies
// and log writes go on meanwhile. One snapshot is made at a time.
func (n *Node) maybeSnapshot() {
	applied := n.applied.Load()
	if applied-n.snapIndex < n.cfg.SnapshotEntries || !n.snapping.CompareAndSwap(false, true) {
		return
	}
	n.snapIndex = applied
	view, cs := n.table.View(), n.confState.Load()
	n.wg.Add(1)
	go n.snapshot(applied, cs, view)
}

// snapshot encodes view, the table at index, makes it raft's snapshot,
// writes it to disk and then has the append goroutine drop the log before it.
func (n *Node) snapshot(index uint64, cs *raftpb.ConfState, view *lock.SnapshotView) {
	defer n.wg.Done()
	defer n.snapping.Store(false)
	snap, err := n.mem.CreateSnapshot(index, cs, view.Encode())
	if err != nil {
		if !errors.Is(err, raft.ErrSnapOutOfDate) { // a newer one came from the leader
			n.log.Warn("snapshot", "index", index, "err", err)
		}
		return
	}
	if err := n.disk.SaveSnapshot(snap); err != nil {
		n.stopOnError(err)
		return
	}
	select {
	case n.compc <- index:
	case <-n.stopc:
	case <-n.haltc:
	}
}
