package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Leader hand-off. A transfer request reaches the leader's loop as a
// MsgTransferLeader in its local mailbox: put there by TransferLeader on
// the leader itself, or by the handler when a follower forwards a
// lock.OpLeaderTransfer in a FORWARD(S) frame (raft's own forwarding of the
// message would carry the transferee's id as its sender, which the cluster
// port refuses from any other peer). The loop picks the transferee when
// none is named (mostCaughtUp) and hands it to raft, which catches it up,
// tells it to campaign at once (MsgTimeoutNow, no pre-vote) and drops
// proposals meanwhile; their senders resend to the new leader when they
// see it. Raft gives up after one election timeout. Whoever asked waits for
// its own view of the leader to change.

// Errors of TransferLeader. The first two are answered before anything is
// sent; after ErrTransferTimeout the leadership may still move (see
// TransferLeader).
var (
	ErrUnknownNode     = errors.New("no such node")
	ErrNotVoter        = errors.New("node is not a voter")
	ErrTransferTimeout = errors.New("leader transfer timed out")
)

// TransferBound is how long TransferLeader waits for the leadership to
// move: two election timeouts (2 × ElectionTicks × TickInterval, 2 s with
// the defaults). Raft abandons a transfer after one; the second leaves
// time for the new leader's first heartbeat to reach this node.
func (n *Node) TransferBound() time.Duration {
	return 2 * time.Duration(n.cfg.ElectionTicks) * n.cfg.TickInterval
}

// TransferLeader moves the leadership to the voter target, or, when target
// is 0, to the voter the leader finds most caught up (the highest Match
// among those it heard from lately; the lowest id on a tie). Any node may
// call it: a follower forwards the request to the leader. It returns the
// new leader once this node follows it, the leader itself when target
// already leads; or ErrUnknownNode, ErrNotVoter (target is a learner, or
// no other voter exists), ErrNoLeader or ErrClosed without sending
// anything; or ErrTransferTimeout when the leadership did not move to the
// target within TransferBound (or by ctx's deadline, if earlier). The
// leader raft abandons a transfer after one election timeout, so a timed
// out transfer has normally changed nothing; only a transferee that had
// already been told to campaign may still win its election.
func (n *Node) TransferLeader(ctx context.Context, target uint64) (uint64, error) {
	if err := n.failed(); err != nil {
		return 0, err
	}
	if err := n.checkTransferee(target); err != nil {
		return 0, err
	}
	lead := n.pub.leader.Load()
	switch {
	case lead == 0:
		return 0, ErrNoLeader
	case lead == target:
		return lead, nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.TransferBound())
	defer cancel()
	changed := n.pub.leaderChanged()
	if lead == n.cfg.ID {
		n.requestTransfer(target)
	} else {
		id, err := n.newID()
		if err != nil {
			return 0, err
		}
		n.tr.Forward(lead, lock.Command{Op: lock.OpLeaderTransfer, ID: id, Target: target})
	}
	for {
		select {
		case <-changed:
			changed = n.pub.leaderChanged()
			if now := n.pub.leader.Load(); now != 0 && now != lead && (target == 0 || now == target) {
				n.log.Info("leadership transferred", "from", lead, "to", now)
				return now, nil
			}
		case <-ctx.Done():
			if now := n.pub.leader.Load(); now != 0 {
				return 0, fmt.Errorf("%w: node %d leads after %v", ErrTransferTimeout, now, n.TransferBound())
			}
			return 0, fmt.Errorf("%w: no leader after %v", ErrTransferTimeout, n.TransferBound())
		case <-n.stopc:
			return 0, ErrClosed
		case <-n.haltc:
			return 0, n.failed()
		}
	}
}

// checkTransferee checks target (0: any) against the membership this node
// knows.
func (n *Node) checkTransferee(target uint64) error {
	cs := n.members.Load().cs
	voters := cs.GetVoters()
	switch {
	case len(voters) == 0:
		// A new node has not yet applied the entries that make the
		// membership: it knows of no leader to ask either.
		return fmt.Errorf("%w: the membership is not applied yet", ErrNoLeader)
	case target == 0 && len(voters) < 2:
		return fmt.Errorf("%w: no voter but the leader", ErrNotVoter)
	case target == 0, slices.Contains(voters, target):
		return nil
	case slices.Contains(cs.GetLearners(), target):
		return fmt.Errorf("%w: node %d is a learner", ErrNotVoter, target)
	}
	return fmt.Errorf("%w: %d", ErrUnknownNode, target)
}

// HandOff is what a leader does before it stops: it transfers the
// leadership to the most caught-up voter and waits until another node
// leads or TransferBound passes. On a follower, or a node alone, it does
// nothing; a leader linked to no other voter (they are stopping too)
// returns ErrNotVoter at once. It returns the new leader (0 when none) and
// why there is none.
func (n *Node) HandOff() (uint64, error) {
	voters := n.members.Load().cs.GetVoters()
	if !n.pub.leading() || len(voters) < 2 {
		return 0, nil
	}
	linked := false
	for _, p := range n.tr.Peers() {
		linked = linked || (p.Connected && slices.Contains(voters, p.ID))
	}
	if !linked {
		return 0, fmt.Errorf("%w: no other voter is connected", ErrNotVoter)
	}
	return n.TransferLeader(context.Background(), 0)
}

// requestTransfer asks this node's loop to transfer the leadership to
// target (0: the most caught-up voter); see loop.transfer.
func (n *Node) requestTransfer(target uint64) {
	n.loop.local.put(&raftpb.Message{Type: raftpb.MsgTransferLeader.Enum(), From: &target, To: &n.cfg.ID})
}

// transferForwarded answers a peer's forwarded OpLeaderTransfer, which
// must carry a request id of the peer's.
func (n *Node) transferForwarded(from uint64, c lock.Command) {
	if c.ID>>48 != from || c.ID&(1<<48-1) == 0 {
		n.log.Warn("refused a forwarded leader transfer", "peer", from, "id", c.ID)
		return
	}
	n.requestTransfer(c.Target)
}

// transfer hands a transfer request to raft, on the leader; target 0 is
// the most caught-up voter. A node that no longer leads drops it: raft
// would forward it in a frame that peers refuse, and the asker times out.
func (l *loop) transfer(target uint64) {
	if !l.pub.leading() {
		return
	}
	if target == 0 {
		if target = l.mostCaughtUp(); target == 0 {
			return
		}
	}
	l.n.log.Info("transferring leadership", "to", target)
	l.rn.TransferLeader(target)
}

// mostCaughtUp returns the voter other than this leader with the highest
// Match, preferring those heard from within the last election timeout;
// the lowest id wins a tie. 0 when there is none.
func (l *loop) mostCaughtUp() uint64 {
	var best uint64
	var bestPr tracker.Progress
	better := func(id uint64, pr tracker.Progress) bool {
		switch {
		case best == 0:
			return true
		case pr.RecentActive != bestPr.RecentActive:
			return pr.RecentActive
		case pr.Match != bestPr.Match:
			return pr.Match > bestPr.Match
		}
		return id < best
	}
	l.rn.WithProgress(func(id uint64, typ raft.ProgressType, pr tracker.Progress) {
		if id != l.n.cfg.ID && typ == raft.ProgressTypePeer && better(id, pr) {
			best, bestPr = id, pr
		}
	})
	return best
}
