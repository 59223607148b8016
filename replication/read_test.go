package replication

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockd/lockd/lock"
)

// diskGate holds a node's log syncs while closed: entries reach the node
// but it can neither acknowledge nor apply them (raft applies only what is
// on disk).
type diskGate struct {
	held atomic.Pointer[chan struct{}]
}

// before is Config.beforeSync.
func (g *diskGate) before() error {
	if c := g.held.Load(); c != nil {
		<-*c
	}
	return nil
}

func (g *diskGate) close() {
	c := make(chan struct{})
	g.held.Store(&c)
}

// open releases the syncs held; it may be called more than once.
func (g *diskGate) open() {
	if c := g.held.Swap(nil); c != nil {
		close(*c)
	}
}

// WaitApplied waits until the table reflects every entry the node knows to
// be committed at the call, even when raft committed them (and another node
// acknowledged them) before this node applied them.
func TestWaitAppliedWaitsForWhatTheNodeKnowsCommitted(t *testing.T) {
	gates := map[uint64]*diskGate{}
	var mu sync.Mutex
	nodes := testCluster(t, 3, func(c *Config) {
		g := &diskGate{}
		mu.Lock()
		gates[c.ID] = g
		mu.Unlock()
		c.beforeSync = g.before
	})
	for _, g := range gates {
		t.Cleanup(g.open) // before the nodes close (cleanups run last first)
	}
	lead := waitLeader(t, nodes)
	f := nodes[followerOf(nodes, lead)]
	ctx := context.Background()

	gates[f.cfg.ID].close()
	tok, err := nodes[lead].Execute(ctx, lock.Command{Op: lock.OpLock, Name: "w", Owner: "o"})
	if err != nil || tok <= 0 {
		t.Fatalf("LOCK on the leader = %d, %v", tok, err)
	}
	index := nodes[lead].Status().Applied
	poll(t, "the follower to learn the write is committed", func() bool { return f.Status().Commit >= index })
	if _, ok := f.Table().Get("w"); ok {
		t.Fatal("the follower applied the write with its disk held")
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := f.WaitApplied(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied with a committed write unapplied = %v; want ctx's error", err)
	}

	gates[f.cfg.ID].open()
	long, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := f.WaitApplied(long); err != nil {
		t.Fatalf("WaitApplied: %v", err)
	}
	if info, ok := f.Table().Get("w"); !ok || int64(info.Token) != tok {
		t.Fatalf("after WaitApplied the follower has w = %+v, %v; want token %d", info, ok, tok)
	}
	if s := f.Status(); s.Applied < index {
		t.Fatalf("after WaitApplied the follower applied %d; the commit index it knew was %d", s.Applied, index)
	}
}

// A node cut off from the others does not wait for ever: WaitApplied
// returns ErrStale when ctx ends while the node is out of contact, and
// ErrClosed when the node closes.
func TestWaitAppliedOnACutOffNode(t *testing.T) {
	// The leader and a follower are cut off alike: each in turn is the one
	// left when the others close.
	for _, keepLeader := range []bool{true, false} {
		name := "follower"
		if keepLeader {
			name = "leader"
		}
		t.Run(name, func(t *testing.T) {
			nodes := testCluster(t, 3, nil)
			lead := waitLeader(t, nodes)
			kept := lead
			if !keepLeader {
				kept = followerOf(nodes, lead)
			}
			n := nodes[kept]
			// A write through it: a leader has then applied an entry of its
			// term, and a follower the commit index it knows, so WaitApplied
			// has nothing left to wait for but contact.
			if _, err := n.Execute(context.Background(), lock.Command{Op: lock.OpLock, Name: "before", Owner: "o"}); err != nil {
				t.Fatal(err)
			}
			for id, other := range nodes {
				if id != kept {
					other.Close()
				}
			}
			// Until an election timeout passes it may still count as in
			// contact; after that every call ends with ErrStale by its
			// deadline.
			const wait = 300 * time.Millisecond
			stale := false
			for deadline := time.Now().Add(10 * time.Second); !stale && time.Now().Before(deadline); {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				start := time.Now()
				err := n.WaitApplied(ctx)
				cancel()
				if took := time.Since(start); took > wait+2*time.Second {
					t.Fatalf("WaitApplied with a %v deadline returned after %v", wait, took)
				}
				switch {
				case errors.Is(err, ErrStale):
					stale = true
				case err != nil:
					t.Fatalf("WaitApplied on a cut-off node = %v; want ErrStale", err)
				}
			}
			if !stale {
				t.Fatal("WaitApplied on a node cut off for 10s never returned ErrStale")
			}
			// Without a deadline it waits until the node closes.
			done := make(chan error, 1)
			go func() { done <- n.WaitApplied(context.Background()) }()
			n.Close()
			select {
			case err := <-done:
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("WaitApplied on a closing node = %v; want ErrClosed", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("WaitApplied did not return within 10s of Close")
			}
		})
	}
}
