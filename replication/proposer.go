package replication

import (
	"time"

	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
)

// maxBatch bounds the commands in one proposed entry.
const maxBatch = 4096

// proposer is the leader's part of the run goroutine that turns commands
// into raft entries. It alone stamps entries, so stamps never go backwards
// within a term. It also proposes ticks: one when the node becomes leader
// (the term's first stamp), one at each lease deadline, and one every
// LeaseTick while any lease is held.
//
// Commands reach it from Execute on this node and from FORWARD frames of
// followers. On a node that is not the leader they are dropped; their
// senders resend.
type proposer struct {
	timer   *time.Timer // the next tick
	tickNow bool        // propose a tick after this Ready
	last    int64       // last stamp proposed
}

func (p *proposer) init() {
	p.timer = time.NewTimer(time.Hour)
	p.timer.Stop()
}

// clock is this node's leader clock in milliseconds: monotonic, from start.
func (n *Node) clock() int64 { return time.Since(n.start).Milliseconds() }

// propose stamps cmds (a tick when empty) and proposes them as one entry.
func (n *Node) propose(cmds []lock.Command) {
	if n.role.Load().(raft.StateType) != raft.StateLeader {
		return
	}
	stamp := max(n.clock(), n.prop.last)
	n.prop.last = stamp
	b := lock.Batch{Term: n.term.Load(), Stamp: stamp, Cmds: cmds}
	if len(cmds) == 0 {
		b.Cmds = []lock.Command{{Op: lock.OpTick}}
	}
	if err := n.rn.Propose(lock.AppendBatch(nil, &b)); err != nil {
		n.log.Debug("proposal dropped", "err", err, "cmds", len(cmds))
	}
}

// scheduleTick sets the timer for the leader's next stamp: at the earliest
// lease deadline, and at most LeaseTick after its last stamp while leases
// are held.
func (n *Node) scheduleTick() {
	if d, ok := n.nextTick(); ok {
		n.prop.timer.Reset(d)
	} else {
		n.prop.timer.Stop()
	}
}

func (n *Node) nextTick() (time.Duration, bool) {
	if n.role.Load().(raft.StateType) != raft.StateLeader {
		return 0, false
	}
	term, stamp, now := n.table.Clock()
	if term != n.term.Load() {
		return 0, false // this term's first tick is not applied yet
	}
	deadline, ok := n.table.NextDeadline()
	if !ok {
		return 0, false
	}
	at := min(stamp+(deadline-now), n.prop.last+n.cfg.LeaseTick.Milliseconds())
	return time.Duration(max(at-n.clock(), 0)) * time.Millisecond, true
}
