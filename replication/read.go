package replication

import (
	"context"
	"errors"
	"time"
)

// WaitApplied returns once this node's table reflects every write that was
// committed when it was called, as far as this node knows, so that a read
// that follows sees them:
//
//   - first, it waits until the node is in recent contact with the cluster
//     (see fresh), so that what it knows of the commit index is recent;
//   - on every node, it waits until the applied index reaches the commit
//     index known at the call (raft may commit an entry, and another node
//     acknowledge it, before this node has applied it);
//   - on the leader, which knows the cluster's commit index, it also waits
//     until the leader has applied an entry of its own term: before that, a
//     new leader may not yet know that entries of earlier terms are
//     committed (Raft §8).
//
// A leader cut off from the others may not know it was replaced, and a
// follower knows the commit index only as of the leader's last message, so
// reads after WaitApplied may still lag the newest writes elsewhere; they
// never lag a write this node acknowledged. When ctx ends while the node is
// still waiting for contact it returns ErrStale; when it ends later, while
// the node is catching up (contact found, but the commit index or an entry of
// the leader's own term not yet applied, even if contact was lost meanwhile),
// ctx's error. It returns ErrClosed when the node closes, and the node's
// error (ErrFailed) when it stops itself.
func (n *Node) WaitApplied(ctx context.Context) error {
	if err := n.waitFresh(ctx); err != nil {
		return err
	}
	return n.appliedTo(ctx, n.pub.commit.Load())
}

// appliedTo waits until this node has applied target and, on a leader, an
// entry of its own term (see ownTermApplied). It returns ctx's error when
// ctx ends first, ErrClosed when the node closes and the node's error when
// it stops itself.
func (n *Node) appliedTo(ctx context.Context, target uint64) error {
	for {
		wake := n.pub.appliedAdvanced()
		if n.pub.applied.Load() >= target && n.ownTermApplied() {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stopc:
			return ErrClosed
		case <-n.haltc:
			return n.failed()
		}
	}
}

// ownTermApplied reports whether, on a leader, the table holds an entry of
// the leader's term. It is true on other nodes.
func (n *Node) ownTermApplied() bool {
	if !n.pub.leading() {
		return true
	}
	term, _, _ := n.table.Clock()
	return term == n.pub.term.Load()
}

// ErrStale is WaitApplied's error on a node that has not heard from a
// leader (a follower) or from a quorum (the leader) within an election
// timeout: its replica may miss writes acknowledged elsewhere.
var ErrStale = errors.New("no recent contact with a leader; the replica may be stale")

// freshPoll is how often waitFresh looks again.
const freshPoll = 10 * time.Millisecond

// waitFresh waits, until ctx ends, for this node to be in recent contact
// with the cluster (see fresh).
func (n *Node) waitFresh(ctx context.Context) error {
	if n.fresh() {
		return nil
	}
	t := time.NewTicker(freshPoll)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if n.fresh() {
				return nil
			}
		case <-ctx.Done():
			return ErrStale
		case <-n.stopc:
			return ErrClosed
		case <-n.haltc:
			return n.failed()
		}
	}
}

// fresh reports whether this node's replica is known to be recent: a node
// alone once it leads (before, right after a restart, it may not yet know
// that the last entries of its log are committed: a hard state that only
// moves the commit index is not synced, so a kill -9 can lose it; as
// leader, WaitApplied then waits for an entry of its term); a follower when a raft frame from its leader arrived
// within an election timeout; the leader when frames from enough peers to
// make a quorum with it did. A follower still in touch with a leader that
// lost its quorum hears from it until the leader notices (CheckQuorum, at
// most two election timeouts), so reads lag by at most that much plus the
// replication delay.
func (n *Node) fresh() bool {
	m := n.members.Load()
	if m.soleVoter(n.cfg.ID) {
		return n.pub.leading()
	}
	now := n.pub.nanos()
	window := int64(n.cfg.ElectionTicks) * n.cfg.TickInterval.Nanoseconds()
	heardAt := *n.heardAt.Load()
	recent := func(id uint64) bool {
		h := heardAt[id]
		return h != nil && h.Load() != 0 && now-h.Load() <= window
	}
	if n.pub.leading() {
		voters := m.cs.GetVoters()
		heard := 0
		for _, id := range voters {
			if id == n.cfg.ID || recent(id) {
				heard++
			}
		}
		return heard > len(voters)/2
	}
	lead := n.pub.leader.Load()
	return lead != 0 && lead != n.cfg.ID && recent(lead)
}

// heard records that a raft frame from peer arrived now.
func (n *Node) heard(peer uint64) {
	if h := (*n.heardAt.Load())[peer]; h != nil {
		h.Store(n.pub.nanos())
	}
}
