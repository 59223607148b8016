package replication

import (
	"fmt"
	"time"

	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// loop is the goroutine that owns the raft.RawNode: it alone ticks it,
// steps messages into it, proposes (its proposer) and takes its Readys.
// Raft runs with AsyncStorageWrites: a Ready's log writes go to the
// appender's queue and its committed entries to the applier's, each as an
// ordered message whose responses come back through the local mailbox once
// the work is done. So the loop never waits for the disk: while the log is synced it
// goes on stepping acknowledgements, committing and handing out entries to
// apply, and the commands that queue meanwhile go out together as the next
// entry (group commit).
//
// Concurrency: peers reach it (through the handler) through stepc, the
// storage goroutines through local, Execute and the handler through props,
// the transport through reportc, the applier through appliedc, membership
// change requests through confc (membership.go); it publishes the leader,
// role, term and commit index in published, and the members. Everything
// else is its own. It stops with the node.
type loop struct {
	n   *Node
	rn  *raft.RawNode
	pub *published

	stepc    chan *raftpb.Message      // peers' messages
	local    *mailbox[*raftpb.Message] // the storage goroutines' responses to raft; transfer requests (transfer.go)
	props    *mailbox[lock.Command]    // commands to propose
	reportc  chan report               // the transport's news of peers
	appliedc chan struct{}             // the applier applied entries
	reads    readIndexes               // linearizable reads (readindex.go)
	confc    chan confRequest          // membership change requests, for the leader

	prop         proposer
	lastIndex    uint64            // index of the last entry handed to the appender
	outbox       []*raftpb.Message // peer messages of this round's Readys (flushOutbox)
	confIndex    uint64            // index of the last conf change entry handed out
	confProposed uint64            // index of the last conf change this node proposed
	membersMoved bool              // the members changed: followMembers has the transport follow
	wasMember    bool              // this node was among the members (setMembers)
	maxInflight  int               // Config.MaxInflight, or its default for the members (setMembers)
	autoInflight bool              // Config.MaxInflight was left to its default
}

func (l *loop) run() {
	defer l.n.wg.Done()
	t := time.NewTicker(l.n.cfg.TickInterval)
	defer t.Stop()
	defer l.prop.timer.Stop()
	for {
		// While the proposer cannot propose (MaxInflight entries await
		// commit), commands wait in the mailbox without waking the loop:
		// it takes them when the entry in flight commits. Otherwise a busy
		// leader's loop woke once per command to do nothing.
		var props <-chan struct{}
		if l.canPropose() {
			props = l.props.ready()
		}
		var reads <-chan struct{}
		if l.canStartRead() {
			reads = l.reads.q.ready()
		}
		select {
		case <-l.local.ready():
		case <-t.C:
			l.pub.ticks()
			l.rn.Tick()
			l.campaignAlone()
			l.expireReads()
			l.promoteCaughtUp()
		case <-reads:
			l.startRead()
		case m := <-l.stepc:
			l.stepMsg(m)
		more:
			for range 256 {
				select {
				case m := <-l.stepc:
					l.stepMsg(m)
				default:
					break more
				}
			}
		case <-props:
		case r := <-l.reportc:
			if r.snapshot {
				l.rn.ReportSnapshot(r.peer, r.status)
			} else {
				l.rn.ReportUnreachable(r.peer)
			}
		case <-l.prop.timer.C:
			l.propose(nil)
		case <-l.appliedc:
			l.scheduleTick()
			l.campaignAlone()
		case r := <-l.confc:
			l.handleConfRequest(r)
		case <-l.n.stopc:
			return
		case <-l.n.haltc:
			return
		}
		for _, m := range l.local.take() {
			if m.GetType() == raftpb.MsgTransferLeader {
				l.transfer(m.GetFrom()) // transfer.go
				continue
			}
			l.rn.Step(m)
		}
		l.drainReady()
		if len(l.reads.rounds) == 0 && l.startRead() {
			// The reads that waited for the round just answered: their
			// request (a follower's to the leader, a leader's heartbeats)
			// goes out with this round's messages.
			l.drainReady()
		}
		l.proposeHeld()
		l.flushOutbox()
		l.followMembers()
	}
}

// applied tells the loop that the applier applied entries, when the loop
// has a use for it: on the leader the proposer's next tick may move, and a
// lone node may campaign. A follower's loop is not woken: that was one
// wake-up per entry for nothing. (A node that becomes leader meanwhile
// proposes its first tick anyway, and hears of the next apply.)
func (l *loop) applied() {
	if l.pub.leading() || l.n.members.Load().soleVoter(l.n.cfg.ID) {
		signal(l.appliedc)
	}
}

// flushOutbox sends the peer messages of this round's Readys, less the
// appends a later one supersedes (see supersededAppends): the empty append
// announcing a commit, when the proposer's next entry follows it.
func (l *loop) flushOutbox() {
	l.outbox = supersededAppends(l.outbox)
	for i, m := range l.outbox {
		l.send(m)
		l.outbox[i] = nil
	}
	l.outbox = l.outbox[:0]
}

// drainReady handles every Ready raft has.
func (l *loop) drainReady() {
	for l.rn.HasReady() {
		l.handleReady(l.rn.Ready())
	}
}

// handleReady publishes state changes, queues storage work for the
// appender and the applier, and the rest for flushOutbox.
func (l *loop) handleReady(rd raft.Ready) {
	if !raft.IsEmptyHardState(rd.HardState) {
		if t := rd.HardState.GetTerm(); t != l.pub.term.Load() {
			l.pub.term.Store(t)
			l.pub.notifyChange()
		}
		l.pub.commit.Store(rd.HardState.GetCommit())
	}
	if rd.SoftState != nil {
		l.setSoftState(rd.SoftState) // after the term, which the proposer stamps
	}
	l.readStates(rd.ReadStates)
	for _, m := range rd.Messages {
		switch m.GetTo() {
		case raft.LocalAppendThread:
			if s := m.GetSnapshot(); s != nil && !raft.IsEmptySnap(s) {
				l.lastIndex = s.GetMetadata().GetIndex()
				l.installMembers(s)
			}
			if ents := m.GetEntries(); len(ents) > 0 {
				l.lastIndex = ents[len(ents)-1].GetIndex()
			}
			l.n.appender.q.put(appendWork{msg: m})
		case raft.LocalApplyThread:
			l.n.applier.q.put(applyWork{msg: m, members: l.applyConfChanges(m.GetEntries())})
		default:
			l.outbox = append(l.outbox, m) // sent by flushOutbox, once the proposer has proposed
		}
	}
	if l.prop.tickNow {
		l.prop.tickNow = false
		l.propose(nil)
	}
}

// campaignAlone makes the only member of a one-node cluster leader at once,
// instead of after an election timeout: as soon as it has applied the
// configuration that makes it the sole voter.
func (l *loop) campaignAlone() {
	if !l.n.members.Load().soleVoter(l.n.cfg.ID) || l.pub.roleNow() != raft.StateFollower {
		return
	}
	if l.rn.BasicStatus().Applied >= l.confIndex {
		l.rn.Campaign()
	}
}

func (l *loop) setSoftState(s *raft.SoftState) {
	old := l.pub.leader.Swap(s.Lead)
	oldRole := l.pub.role.Swap(s.RaftState)
	if old != s.Lead {
		l.pub.leaderChanges.Add(1)
	}
	if old != s.Lead || oldRole != s.RaftState {
		l.n.log.Info("raft state", "role", roleName(s.RaftState), "leader", s.Lead, "term", l.pub.term.Load())
		l.pub.notifyChange()
	}
	if s.RaftState == raft.StateLeader && oldRole != raft.StateLeader {
		l.prop.tickNow = true // the term's first stamp
	}
}

// stepMsg steps a message from a peer or a storage goroutine into raft. A
// peer's proposal is dropped: followers never forward proposals through
// raft (commands come as FORWARD(S) frames, membership changes as ADMIN ones,
// each checked), so one is forged. A
// heartbeat carries the commit index up to what this node acknowledged; one
// beyond this node's log means the node lost entries it had acknowledged
// (a data directory restored from an older copy, damaged, or written with
// --fsync never before a machine crash). Raft would panic on it; the node
// stops instead, saying why.
func (l *loop) stepMsg(m *raftpb.Message) {
	if m.GetType() == raftpb.MsgProp {
		return
	}
	if m.GetType() == raftpb.MsgHeartbeat && m.GetCommit() > l.lastIndex {
		l.n.fail(fmt.Errorf("node %d (leading term %d) says index %d is committed with this node's acknowledgement, "+
			"but this node's log ends at %d: it lost acknowledged entries and must not take part as its old self "+
			"(see docs/DESIGN.md, Recovering a node)", m.GetFrom(), m.GetTerm(), m.GetCommit(), l.lastIndex))
		return
	}
	l.rn.Step(m)
}

// send hands a raft message to its peer's queue; it never blocks. A drop is
// reported to raft at once.
func (l *loop) send(m *raftpb.Message) {
	if l.n.tr.Send(m) {
		l.rn.ReportUnreachable(m.GetTo())
		if m.GetType() == raftpb.MsgSnap {
			l.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
		}
	}
}

// deliver sends a storage goroutine's response: to raft on this node
// through the loop's local mailbox, or to a peer. A dropped peer message is
// retried by raft. It never blocks.
func (n *Node) deliver(m *raftpb.Message) {
	if m.GetTo() == n.cfg.ID {
		n.loop.local.put(m)
		return
	}
	if n.tr.Send(m) {
		handler{n}.ReportUnreachable(m.GetTo())
	}
}

// report is a peer link's news for raft.
type report struct {
	peer     uint64
	snapshot bool // a snapshot was sent (status), else the peer is unreachable
	status   raft.SnapshotStatus
}

// submit queues cmd for proposal on this node; when the queue is full it is
// dropped (its sender resends). A script request goes to the script runner
// at once, on the leader (elsewhere it is dropped and resent): it runs
// while the entry in flight awaits commit, and its effects join the next.
func (n *Node) submit(cmd lock.Command) {
	if cmd.Op == lock.OpScript {
		if n.pub.leading() {
			n.scripts.enqueue(cmd)
		}
		return
	}
	n.loop.props.put(cmd)
}

// submitAll submits cmds as submit does each, in order, with one put into
// the proposal mailbox for those that are not script requests. It
// overwrites cmds.
func (n *Node) submitAll(cmds []lock.Command) {
	props := cmds[:0]
	for _, c := range cmds {
		if c.Op == lock.OpScript {
			n.submit(c)
		} else {
			props = append(props, c)
		}
	}
	n.loop.props.putAll(props)
}
