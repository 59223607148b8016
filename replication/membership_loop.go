package replication

import (
	"maps"
	"sync/atomic"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The loop's side of membership changes (see membership.go): it proposes
// them on the leader, promotes caught-up learners, applies committed
// changes and has the transport follow the members.

// handleConfRequest runs in the loop: the leader proposes a change that
// fits, or answers why not.
func (l *loop) handleConfRequest(r confRequest) {
	err := l.checkProposal(r.change)
	if err == nil {
		cc := &raftpb.ConfChange{Type: r.change.op.Enum(), NodeId: proto.Uint64(r.change.id),
			Context: appendConfContext(nil, r.req, r.change.addr)}
		if err = l.rn.ProposeConfChange(cc); err == nil {
			l.drainReady() // learns the entry's index
			l.confProposed = l.lastIndex
			l.n.log.Info("membership change proposed", "op", r.change.op, "member", r.change.id, "addr", r.change.addr, "index", l.lastIndex)
			return
		}
	}
	l.n.answerConf(r.from, r.req, err)
}

// checkProposal is what the leader checks before it proposes a change: it
// leads; a quorum of voters was heard from within an election timeout (see
// fresh); no change is pending, by raft's own rule (a change is pending
// until applied; a new leader's log tail may hold one until it applied an
// entry of its own term), so raft never drops a change the leader
// proposes; and the change fits.
func (l *loop) checkProposal(c memberChange) error {
	if !l.pub.leading() {
		return refuse(ErrNoLeader, "this node stopped leading; retry")
	}
	if !l.n.fresh() {
		return refuse(ErrNoQuorum, "the leader has not heard from a quorum of voters within an election timeout; membership unchanged")
	}
	st := l.rn.BasicStatus()
	if t, err := l.n.mem.Term(st.Applied); err != nil || t != st.HardState.GetTerm() || st.Applied < l.confProposed {
		return refuse(ErrChangePending, "another membership change is pending (applied %d); retry when it is applied", st.Applied)
	}
	return l.n.members.Load().checkChange(c, true)
}

// promoteCaughtUp runs in the loop at each tick. On the leader it
// publishes each member's Match (Members), and proposes to promote a
// learner that holds the entry of the last change and whose Match is within
// PromoteLag of the last index, when no change is pending.
func (l *loop) promoteCaughtUp() {
	if !l.pub.leading() {
		l.n.matches.Store(nil)
		return
	}
	st := l.rn.Status()
	match := make(map[uint64]uint64, len(st.Progress))
	for id, pr := range st.Progress {
		match[id] = pr.Match
	}
	l.n.matches.Store(&match)
	if l.n.cfg.ManualPromote {
		return
	}
	m := l.n.members.Load()
	for _, id := range m.cs.GetLearners() {
		pr := st.Progress[id]
		if promotable(pr.Match, pr.RecentActive, m.index, l.lastIndex, l.n.cfg.PromoteLag) {
			c := memberChange{op: raftpb.ConfChangeAddNode, id: id}
			if l.checkProposal(c) == nil {
				l.n.log.Info("promoting a caught-up learner", "member", id, "match", match[id], "last", l.lastIndex)
				l.handleConfRequest(confRequest{from: l.n.cfg.ID, change: c})
			}
			return
		}
	}
}

// applyConfChanges applies the membership changes among committed entries
// that are handed out to be applied, in log order: each is checked against
// the members at its point of the log (every node decides alike) and
// applied to raft, or, refused, applied as a no-op. The waiting request
// hears the outcome. It returns the members after the entries when they
// changed, for the applier's snapshots.
func (l *loop) applyConfChanges(ents []*raftpb.Entry) *membership {
	var changed *membership
	for _, e := range ents {
		cc := &raftpb.ConfChange{}
		switch e.GetType() {
		case raftpb.EntryConfChange:
			if err := proto.Unmarshal(e.GetData(), cc); err != nil {
				l.n.log.Error("undecodable conf change", "index", e.GetIndex(), "err", err)
				continue
			}
		case raftpb.EntryConfChangeV2:
			v2 := &raftpb.ConfChangeV2{}
			err := proto.Unmarshal(e.GetData(), v2)
			v1, ok := v2.AsV1()
			if err != nil || !ok {
				l.n.log.Error("conf change lockd does not make", "index", e.GetIndex(), "err", err)
				continue
			}
			cc = v1
		default:
			continue
		}
		req, addr := decodeConfContext(cc.GetContext())
		c := memberChange{op: cc.GetType(), id: cc.GetNodeId(), addr: addr}
		if c.addr == "" && c.op != raftpb.ConfChangeRemoveNode {
			c.addr = l.n.members.Load().addrs[c.id] // a promotion keeps the address
			if c.addr == "" {
				c.addr = l.n.cfg.Peers[c.id] // a bootstrap entry of an older lockd
			}
		}
		m := l.n.members.Load()
		err := m.checkChange(c, false)
		if err != nil {
			l.n.log.Warn("membership change refused", "index", e.GetIndex(), "op", c.op, "member", c.id, "err", err)
			cc.NodeId = proto.Uint64(raft.None) // raft applies it as a no-op
			l.rn.ApplyConfChange(cc)
		} else {
			cs := l.rn.ApplyConfChange(cc)
			changed = m.after(e.GetIndex(), cs, c)
			l.n.members.Store(changed)
			l.n.log.Info("membership changed", "index", e.GetIndex(), "op", c.op, "member", c.id, "addr", c.addr,
				"voters", cs.GetVoters(), "learners", cs.GetLearners())
		}
		l.confIndex = e.GetIndex()
		if req != 0 {
			l.n.confWaits.resolve(req, err)
		}
	}
	if changed != nil {
		l.membersMoved = true
	}
	return changed
}

// followMembers, called by the loop after it sent a round's messages, has
// the transport follow the members when they changed: a removed member's
// link is dropped only after the messages that tell it the commit of its
// removal were queued (the link writes what is queued before it ends).
func (l *loop) followMembers() {
	if l.membersMoved {
		l.membersMoved = false
		l.setMembers(l.n.members.Load())
	}
}

// installMembers takes the members from a snapshot the leader sent, as
// raft took its ConfState.
func (l *loop) installMembers(s *raftpb.Snapshot) {
	addrs, _, err := splitSnapshotData(s.GetData())
	if err != nil {
		return // the applier's restore fails on it and stops the node
	}
	cs := proto.Clone(s.GetMetadata().GetConfState()).(*raftpb.ConfState)
	l.n.members.Store(&membership{index: s.GetMetadata().GetIndex(), cs: cs, addrs: l.n.knownAddrs(cs, addrs)})
	l.membersMoved = true
}

// setMembers publishes m and has the transport, the freshness record and
// the default MaxInflight follow it. A node that was a member and is no longer one (removed) keeps
// no peer; one that never was (a joining node replaying the log up to the
// change that adds it) keeps m's.
func (l *loop) setMembers(m *membership) {
	l.n.members.Store(m)
	member := m.role(l.n.cfg.ID) != ""
	removed := l.wasMember && !member
	l.wasMember = l.wasMember || member
	l.n.followMembers(m, removed)
	if l.autoInflight {
		l.maxInflight = 1
		if m.soleVoter(l.n.cfg.ID) {
			l.maxInflight = maxHeld
		}
	}
	if removed {
		l.n.log.Warn("this node is no longer a member of the cluster; it can be stopped")
	}
}

// followMembers makes the transport's peers and the freshness record (heard)
// those of m, or none for a removed node.
func (n *Node) followMembers(m *membership, removed bool) {
	peers := map[uint64]string{}
	if !removed {
		peers = maps.Clone(m.addrs)
	}
	heard := make(map[uint64]*atomic.Int64, len(peers))
	old := *n.heardAt.Load()
	for id := range peers {
		if id == n.cfg.ID {
			continue
		}
		if h := old[id]; h != nil {
			heard[id] = h
		} else {
			heard[id] = new(atomic.Int64)
		}
	}
	n.heardAt.Store(&heard)
	n.tr.SetPeers(peers)
}

// knownAddrs completes a snapshot's addresses from Config.Peers for the
// members it lacks (a snapshot written before members were replicated).
func (n *Node) knownAddrs(cs *raftpb.ConfState, addrs map[uint64]string) map[uint64]string {
	out := maps.Clone(addrs)
	if out == nil {
		out = map[uint64]string{}
	}
	for _, set := range [][]uint64{cs.GetVoters(), cs.GetLearners()} {
		for _, id := range set {
			if out[id] == "" && n.cfg.Peers[id] != "" {
				out[id] = n.cfg.Peers[id]
			}
		}
	}
	return out
}

// promotable reports whether a learner whose log matches the leader's up to
// match may become a voter: it holds the entry that added it (added), it
// lags the leader's last index by at most lag, and the leader heard from it
// within the last election timeout (active: raft's Progress.RecentActive,
// kept by CheckQuorum). A learner that caught up and then died is not
// promoted: as a voter it would count toward a quorum it cannot make (one
// voter and a dead one make a cluster that cannot commit).
func promotable(match uint64, active bool, added, last, lag uint64) bool {
	return active && match >= added && match+lag >= last
}
