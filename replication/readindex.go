package replication

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.etcd.io/raft/v3"
)

// Linearizable reads (ReadBarrier), on raft's ReadIndex (Raft §6.4): the
// leader records its commit index, confirms with a heartbeat round that a
// quorum still follows it, and answers that index; a follower asks the
// leader for it. Once this node has applied up to the index, its replica
// reflects every write acknowledged anywhere before the request began. A
// leader cut off from its quorum never confirms, so its reads wait and
// fail instead of answering from a replica that may have been overtaken.

// maxReadRounds bounds the ReadIndex rounds awaiting an answer; requests
// past it fail at once.
const maxReadRounds = 64

// readRound is one ReadIndex request to raft, shared by the reads that
// arrived together: each hears the index on its channel (0: the round was
// given up).
type readRound struct {
	waiters []chan uint64
	ticks   int // ticks since it was asked
}

// readIndexes is the loop's part that turns reads into ReadIndex rounds.
// The loop owns it.
type readIndexes struct {
	q      *mailbox[chan uint64] // requests from ReadBarrier
	run    uint64                // random, this process's: an answer to a round of an earlier run is not this run's
	seq    uint64                // the last round's number
	rounds map[uint64]*readRound
}

// canStartRead reports whether a new round may start: when a leader is
// known, and no round is in flight or the newest has waited a tick (its
// answer may have been lost). Reads that arrive while a round is in flight
// wait for the next, so that under load one heartbeat round serves many
// reads (as etcd's server does). Without a leader raft drops a request
// without a word, so reads wait for one (within their deadline) rather
// than in a round that can only expire: right after a restart or during
// an election they are answered once the election ends.
func (l *loop) canStartRead() bool {
	if l.pub.leader.Load() == 0 {
		return false
	}
	r, ok := l.reads.rounds[l.reads.seq]
	return !ok || r.ticks > 0
}

// startRead asks raft for a read index for the requests waiting, as one
// round, and reports whether it did. The request is among raft's messages
// of the next Ready.
func (l *loop) startRead() bool {
	if l.pub.leader.Load() == 0 {
		return false
	}
	reqs := l.reads.q.take()
	if len(reqs) == 0 {
		return false
	}
	if len(l.reads.rounds) >= maxReadRounds {
		for _, ch := range reqs {
			ch <- 0
		}
		return false
	}
	l.reads.seq++
	l.reads.rounds[l.reads.seq] = &readRound{waiters: append([]chan uint64(nil), reqs...)}
	// The context names this node, this run of it and the round: the
	// leader keeps the rounds of all nodes in one table, by context, and an
	// answer queued for this node before it restarted must not pass for an
	// answer to a round of this run (it may predate writes acknowledged
	// while the node was down).
	if l.reads.run == 0 {
		l.reads.run = rand.Uint64() | 1
	}
	rctx := binary.BigEndian.AppendUint64(nil, l.n.cfg.ID)
	rctx = binary.BigEndian.AppendUint64(rctx, l.reads.run)
	rctx = binary.BigEndian.AppendUint64(rctx, l.reads.seq)
	l.rn.ReadIndex(rctx)
	return true
}

// readStates answers the rounds raft confirmed, and every earlier round
// still waiting (its answer lost on the way): an index confirmed after a
// read arrived serves that read as well as its own round's would.
func (l *loop) readStates(states []raft.ReadState) {
	for _, rs := range states {
		if len(rs.RequestCtx) != 24 || binary.BigEndian.Uint64(rs.RequestCtx) != l.n.cfg.ID ||
			binary.BigEndian.Uint64(rs.RequestCtx[8:]) != l.reads.run {
			continue
		}
		seq := binary.BigEndian.Uint64(rs.RequestCtx[16:])
		for s, r := range l.reads.rounds {
			if s <= seq {
				for _, ch := range r.waiters {
					ch <- rs.Index
				}
				delete(l.reads.rounds, s)
			}
		}
	}
}

// expireReads gives up the rounds unanswered for two election timeouts: raft
// drops a follower's request when it knows no leader, and a leader's when
// it loses its quorum, without a word.
func (l *loop) expireReads() {
	for seq, r := range l.reads.rounds {
		if r.ticks++; r.ticks >= 2*l.n.cfg.ElectionTicks {
			for _, ch := range r.waiters {
				ch <- 0
			}
			delete(l.reads.rounds, seq)
		}
	}
}

// ReadBarrier returns once this node's table reflects every write that was
// committed anywhere in the cluster before it was called, so that a read
// that follows is linearizable: it asks the leader for its commit index
// (raft's ReadIndex, confirmed by a quorum's heartbeats), then waits until
// this node has applied that far. Concurrent calls share one round.
//
// It fails with ErrStale when no leader confirmed an index within an
// two election timeouts or before ctx ended (no leader, or a leader cut off from
// its quorum: the node cannot prove its replica is current), with ctx's
// error when ctx ends while the node catches up to the index, ErrClosed when
// the node closes and the node's error when it stops itself.
func (n *Node) ReadBarrier(ctx context.Context) error {
	ch := make(chan uint64, 1)
	n.loop.reads.q.put(ch)
	var index uint64
	select {
	case index = <-ch:
	case <-ctx.Done():
		return ErrStale
	case <-n.stopc:
		return ErrClosed
	case <-n.haltc:
		return n.failed()
	}
	if index == 0 {
		return ErrStale
	}
	// A lone voter's raft answers a read index at once, with its commit
	// index, which after a restart may not yet cover every acknowledged
	// entry (the commit index is not synced): a leader also waits, as
	// WaitApplied does, until it has applied an entry of its own term.
	return n.appliedTo(ctx, index)
}
