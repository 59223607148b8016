package replication

import (
	"time"

	"go.etcd.io/raft/v3"
)

// Status is a node's view of the cluster, for INFO and ROLE.
type Status struct {
	ID         uint64
	Role       string // "leader", "follower" or "candidate"
	Leader     uint64 // 0 when none is known
	LeaderAddr string // the leader's client address, "" when unknown
	Term       uint64
	Commit     uint64
	Applied    uint64
	Peers      []PeerStatus
	Pending    int
}

// PeerStatus is this node's link to one peer.
type PeerStatus struct {
	ID        uint64
	Addr      string
	Connected bool
	Dropped   uint64 // frames dropped because the queue was full
	Sent      uint64 // frames written to the peer's connection
}

// Status returns the node's current view. Any goroutine may call it.
func (n *Node) Status() Status {
	s := Status{
		ID:      n.cfg.ID,
		Role:    roleName(n.pub.roleNow()),
		Leader:  n.pub.leader.Load(),
		Term:    n.pub.term.Load(),
		Commit:  n.pub.commit.Load(),
		Applied: n.pub.applied.Load(),
		Pending: n.pending.len(),
	}
	n.addrMu.Lock()
	s.LeaderAddr = n.clientAddrs[s.Leader]
	n.addrMu.Unlock()
	for _, p := range n.tr.Peers() {
		s.Peers = append(s.Peers, PeerStatus(p))
	}
	return s
}

// SinceApply returns how long ago this node last applied an entry, 0 before
// the first; readers use it to show a lease's remaining time between entries.
// It is measured on the node's monotonic clock, so a step of the wall clock
// does not change it.
func (n *Node) SinceApply() time.Duration {
	t := n.pub.appliedAt.Load()
	if t == 0 {
		return 0
	}
	return time.Duration(n.pub.nanos() - t)
}

func roleName(s raft.StateType) string {
	switch s {
	case raft.StateLeader:
		return "leader"
	case raft.StateCandidate, raft.StatePreCandidate:
		return "candidate"
	}
	return "follower"
}

func (n *Node) setClientAddr(id uint64, addr string) {
	n.addrMu.Lock()
	n.clientAddrs[id] = addr
	n.addrMu.Unlock()
}
