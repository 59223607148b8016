package replication

import (
	"time"

	"github.com/lockd/lockd/lock"
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

// proposer is the leader's part of the loop that turns commands into raft
// entries. It is not a goroutine of its own: it runs in the loop after each
// round's Readys, so that the commands held meanwhile are proposed before
// the loop sends that round's messages (which lets flushOutbox merge the
// commit announcement into the next append). It alone stamps entries, so
// stamps never go backwards within a term. It also proposes ticks: one when
// the node becomes leader (the term's first stamp), one at each lease
// deadline, and one every LeaseTick while any lease is held.
//
// Commands reach it through the loop's props mailbox, from Execute on this
// node and from FORWARD(S) frames of followers; the loop takes them only when
// it may propose, so commands that arrive while an entry is in flight cost
// the loop no wake-up each. On a node that is not the leader they are
// dropped; their senders resend. Script requests do not come this way:
// submit hands them to the script runner at once.
//
// Concurrency: the loop's goroutine alone uses it.
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

// maxHeld bounds the commands a leader holds for the next entries, and
// those waiting in the props mailbox; beyond it submissions are dropped and
// their senders resend.
const maxHeld = 4 * maxBatch

func (p *proposer) init() {
	p.timer = time.NewTimer(time.Hour)
	p.timer.Stop()
}

// hold queues a command for the next entry, or drops it when too many wait.
func (l *loop) hold(c lock.Command) {
	if len(l.prop.held) < maxHeld {
		l.prop.held = append(l.prop.held, c)
	}
}

// canPropose reports whether the proposer would propose now: on a
// follower (which drops what it is sent), or on a leader with fewer than
// MaxInflight entries awaiting commit.
func (l *loop) canPropose() bool {
	return !l.pub.leading() || l.lastIndex < l.pub.commit.Load()+uint64(l.maxInflight)
}

// proposeHeld takes the commands waiting in the mailbox, when it may
// propose, and proposes the held commands, up to maxBatch per entry, while
// fewer than MaxInflight entries await commit. A follower drops them.
func (l *loop) proposeHeld() {
	p := &l.prop
	if l.canPropose() {
		for _, c := range l.props.take() {
			l.hold(c)
		}
	}
	if len(p.held) == 0 {
		return
	}
	if !l.pub.leading() {
		clear(p.held)
		p.held = p.held[:0]
		return
	}
	for len(p.held) > 0 && l.lastIndex < l.pub.commit.Load()+uint64(l.maxInflight) {
		k, size := 0, 0
		for k < len(p.held) && k < maxBatch {
			size += cmdSize(&p.held[k])
			if k > 0 && size > maxEntryBytes {
				break
			}
			k++
		}
		l.propose(p.held[:k])
		rest := copy(p.held, p.held[k:])
		clear(p.held[rest:])
		p.held = p.held[:rest]
		l.drainReady() // learns the new entry's index
	}
}

// propose stamps cmds (a tick when empty) and proposes them as one entry.
func (l *loop) propose(cmds []lock.Command) {
	if !l.pub.leading() {
		return
	}
	stamp := max(l.pub.millis(), l.prop.last)
	l.prop.last = stamp
	b := lock.Batch{Term: l.pub.term.Load(), Stamp: stamp, Wall: time.Now().UnixMilli(), Cmds: cmds}
	if len(cmds) == 0 {
		b.Cmds = []lock.Command{{Op: lock.OpTick}}
	}
	if err := l.rn.Propose(lock.AppendBatch(nil, &b)); err != nil {
		l.n.log.Debug("proposal dropped", "err", err, "cmds", len(cmds))
		if o := l.n.cfg.Observer; o != nil {
			o.ProposalFailed()
		}
	}
}

// scheduleTick sets the timer for the leader's next stamp: at the earliest
// lease deadline, and at most LeaseTick after its last stamp while leases
// are held.
func (l *loop) scheduleTick() {
	if d, ok := l.nextTick(); ok {
		l.prop.timer.Reset(d)
	} else {
		l.prop.timer.Stop()
	}
}

func (l *loop) nextTick() (time.Duration, bool) {
	if !l.pub.leading() {
		return 0, false
	}
	term, stamp, now := l.n.table.Clock()
	if term != l.pub.term.Load() {
		return 0, false // this term's first tick is not applied yet
	}
	deadline, ok := l.n.table.NextDeadline()
	if !ok {
		return 0, false
	}
	at := min(stamp+(deadline-now), l.prop.last+l.n.cfg.LeaseTick.Milliseconds())
	return time.Duration(max(at-l.pub.millis(), 0)) * time.Millisecond, true
}
