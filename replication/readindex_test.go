package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
)

// A follower whose link from the leader is slow has not applied a write
// the leader acknowledged; after ReadBarrier it has.
func TestReadBarrierOnALaggingFollowerSeesAcknowledgedWrites(t *testing.T) {
	c := startMemCluster(t, 3, 11, nil)
	lead := waitLeader(t, c.nodes)
	c.connected(t)
	f := c.others(lead)[0]
	c.net.delay(memAddrOf(lead), memAddrOf(f), 40*time.Millisecond)
	for i := range 5 {
		acked := lockFresh(t, c.nodes[lead], "w"+string(rune('a'+i)), 1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.nodes[f].ReadBarrier(ctx)
		cancel()
		if err != nil {
			t.Fatalf("ReadBarrier on follower %d: %v", f, err)
		}
		holdsAll(t, f, c.nodes[f], acked)
	}
}

// A leader cut off from its followers cannot confirm it still leads: its
// linearizable reads fail instead of answering from a replica the new
// leader's writes are overtaking.
func TestReadBarrierOnAnIsolatedLeaderFails(t *testing.T) {
	c := startMemCluster(t, 3, 12, nil)
	old := waitLeader(t, c.nodes)
	c.connected(t)
	lockFresh(t, c.nodes[old], "before", 1)
	c.net.isolate(memAddrOf(old))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.nodes[old].ReadBarrier(ctx); !errors.Is(err, ErrStale) {
		t.Fatalf("ReadBarrier on an isolated leader = %v, want ErrStale", err)
	}
	if ctx.Err() != nil {
		t.Fatal("ReadBarrier waited for its context: a round raft never answers must be given up after two election timeouts")
	}
	lead := waitLeader(t, c.subset(c.others(old)...))
	acked := lockFresh(t, c.nodes[lead], "after", 1)
	if err := c.nodes[lead].ReadBarrier(context.Background()); err != nil {
		t.Fatalf("ReadBarrier on the new leader: %v", err)
	}
	holdsAll(t, lead, c.nodes[lead], acked)
}

// Concurrent barriers share rounds and all succeed; on a single node too.
func TestReadBarrierConcurrentAndAlone(t *testing.T) {
	for _, n := range []int{1, 3} {
		c := startMemCluster(t, n, 13, nil)
		lead := waitLeader(t, c.nodes)
		if n > 1 {
			c.connected(t)
		}
		acked := lockFresh(t, c.nodes[lead], "x", 3)
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := range 50 {
			id := uint64(1 + i%n)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := c.nodes[id].ReadBarrier(ctx); err != nil {
					errs <- err
					return
				}
				if info, ok := c.nodes[id].Table().Get(acked[2].name); !ok || int64(info.Token) != acked[2].token {
					errs <- errors.New("a barrier returned before the write was applied")
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("%d nodes: %v", n, err)
		}
	}
}

// An answer to a round of this node's earlier run (queued by the leader
// while the node restarted) is not taken for an answer to this run's
// rounds: it may predate writes acknowledged while the node was down.
func TestReadStatesOfAnEarlierRunAreIgnored(t *testing.T) {
	answer := func(id, run, seq, index uint64) raft.ReadState {
		ctx := binary.BigEndian.AppendUint64(nil, id)
		ctx = binary.BigEndian.AppendUint64(ctx, run)
		return raft.ReadState{Index: index, RequestCtx: binary.BigEndian.AppendUint64(ctx, seq)}
	}
	ch := make(chan uint64, 1)
	l := &loop{n: &Node{cfg: Config{ID: 2}}, reads: readIndexes{run: 77, seq: 1, rounds: map[uint64]*readRound{1: {waiters: []chan uint64{ch}}}}}
	l.readStates([]raft.ReadState{answer(2, 76, 900, 10), answer(3, 77, 5, 11)})
	select {
	case i := <-ch:
		t.Fatalf("round 1 was answered %d by another run's or another node's answer", i)
	default:
	}
	l.readStates([]raft.ReadState{answer(2, 77, 1, 12)})
	if i := <-ch; i != 12 {
		t.Fatalf("round 1 answered %d, want 12", i)
	}
}

// A read asked while no leader is known waits for one (within its
// deadline) and is answered once the election ends; it used to go into a
// round that raft dropped, and failed with ErrStale after two election
// timeouts even though a leader came.
func TestReadBarrierWaitsForALeader(t *testing.T) {
	// Election timeouts of 0.5 s, not 0.1: a round lives two, and on a
	// loaded machine a new leader's first commit and heartbeat round took
	// longer than 0.2 s.
	c := startMemCluster(t, 3, 41, func(c *Config) { c.ElectionTicks = 50 })
	lead := waitLeader(t, c.nodes)
	c.connected(t)
	for id := range c.nodes {
		c.net.isolate(memAddrOf(id))
	}
	f := c.nodes[c.others(lead)[0]]
	poll(t, "the follower to lose its leader", func() bool { return f.Status().Leader == 0 })
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- f.ReadBarrier(ctx)
	}()
	// Three election timeouts pass without a leader, longer than a round
	// lives (two).
	for range 3 * f.cfg.ElectionTicks {
		<-f.pub.ticked()
	}
	select {
	case err := <-done:
		t.Fatalf("the read ended without a leader: %v", err)
	default:
	}
	changes := f.LeaderChanges()
	c.net.heal()
	// Once a leader is elected the read is answered; only if the leader
	// changed again meanwhile (raft drops a round whose leader went, as on a
	// loaded machine) may it fail, as any read across a leader change may.
	if err := <-done; err != nil && (!errors.Is(err, ErrStale) || f.LeaderChanges()-changes < 2) {
		t.Fatalf("the read once a leader was elected: %v (leader changes since the heal: %d)", err, f.LeaderChanges()-changes)
	}
}
