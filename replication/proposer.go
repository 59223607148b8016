package replication

import (
	"context"
	"time"

	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
)

// maxBatch bounds the commands in one proposed entry.
const maxBatch = 4096

// proposer turns commands into raft entries on the leader. It alone stamps
// entries, so stamps never go backwards within a term. It also proposes
// ticks: one when the node becomes leader (the term's first stamp), one at
// each lease deadline, and one every LeaseTick while any lease is held.
//
// Commands reach it from Execute on this node and from FORWARD frames of
// followers. On a node that is not the leader they are dropped; their
// senders resend.
type proposer struct {
	n       *Node
	in      chan lock.Command
	leaderc chan struct{}
	wake    chan struct{}
	done    chan struct{}
	last    int64 // last stamp proposed
}

func newProposer(n *Node) *proposer {
	return &proposer{
		n:       n,
		in:      make(chan lock.Command, 4*maxBatch),
		leaderc: make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

func (p *proposer) start() { go p.run() }
func (p *proposer) wait()  { <-p.done }

// submit queues cmd for proposal; when the queue is full it is dropped.
func (p *proposer) submit(cmd lock.Command) {
	select {
	case p.in <- cmd:
	default:
	}
}

// becameLeader and applied are called by the raft goroutine; they never block.
func (p *proposer) becameLeader() { signal(p.leaderc) }
func (p *proposer) applied()      { signal(p.wake) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (p *proposer) run() {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	cmds := make([]lock.Command, 0, maxBatch)
	for {
		select {
		case c := <-p.in:
			cmds = append(cmds[:0], c)
		drain:
			for len(cmds) < maxBatch {
				select {
				case c := <-p.in:
					cmds = append(cmds, c)
				default:
					break drain
				}
			}
			p.propose(cmds)
		case <-p.leaderc:
			p.propose(nil)
		case <-timer.C:
			p.propose(nil)
		case <-p.wake:
			if d, ok := p.nextTick(); ok {
				timer.Reset(d)
			} else {
				timer.Stop()
			}
		case <-p.n.stopc:
			return
		}
	}
}

// clock is this node's leader clock in milliseconds: monotonic, from start.
func (p *proposer) clock() int64 { return time.Since(p.n.start).Milliseconds() }

// propose stamps cmds (a tick when empty) and proposes them as one entry.
func (p *proposer) propose(cmds []lock.Command) {
	n := p.n
	if n.role.Load().(raft.StateType) != raft.StateLeader {
		return
	}
	stamp := max(p.clock(), p.last)
	p.last = stamp
	b := lock.Batch{Term: n.term.Load(), Stamp: stamp, Cmds: cmds}
	if len(cmds) == 0 {
		b.Cmds = []lock.Command{{Op: lock.OpTick}}
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	if err := n.raft.Propose(ctx, lock.AppendBatch(nil, &b)); err != nil {
		n.log.Debug("proposal dropped", "err", err, "cmds", len(cmds))
	}
}

// nextTick returns when the leader should next stamp the log: at the earliest
// lease deadline, and at most LeaseTick after its last stamp while leases
// are held.
func (p *proposer) nextTick() (time.Duration, bool) {
	n := p.n
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
	at := min(stamp+(deadline-now), p.last+n.cfg.LeaseTick.Milliseconds())
	return time.Duration(max(at-p.clock(), 0)) * time.Millisecond, true
}
