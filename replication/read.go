package replication

import (
	"context"

	"go.etcd.io/raft/v3"
)

// WaitApplied returns once this node's table reflects every write that was
// committed when it was called, as far as this node knows, so that a read
// that follows sees them:
//
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
// never lag a write this node acknowledged. It returns ctx's error when ctx
// ends first; the caller may then read what the node has.
func (n *Node) WaitApplied(ctx context.Context) error {
	target := n.commit.Load()
	for {
		wake := *n.advanced.Load()
		if n.applied.Load() >= target && n.ownTermApplied() {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stopc:
			return ErrClosed
		}
	}
}

// ownTermApplied reports whether, on a leader, the table holds an entry of
// the leader's term. It is true on other nodes.
func (n *Node) ownTermApplied() bool {
	if n.role.Load().(raft.StateType) != raft.StateLeader {
		return true
	}
	term, _, _ := n.table.Clock()
	return term == n.term.Load()
}
