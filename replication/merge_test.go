package replication

import (
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func msg(t raftpb.MessageType, to, term, index, commit uint64, entries int) *raftpb.Message {
	m := &raftpb.Message{Type: &t, To: &to, Term: &term, Index: &index, Commit: &commit}
	for range entries {
		m.Entries = append(m.Entries, &raftpb.Entry{})
	}
	return m
}

func reject(m *raftpb.Message) *raftpb.Message {
	r := true
	m.Reject = &r
	return m
}

func describe(ms []*raftpb.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%v to %d term %d index %d commit %d entries %d reject %v",
			m.GetType(), m.GetTo(), m.GetTerm(), m.GetIndex(), m.GetCommit(), len(m.GetEntries()), m.GetReject()))
	}
	return out
}

// checkKept checks that merge keeps exactly msgs[i] for i in wantKept, in
// order.
func checkKept(t *testing.T, merge func([]*raftpb.Message) []*raftpb.Message, msgs []*raftpb.Message, wantKept []int) {
	t.Helper()
	var want []*raftpb.Message
	for _, i := range wantKept {
		want = append(want, msgs[i])
	}
	if got := merge(slices.Clone(msgs)); !slices.Equal(describe(got), describe(want)) {
		t.Errorf("kept\n%q\nwant\n%q", describe(got), describe(want))
	}
}

// TestSupersededAppends: the empty append that announces a commit is not
// sent when an append to the same peer in the same term follows with at
// least that commit index; every other message is sent, in order.
func TestSupersededAppends(t *testing.T) {
	const app, hb = raftpb.MsgApp, raftpb.MsgHeartbeat
	for _, tc := range []struct {
		name     string
		msgs     []*raftpb.Message
		wantKept []int // indexes into msgs
	}{
		{"commit, then the next entry, to two peers",
			[]*raftpb.Message{msg(app, 2, 5, 10, 10, 0), msg(app, 3, 5, 10, 10, 0), msg(app, 2, 5, 10, 10, 1), msg(app, 3, 5, 10, 10, 1)},
			[]int{2, 3}},
		{"commit alone (an idle leader) is sent",
			[]*raftpb.Message{msg(app, 2, 5, 10, 10, 0), msg(app, 3, 5, 10, 10, 0)},
			[]int{0, 1}},
		{"a later append with a lower commit does not supersede",
			[]*raftpb.Message{msg(app, 2, 5, 10, 11, 0), msg(app, 2, 5, 10, 10, 1)},
			[]int{0, 1}},
		{"another term does not supersede",
			[]*raftpb.Message{msg(app, 2, 5, 10, 10, 0), msg(app, 2, 6, 10, 10, 1)},
			[]int{0, 1}},
		{"another peer does not supersede",
			[]*raftpb.Message{msg(app, 2, 5, 10, 10, 0), msg(app, 3, 5, 10, 10, 1)},
			[]int{0, 1}},
		{"a later append ending before the empty one's index does not supersede",
			[]*raftpb.Message{msg(app, 2, 5, 10, 10, 0), msg(app, 2, 5, 7, 10, 2)},
			[]int{0, 1}},
		{"appends with entries are never dropped",
			[]*raftpb.Message{msg(app, 2, 5, 9, 9, 1), msg(app, 2, 5, 10, 10, 1)},
			[]int{0, 1}},
		{"two empty appends: the later one stays",
			[]*raftpb.Message{msg(app, 2, 5, 10, 9, 0), msg(app, 2, 5, 10, 10, 0)},
			[]int{1}},
		{"other messages stay, in order",
			[]*raftpb.Message{msg(hb, 2, 5, 0, 10, 0), msg(app, 2, 5, 10, 10, 0), msg(hb, 3, 5, 0, 10, 0), msg(app, 2, 5, 10, 10, 2)},
			[]int{0, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkKept(t, supersededAppends, tc.msgs, tc.wantKept) })
	}
}

// TestSupersededAcks: of a follower's acknowledgements to one leader in one
// batch, only the furthest is sent; rejections, other peers, other terms and
// other messages are all sent, in order.
func TestSupersededAcks(t *testing.T) {
	const resp, local = raftpb.MsgAppResp, raftpb.MsgStorageAppendResp
	for _, tc := range []struct {
		name     string
		msgs     []*raftpb.Message
		wantKept []int
	}{
		{"two acknowledgements of one batch",
			[]*raftpb.Message{msg(local, 1, 5, 10, 0, 0), msg(resp, 2, 5, 10, 0, 0), msg(local, 1, 5, 11, 0, 0), msg(resp, 2, 5, 11, 0, 0)},
			[]int{0, 2, 3}},
		{"a later acknowledgement of less does not supersede",
			[]*raftpb.Message{msg(resp, 2, 5, 11, 0, 0), msg(resp, 2, 5, 10, 0, 0)},
			[]int{0, 1}},
		{"rejections are sent",
			[]*raftpb.Message{reject(msg(resp, 2, 5, 10, 0, 0)), msg(resp, 2, 5, 11, 0, 0)},
			[]int{0, 1}},
		{"a rejection does not supersede",
			[]*raftpb.Message{msg(resp, 2, 5, 10, 0, 0), reject(msg(resp, 2, 5, 11, 0, 0))},
			[]int{0, 1}},
		{"another term does not supersede",
			[]*raftpb.Message{msg(resp, 2, 5, 10, 0, 0), msg(resp, 2, 6, 11, 0, 0)},
			[]int{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkKept(t, supersededAcks, tc.msgs, tc.wantKept) })
	}
}
