package replication

import (
	"errors"

	"github.com/lockd/lockd/internal/datadir"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// appender is the goroutine that owns the log on disk. It takes, in order,
// the MsgStorageAppend messages of the loop's Readys, writes all that are
// queued, syncs once, updates the in-memory log raft reads, and only then
// delivers their responses (votes, acknowledgements; an acknowledgement a
// later one in the batch supersedes is dropped, see supersededAcks):
// nothing is promised before it is durable. It also drops the log before a
// snapshot the applier has written.
//
// Concurrency: its queue takes work from the loop (appends) and from the
// applier's snapshot goroutine (compactions); everything else is its own.
// It stops with the node, and stops the node when the disk fails.
type appender struct {
	n    *Node
	disk *datadir.Dir
	mem  *raft.MemoryStorage
	keep uint64 // entries kept behind a snapshot for slow followers
	q    *mailbox[appendWork]

	responses []*raftpb.Message
}

// appendWork is one item of the appender's queue: a Ready's storage append,
// or the index of a snapshot on disk to compact the log before.
type appendWork struct {
	msg     *raftpb.Message
	compact uint64
}

func (a *appender) run() {
	defer a.n.wg.Done()
	for {
		select {
		case <-a.q.ready():
		case <-a.n.stopc:
			return
		case <-a.n.haltc:
			return
		}
		if err := a.work(a.q.take()); err != nil {
			a.n.stopOnError(err)
			return
		}
	}
}

// work does a batch of queued work in order: each run of appends with one
// sync, then their responses.
func (a *appender) work(items []appendWork) error {
	for len(items) > 0 {
		if index := items[0].compact; index != 0 {
			if err := a.compact(index); err != nil {
				return err
			}
			items = items[1:]
			continue
		}
		k := 1
		for k < len(items) && items[k].compact == 0 {
			k++
		}
		if err := a.persist(items[:k]); err != nil {
			return err
		}
		a.responses = a.responses[:0]
		for _, it := range items[:k] {
			a.responses = append(a.responses, it.msg.GetResponses()...)
		}
		for _, r := range supersededAcks(a.responses) {
			a.n.deliver(r)
		}
		items = items[k:]
	}
	return nil
}

// persist writes the batch's snapshots, entries and hard states with one
// sync (none when only the commit index moved: the sync rule in
// internal/datadir's doc), then makes them visible to raft's in-memory log.
func (a *appender) persist(batch []appendWork) error {
	for _, it := range batch {
		m := it.msg
		if s := m.GetSnapshot(); s != nil && !raft.IsEmptySnap(s) {
			if err := a.installSnapshot(s); err != nil {
				return err
			}
		}
		if err := a.disk.Write(hardStateOf(m), m.GetEntries()); err != nil {
			return err
		}
	}
	if err := a.disk.Flush(); err != nil {
		return err
	}
	for _, it := range batch {
		if err := a.mem.Append(it.msg.GetEntries()); err != nil {
			return err
		}
		if hs := hardStateOf(it.msg); hs != nil {
			if err := a.mem.SetHardState(hs); err != nil {
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
// it, and queues the table's restore for the applier. Raft hands out no
// committed entry past the snapshot before this append is acknowledged, so
// the restore is queued behind the entries before it and ahead of those
// after it.
func (a *appender) installSnapshot(s *raftpb.Snapshot) error {
	if err := a.disk.SaveSnapshot(s); err != nil {
		return err
	}
	if err := a.disk.ResetLog(s.GetMetadata().GetIndex()); err != nil {
		return err
	}
	if err := a.mem.ApplySnapshot(s); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		return err
	}
	a.n.applier.q.put(applyWork{restore: s})
	return nil
}

// compact drops the log before a snapshot at index that is on disk,
// keeping a.keep entries for slow followers.
func (a *appender) compact(index uint64) error {
	if index <= a.keep {
		return nil
	}
	c := index - a.keep
	if err := a.mem.Compact(c); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return err
	}
	return a.disk.Compact(c)
}
