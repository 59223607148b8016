package replication

import (
	"time"

	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
)

// maxBatch bounds the commands in one proposed entry, and maxEntryBytes
// its size (one command may exceed it alone): raft messages to peers, and
// the cluster port's frame limit, rest on it.
const (
	maxBatch      = 4096
	maxEntryBytes = 1 << 20
)

// cmdSize is about how many bytes c takes in an entry.
func cmdSize(c *lock.Command) int { return len(c.Name) + len(c.Owner) + 40 }

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

	// Group commit. Commands wait in held while MaxInflight entries are
	// appended but not committed; the next entry then carries all of them.
	// Under load entries grow instead of multiplying, and every cost paid
	// per entry (raft messages, log writes, syncs, wake-ups on three
	// nodes) is shared by more commands. An idle leader proposes at once.
	held []lock.Command
}

// maxHeld bounds the commands a leader holds for the next entries; beyond
// it submissions are dropped and their senders resend.
const maxHeld = 4 * maxBatch

func (p *proposer) init() {
	p.timer = time.NewTimer(time.Hour)
	p.timer.Stop()
}

// clock is this node's leader clock in milliseconds: monotonic, from start.
func (n *Node) clock() int64 { return time.Since(n.start).Milliseconds() }

// hold queues a command for the next entry, or drops it when too many wait.
// A script request goes to the script goroutine instead, on the leader.
func (n *Node) hold(c lock.Command) {
	if c.Op == lock.OpScript {
		if n.role.Load().(raft.StateType) == raft.StateLeader {
			n.scripts.enqueue(c)
		}
		return
	}
	if len(n.prop.held) < maxHeld {
		n.prop.held = append(n.prop.held, c)
	}
}

// proposeHeld proposes the held commands, up to maxBatch per entry, while
// fewer than MaxInflight entries await commit. A follower drops them.
func (n *Node) proposeHeld() {
	if len(n.prop.held) == 0 {
		return
	}
	if n.role.Load().(raft.StateType) != raft.StateLeader {
		clear(n.prop.held)
		n.prop.held = n.prop.held[:0]
		return
	}
	for len(n.prop.held) > 0 && n.lastIndex < n.commit.Load()+uint64(n.cfg.MaxInflight) {
		k, size := 0, 0
		for k < len(n.prop.held) && k < maxBatch {
			size += cmdSize(&n.prop.held[k])
			if k > 0 && size > maxEntryBytes {
				break
			}
			k++
		}
		n.propose(n.prop.held[:k])
		rest := copy(n.prop.held, n.prop.held[k:])
		clear(n.prop.held[rest:])
		n.prop.held = n.prop.held[:rest]
		n.drainReady() // learns the new entry's index
	}
}

// propose stamps cmds (a tick when empty) and proposes them as one entry.
func (n *Node) propose(cmds []lock.Command) {
	if n.role.Load().(raft.StateType) != raft.StateLeader {
		return
	}
	stamp := max(n.clock(), n.prop.last)
	n.prop.last = stamp
	b := lock.Batch{Term: n.term.Load(), Stamp: stamp, Wall: time.Now().UnixMilli(), Cmds: cmds}
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
