package replication

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lockd/lockd/lock"
)

// Commands executed through a follower while its leader closes each either
// succeed once, under whichever leader is elected next, or fail with an
// error that says whether they may have taken effect.
func TestExecuteThroughALeaderChange(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	f := nodes[followerOf(nodes, lead)]
	ctx := context.Background()
	const count = 30
	type outcome struct {
		i     int
		token int64
		err   error
	}
	outcomes := make(chan outcome, count)
	for i := range count {
		go func() {
			tok, err := f.Execute(ctx, lock.Command{Op: lock.OpLock, Name: fmt.Sprint("x", i), Owner: "o"})
			outcomes <- outcome{i, tok, err}
		}()
	}
	nodes[lead].Close()
	delete(nodes, lead)
	waitLeader(t, nodes)

	results := make([]outcome, count)
	for i := range count {
		select {
		case r := <-outcomes:
			results[r.i] = r
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of %d commands had not returned after 20s", count-i, count)
		}
	}
	appliedEverywhere(t, nodes)
	tokens := map[int64]bool{}
	for _, r := range results {
		switch {
		case r.err == nil && r.token > 0:
			if tokens[r.token] {
				t.Fatalf("token %d was granted twice", r.token)
			}
			tokens[r.token] = true
		case r.err == nil:
			t.Fatalf("a LOCK on a free name was refused")
		case errors.Is(r.err, ErrTimeout), errors.Is(r.err, ErrNoLeader):
			t.Logf("a command failed: %v", r.err)
		default:
			t.Fatalf("a command failed with %v; want ErrTimeout or ErrNoLeader", r.err)
		}
	}
	// No command took a second token: the tokens in the table are 1..the
	// number of locks (a command that failed may have taken one), and every
	// token returned is the one the table holds.
	for id, n := range nodes {
		var top int64
		held := 0
		for i := range count {
			info, ok := n.Table().Get(fmt.Sprint("x", i))
			if !ok {
				continue
			}
			held++
			top = max(top, int64(info.Token))
		}
		if held < len(tokens) || top != int64(held) {
			t.Fatalf("node %d holds %d locks, the highest token %d; %d commands succeeded", id, held, top, len(tokens))
		}
	}
	for i, r := range results {
		if r.err == nil {
			holdsEverywhere(t, nodes, fmt.Sprint("x", i), "o", r.token)
		}
	}
}

// send has n send cmd, whose ID is already set, until n applies it, and
// returns its result: what Execute does for a new ID, and what its resend
// does after a leader change. (Execute and Do give every command a new ID;
// no exported call takes one.)
func send(ctx context.Context, n *Node, cmd lock.Command) (lock.Result, error) {
	result := n.pending.register(cmd.ID)
	defer n.pending.cancel(cmd.ID)
	return n.await(ctx, n.deadline(ctx), cmd, result, 0)
}

// A request sent again under its ID after the leader changed gets its first
// result and does not act again: the new leader's table remembers the ID.
func TestRequestSentAgainAfterALeaderChangeActsOnce(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	f := nodes[followerOf(nodes, lead)]
	ctx := context.Background()
	id, err := f.newID()
	if err != nil {
		t.Fatal(err)
	}
	cmd := lock.Command{Op: lock.OpLock, ID: id, Name: "r", Owner: "a"}
	first, err := send(ctx, f, cmd)
	if err != nil || first.Value <= 0 {
		t.Fatalf("LOCK r = %+v, %v", first, err)
	}
	// Were the LOCK to act again, it would take r again with a new token.
	if v, err := f.Execute(ctx, lock.Command{Op: lock.OpUnlock, Name: "r", Owner: "a"}); v != 1 || err != nil {
		t.Fatalf("UNLOCK r = %d, %v", v, err)
	}
	nodes[lead].Close()
	delete(nodes, lead)
	if waitLeader(t, nodes) == lead {
		t.Fatal("the closed node still leads")
	}

	again, err := send(ctx, f, cmd)
	if err != nil || again.Value != first.Value {
		t.Fatalf("LOCK r sent again under its ID = %+v, %v; want the first result, token %d", again, err, first.Value)
	}
	appliedEverywhere(t, nodes)
	for id, n := range nodes {
		if info, held := n.Table().Get("r"); held {
			t.Fatalf("node %d: the request sent again took r again: %+v", id, info)
		}
	}
	if tok, err := f.Execute(ctx, lock.Command{Op: lock.OpLock, Name: "next", Owner: "a"}); err != nil || tok != first.Value+1 {
		t.Fatalf("next LOCK = %d, %v; want %d (the request sent again took no token)", tok, err, first.Value+1)
	}
}
