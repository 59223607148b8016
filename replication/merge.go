package replication

import (
	"go.etcd.io/raft/v3/raftpb"
)

// Raft repeats itself to each peer. When a leader's commit index moves it
// broadcasts an append with no entries carrying the new index, and under load
// the proposer's next entry follows to the same peer at once, carrying the
// same index: the follower steps two appends, syncs for both and acknowledges
// both. And a follower's appender, writing several appends with one
// sync, acknowledges each. Both repetitions tell the receiver nothing the
// last message does not, so they are merged before sending, as etcd's server
// keeps only the last acknowledgement of a Ready: a raft message may be lost
// anyway, and raft resends what it must.

// supersededAppends drops, in place, every append without entries that a
// later append in msgs, to the same peer in the same term, makes redundant
// (its commit index is at least as high, and its entries reach at least as
// far, so that the follower may take at least the same commit index from
// it), and returns what is left in order. Appends with entries, and every
// other message, are kept.
func supersededAppends(msgs []*raftpb.Message) []*raftpb.Message {
	return dropSuperseded(msgs, func(early, late *raftpb.Message) bool {
		return early.GetType() == raftpb.MsgApp && len(early.GetEntries()) == 0 &&
			late.GetType() == raftpb.MsgApp && late.GetCommit() >= early.GetCommit() &&
			late.GetIndex()+uint64(len(late.GetEntries())) >= early.GetIndex()
	})
}

// supersededAcks drops, in place, every acknowledgement of an append (not a
// rejection) that a later one in msgs, to the same peer in the same term,
// makes redundant (it acknowledges as far or further: acknowledgements are
// cumulative), and returns what is left in order.
func supersededAcks(msgs []*raftpb.Message) []*raftpb.Message {
	return dropSuperseded(msgs, func(early, late *raftpb.Message) bool {
		return early.GetType() == raftpb.MsgAppResp && !early.GetReject() &&
			late.GetType() == raftpb.MsgAppResp && !late.GetReject() && late.GetIndex() >= early.GetIndex()
	})
}

// dropSuperseded keeps the messages of msgs that no later message to the
// same peer in the same term supersedes, by the rule given. It is quadratic
// in the number of messages to one peer, which is a handful per Ready.
func dropSuperseded(msgs []*raftpb.Message, supersedes func(early, late *raftpb.Message) bool) []*raftpb.Message {
	kept := msgs[:0]
	for i, m := range msgs {
		redundant := false
		for _, later := range msgs[i+1:] {
			if later.GetTo() == m.GetTo() && later.GetTerm() == m.GetTerm() && supersedes(m, later) {
				redundant = true
				break
			}
		}
		if !redundant {
			kept = append(kept, m)
		}
	}
	clear(msgs[len(kept):])
	return kept
}
