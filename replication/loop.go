package replication

import (
	"fmt"
	"slices"
	"time"

	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// run is the goroutine that owns the raft.RawNode: it alone ticks it, steps
// messages into it, proposes and takes its Readys. Raft runs with
// AsyncStorageWrites: a Ready's log writes go to the append goroutine and its
// committed entries to the apply goroutine, each as an ordered message whose
// responses come back through stepc once the work is done. So the loop never
// waits for the disk: while the log is synced it goes on stepping
// acknowledgements, committing and handing out entries to apply, and the
// commands that queue meanwhile go out together as the next entry (group
// commit).
func (n *Node) run() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.TickInterval)
	defer t.Stop()
	defer n.prop.timer.Stop()
	for {
		// Storage work waits in queues here, never blocking the loop: the
		// storage goroutines deliver their responses through stepc, which
		// only this loop drains.
		var appendc chan *raftpb.Message
		var nextAppend *raftpb.Message
		if len(n.appendQ) > 0 {
			appendc, nextAppend = n.appendc, n.appendQ[0]
		}
		var applyc chan applyItem
		var nextApply applyItem
		if len(n.applyQ) > 0 {
			applyc, nextApply = n.applyc, n.applyQ[0]
		}
		select {
		case appendc <- nextAppend:
			n.appendQ = n.appendQ[1:]
		case applyc <- nextApply:
			n.applyQ = n.applyQ[1:]
		case <-t.C:
			n.rn.Tick()
			n.campaignAlone()
		case m := <-n.stepc:
			n.stepMsg(m)
		more:
			for range 256 {
				select {
				case m := <-n.stepc:
					n.stepMsg(m)
				default:
					break more
				}
			}
		case c := <-n.propc:
			n.hold(c)
		drain:
			for range maxBatch {
				select {
				case c := <-n.propc:
					n.hold(c)
				default:
					break drain
				}
			}
		case r := <-n.reportc:
			if r.snapshot {
				n.rn.ReportSnapshot(r.peer, r.status)
			} else {
				n.rn.ReportUnreachable(r.peer)
			}
		case <-n.prop.timer.C:
			n.propose(nil)
		case <-n.appliedc:
			n.scheduleTick()
			n.campaignAlone()
		case <-n.stopc:
			return
		case <-n.haltc:
			return
		}
		n.drainReady()
		n.proposeHeld()
		n.flushOutbox()
		n.flushStorageQueues()
	}
}

// flushOutbox sends the peer messages of this round's Readys, less the
// appends a later one supersedes (see supersededAppends): the empty append
// announcing a commit, when the proposer's next entry follows it.
func (n *Node) flushOutbox() {
	n.outbox = supersededAppends(n.outbox)
	for i, m := range n.outbox {
		n.send(m)
		n.outbox[i] = nil
	}
	n.outbox = n.outbox[:0]
}

// drainReady handles every Ready raft has.
func (n *Node) drainReady() {
	for n.rn.HasReady() {
		n.handleReady(n.rn.Ready())
	}
}

// flushStorageQueues hands queued storage work over as far as the storage
// goroutines' channels have room.
func (n *Node) flushStorageQueues() {
	for len(n.appendQ) > 0 {
		select {
		case n.appendc <- n.appendQ[0]:
			n.appendQ[0] = nil
			n.appendQ = n.appendQ[1:]
			continue
		default:
		}
		break
	}
	for len(n.applyQ) > 0 {
		select {
		case n.applyc <- n.applyQ[0]:
			n.applyQ[0] = applyItem{}
			n.applyQ = n.applyQ[1:]
			continue
		default:
		}
		break
	}
}

// handleReady publishes state changes, queues storage work for its
// goroutines and the rest for flushOutbox.
func (n *Node) handleReady(rd raft.Ready) {
	if !raft.IsEmptyHardState(rd.HardState) {
		if t := rd.HardState.GetTerm(); t != n.term.Load() {
			n.term.Store(t)
			n.notifyChange()
		}
		n.commit.Store(rd.HardState.GetCommit())
	}
	if rd.SoftState != nil {
		n.setSoftState(rd.SoftState) // after the term, which the proposer stamps
	}
	for _, m := range rd.Messages {
		switch m.GetTo() {
		case raft.LocalAppendThread:
			if s := m.GetSnapshot(); s != nil && !raft.IsEmptySnap(s) {
				n.lastIndex = s.GetMetadata().GetIndex()
			}
			if ents := m.GetEntries(); len(ents) > 0 {
				n.lastIndex = ents[len(ents)-1].GetIndex()
			}
			n.appendQ = append(n.appendQ, m)
		case raft.LocalApplyThread:
			n.applyConfChanges(m.GetEntries())
			n.applyQ = append(n.applyQ, applyItem{msg: m})
		default:
			n.outbox = append(n.outbox, m) // sent by flushOutbox, once the proposer has proposed
		}
	}
	if n.prop.tickNow {
		n.prop.tickNow = false
		n.propose(nil)
	}
}

// applyConfChanges applies the membership changes among committed entries to
// raft. Membership is fixed after bootstrap, so doing it when the entries are
// handed out rather than when the table applies them changes nothing.
func (n *Node) applyConfChanges(ents []*raftpb.Entry) {
	for _, e := range ents {
		var cc raftpb.ConfChangeI
		switch e.GetType() {
		case raftpb.EntryConfChange:
			c := &raftpb.ConfChange{}
			if err := proto.Unmarshal(e.GetData(), c); err != nil {
				n.log.Error("undecodable conf change", "index", e.GetIndex(), "err", err)
				continue
			}
			cc = c
		case raftpb.EntryConfChangeV2:
			c := &raftpb.ConfChangeV2{}
			if err := proto.Unmarshal(e.GetData(), c); err != nil {
				n.log.Error("undecodable conf change", "index", e.GetIndex(), "err", err)
				continue
			}
			cc = c
		default:
			continue
		}
		n.confState.Store(n.rn.ApplyConfChange(cc))
		n.confIndex = e.GetIndex()
	}
}

// campaignAlone makes the only member of a one-node cluster leader at once,
// instead of after an election timeout: as soon as it has applied the
// configuration that makes it the sole voter.
func (n *Node) campaignAlone() {
	if len(n.cfg.Peers) != 1 || n.role.Load().(raft.StateType) != raft.StateFollower {
		return
	}
	if slices.Contains(n.confState.Load().GetVoters(), n.cfg.ID) && n.rn.BasicStatus().Applied >= n.confIndex {
		n.rn.Campaign()
	}
}

func (n *Node) setSoftState(s *raft.SoftState) {
	old := n.leader.Swap(s.Lead)
	oldRole := n.role.Swap(s.RaftState)
	if old != s.Lead || oldRole != s.RaftState {
		n.log.Info("raft state", "role", roleName(s.RaftState), "leader", s.Lead, "term", n.term.Load())
		n.notifyChange()
	}
	if s.RaftState == raft.StateLeader && oldRole != raft.StateLeader {
		n.prop.tickNow = true // the term's first stamp
	}
}

// stepMsg steps a message from a peer or a storage goroutine into raft. A
// heartbeat carries the commit index up to what this node acknowledged; one
// beyond this node's log means the node lost entries it had acknowledged
// (a data directory restored from an older copy, damaged, or written with
// --fsync never before a machine crash). Raft would panic on it; the node
// stops instead, saying why.
func (n *Node) stepMsg(m *raftpb.Message) {
	if m.GetType() == raftpb.MsgHeartbeat && m.GetCommit() > n.lastIndex {
		n.fail(fmt.Errorf("node %d (leading term %d) says index %d is committed with this node's acknowledgement, "+
			"but this node's log ends at %d: it lost acknowledged entries and must not take part as its old self "+
			"(see docs/DESIGN.md, Recovering a node)", m.GetFrom(), m.GetTerm(), m.GetCommit(), n.lastIndex))
		return
	}
	n.rn.Step(m)
}

// notifyChange wakes everyone waiting on a leader or term change.
func (n *Node) notifyChange() {
	ch := make(chan struct{})
	old := n.changed.Swap(&ch)
	close(*old)
}

// leaderChanged returns a channel closed at the next leader or term change.
func (n *Node) leaderChanged() <-chan struct{} { return *n.changed.Load() }

// send hands a raft message to its peer's queue; it never blocks. Only the
// run goroutine calls it (it reports drops to raft directly).
func (n *Node) send(m *raftpb.Message) {
	if n.tr.Send(m) {
		n.rn.ReportUnreachable(m.GetTo())
		if m.GetType() == raftpb.MsgSnap {
			n.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
		}
	}
}

// deliver sends a storage goroutine's response: to raft on this node through
// stepc, or to a peer. A dropped peer message is retried by raft.
func (n *Node) deliver(m *raftpb.Message) bool {
	if m.GetTo() == n.cfg.ID {
		select {
		case n.stepc <- m:
			return true
		case <-n.stopc:
			return false
		}
	}
	if n.tr.Send(m) {
		handler{n}.ReportUnreachable(m.GetTo())
	}
	return true
}

// report is a peer link's news for raft.
type report struct {
	peer     uint64
	snapshot bool // a snapshot was sent (status), else the peer is unreachable
	status   raft.SnapshotStatus
}

// submit queues cmd for proposal on this node; when the queue is full it is
// dropped (its sender resends).
func (n *Node) submit(cmd lock.Command) {
	select {
	case n.propc <- cmd:
	default:
	}
}
