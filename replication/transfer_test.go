package replication

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lockd/lockd/lock"
)

// TestTransferLeader: asked on the leader or on a follower, with a target
// or without, the leadership moves (to the target when named), every node
// follows the new leader, and writes go on through it.
func TestTransferLeader(t *testing.T) {
	for _, tt := range []struct {
		name       string
		onFollower bool
		named      bool
	}{
		{"on the leader, to a named voter", false, true},
		{"on the leader, to the most caught-up", false, false},
		{"on a follower, to another follower", true, true},
		{"on a follower, to the most caught-up", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nodes := testCluster(t, 3, nil)
			lead := waitLeader(t, nodes)
			var asker, target uint64
			for id := range nodes {
				if id != lead {
					if asker == 0 || !tt.onFollower {
						asker = id
					} else {
						target = id
					}
				}
			}
			if !tt.onFollower {
				asker, target = lead, asker
			}
			if !tt.named {
				target = 0
			}
			lockFresh(t, nodes[asker], "before", 5)
			got, err := nodes[asker].TransferLeader(context.Background(), target)
			if err != nil {
				t.Fatalf("TransferLeader(%d) on node %d (leader %d): %v", target, asker, lead, err)
			}
			if got == lead || (target != 0 && got != target) {
				t.Fatalf("TransferLeader(%d) on node %d = %d; the leader was %d", target, asker, got, lead)
			}
			if now := waitLeader(t, nodes); now != got {
				t.Fatalf("nodes agree on leader %d, TransferLeader said %d", now, got)
			}
			acked := lockFresh(t, nodes[lead], "after", 5)
			appliedEverywhere(t, nodes)
			for id, n := range nodes {
				holdsAll(t, id, n, acked)
			}
		})
	}
}

// TestTransferLeaderRefuses: a transfer that cannot be done is answered
// with its error, and the leader stays.
func TestTransferLeaderRefuses(t *testing.T) {
	t.Run("unknown node", func(t *testing.T) {
		nodes := testCluster(t, 3, nil)
		lead := waitLeader(t, nodes)
		membershipApplied(t, nodes)
		for id, n := range nodes {
			if _, err := n.TransferLeader(context.Background(), 9); !errors.Is(err, ErrUnknownNode) {
				t.Errorf("node %d: TransferLeader(9) = %v, want ErrUnknownNode", id, err)
			}
		}
		if now := waitLeader(t, nodes); now != lead {
			t.Errorf("leader %d became %d", lead, now)
		}
	})
	t.Run("to the leader itself", func(t *testing.T) {
		nodes := testCluster(t, 3, nil)
		lead := waitLeader(t, nodes)
		membershipApplied(t, nodes)
		for id, n := range nodes {
			if got, err := n.TransferLeader(context.Background(), lead); err != nil || got != lead {
				t.Errorf("node %d: TransferLeader(leader %d) = %d, %v", id, lead, got, err)
			}
		}
	})
	t.Run("a node alone", func(t *testing.T) {
		n, err := Start(Config{ID: 1, DataDir: t.TempDir(), TickInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		waitLeader(t, map[uint64]*Node{1: n})
		if _, err := n.TransferLeader(context.Background(), 0); !errors.Is(err, ErrNotVoter) {
			t.Errorf("TransferLeader(0) alone = %v, want ErrNotVoter", err)
		}
		if got, err := n.HandOff(); got != 0 || err != nil {
			t.Errorf("HandOff alone = %d, %v; want nothing done", got, err)
		}
	})
	t.Run("no leader", func(t *testing.T) {
		c := startMemCluster(t, 3, 1, nil)
		lead := waitLeader(t, c.nodes)
		f := c.others(lead)[0]
		c.net.isolate(memAddrOf(f))
		poll(t, "the isolated follower forgets its leader", func() bool { return c.nodes[f].Status().Leader == 0 })
		if _, err := c.nodes[f].TransferLeader(context.Background(), 0); !errors.Is(err, ErrNoLeader) {
			t.Errorf("TransferLeader without a leader = %v, want ErrNoLeader", err)
		}
	})
	t.Run("target unreachable", func(t *testing.T) {
		c := startMemCluster(t, 3, 1, nil)
		lead := waitLeader(t, c.nodes)
		target := c.others(lead)[0]
		c.connected(t)
		c.net.isolate(memAddrOf(target))
		start := time.Now()
		_, err := c.nodes[lead].TransferLeader(context.Background(), target)
		if !errors.Is(err, ErrTransferTimeout) {
			t.Fatalf("TransferLeader to an unreachable node = %v, want ErrTransferTimeout", err)
		}
		if took := time.Since(start); took < c.nodes[lead].TransferBound() {
			t.Errorf("gave up after %v, before the bound %v", took, c.nodes[lead].TransferBound())
		}
		rest := c.subset(c.others(target)...)
		if now := waitLeader(t, rest); now != lead {
			t.Errorf("leader %d became %d", lead, now)
		}
		lockFresh(t, c.nodes[lead], "still", 3) // raft gave the transfer up: proposals go on
	})
}

// TestHandOff: a leader about to stop hands its leadership to a follower,
// which then commits without waiting for an election; a follower's HandOff
// does nothing.
func TestHandOff(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	lockFresh(t, nodes[lead], "before", 20)
	for id, n := range nodes {
		if id != lead {
			if got, err := n.HandOff(); got != 0 || err != nil {
				t.Errorf("follower %d: HandOff = %d, %v; want nothing done", id, got, err)
			}
		}
	}
	start := time.Now()
	next, err := nodes[lead].HandOff()
	if err != nil || next == 0 || next == lead {
		t.Fatalf("HandOff = %d, %v", next, err)
	}
	t.Logf("hand-off from %d to %d took %v (election timeout %v)", lead, next, time.Since(start), 10*10*time.Millisecond)
	nodes[lead].Close()
	rest := map[uint64]*Node{}
	for id, n := range nodes {
		if id != lead {
			rest[id] = n
		}
	}
	if now := waitLeader(t, rest); now != next {
		t.Fatalf("after the hand-off %d leads, not %d", now, next)
	}
	if _, err := nodes[next].Execute(context.Background(), lock.Command{Op: lock.OpLock, Name: "after", Owner: fmt.Sprint(next)}); err != nil {
		t.Fatal(err)
	}
}

// TestHandOffWithNoVoterLeft: a leader whose followers are gone (the whole
// cluster is stopping) does not wait for a transfer that cannot happen.
func TestHandOffWithNoVoterLeft(t *testing.T) {
	nodes := testCluster(t, 3, func(c *Config) { c.TickInterval = 100 * time.Millisecond }) // election timeout 1-2 s
	lead := waitLeader(t, nodes)
	for id, n := range nodes {
		if id != lead {
			n.Close()
		}
	}
	poll(t, "the leader's links to close", func() bool {
		for _, p := range nodes[lead].Status().Peers {
			if p.Connected {
				return false
			}
		}
		return true
	})
	start := time.Now()
	_, err := nodes[lead].HandOff()
	if took := time.Since(start); !errors.Is(err, ErrNotVoter) || took >= nodes[lead].TransferBound() {
		t.Fatalf("HandOff with no follower left = %v after %v; want ErrNotVoter at once", err, took)
	}
}

// membershipApplied waits until every node has applied the entries that
// make the cluster's membership: before, a new node knows no voter.
func membershipApplied(t testing.TB, nodes map[uint64]*Node) {
	t.Helper()
	for _, n := range nodes {
		poll(t, "every node to apply the membership", func() bool { return len(n.members.Load().cs.GetVoters()) == len(nodes) })
	}
}
