package replication

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockd/lockd/lock"
)

// restart closes n and starts it again on the same config and cluster
// address, after prepare (which may change its data directory) has run.
func restart(t testing.TB, n *Node, prepare func(dir string)) *Node {
	t.Helper()
	n.Close()
	cfg := n.cfg
	if prepare != nil {
		prepare(cfg.DataDir)
	}
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		cfg.Listener, err = net.Listen("tcp", n.cfg.Listener.Addr().String())
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func followerOf(nodes map[uint64]*Node, lead uint64) uint64 {
	for id := uint64(1); ; id++ {
		if id != lead && nodes[id] != nil {
			return id
		}
	}
}

func lockAll(t testing.TB, n *Node, prefix string, count int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < count; i += 100 {
		var cmds []lock.Command
		for j := i; j < min(i+100, count); j++ {
			cmds = append(cmds, lock.Command{Op: lock.OpLock, Name: fmt.Sprint(prefix, j), Owner: "o"})
		}
		_, errs := n.ExecuteAll(ctx, cmds)
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

func failedWith(t testing.TB, n *Node, words ...string) {
	t.Helper()
	select {
	case <-n.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not stop")
	}
	for _, w := range words {
		if !strings.Contains(n.Err().Error(), w) {
			t.Fatalf("the node stopped with %q; want it to say %q", n.Err(), w)
		}
	}
	t.Log(n.Err())
}

// A node restarted on an empty data directory comes back with another
// incarnation: its peers refuse it with a verdict it can trust, and it stops
// with a message instead of voting or panicking in a loop.
func TestWipedNodeStopsAndTheOthersGoOn(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	lockAll(t, nodes[lead], "before-", 300)
	f := followerOf(nodes, lead)
	poll(t, "the follower to apply", func() bool { return nodes[f].Table().Len() == 300 })
	wiped := restart(t, nodes[f], func(dir string) {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	})
	failedWith(t, wiped, "incarnation", "wiped or replaced")
	lockAll(t, nodes[lead], "after-", 10)
}

// A node whose data directory is an older copy of itself (same
// incarnation, shorter log) hears from the leader that entries it
// acknowledged are committed: it stops and says so, where raft would panic
// ("tocommit(N) is out of range") on every restart.
func TestNodeThatLostAcknowledgedEntriesStops(t *testing.T) {
	// Production's ticks: the leader must not change under a loaded test
	// machine (a new leader knows nothing of what the node acknowledged).
	nodes := testCluster(t, 3, func(c *Config) { c.TickInterval = 100 * time.Millisecond })
	lead := waitLeader(t, nodes)
	lockAll(t, nodes[lead], "a-", 10)
	f := followerOf(nodes, lead)
	poll(t, "the follower to apply", func() bool { return nodes[f].Table().Len() == 10 })
	backup := t.TempDir()
	nodes[f] = restart(t, nodes[f], func(dir string) {
		if err := os.CopyFS(backup, os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
	})
	lockAll(t, nodes[lead], "b-", 200)
	poll(t, "the follower to apply", func() bool { return nodes[f].Table().Len() == 210 })
	old := restart(t, nodes[f], func(dir string) {
		os.RemoveAll(dir)
		if err := os.CopyFS(dir, os.DirFS(backup)); err != nil {
			t.Fatal(err)
		}
	})
	failedWith(t, old, "lost acknowledged entries")
	lockAll(t, nodes[lead], "c-", 10)
}

// throttled slows writes to rate bytes per second, in small pieces, the way
// a slow link does.
type throttled struct {
	net.Conn
	rate int
}

func (c *throttled) Write(b []byte) (int, error) {
	const piece = 16 << 10
	n := 0
	for n < len(b) {
		k := min(piece, len(b)-n)
		w, err := c.Conn.Write(b[n : n+k])
		n += w
		if err != nil {
			return n, err
		}
		time.Sleep(time.Duration(k) * time.Second / time.Duration(c.rate))
	}
	return n, nil
}

// A snapshot is streamed in chunks, each write with its own deadline: one
// that takes far longer than a write timeout over a slow link arrives, where
// a single frame with one 2 s deadline never did.
func TestLargeSnapshotReachesAFollowerOverASlowLink(t *testing.T) {
	var slowAddr sync.Map
	nodes := testCluster(t, 3, func(c *Config) {
		// Ticks as in production: a 1 MiB append takes half a second over
		// this link, and must not look like a lost leader.
		c.TickInterval = 100 * time.Millisecond
		c.SnapshotEntries = 20
		slowAddr.Store(c.Peers[3], true)
		c.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if _, slow := slowAddr.Load(addr); err == nil && slow {
				return &throttled{Conn: conn, rate: 2 << 20}, nil
			}
			return conn, err
		}
	})
	waitLeader(t, nodes)
	third := nodes[3] // the one that lags
	third.Close()
	delete(nodes, 3)
	lead := waitLeader(t, nodes)
	long := strings.Repeat("n", 1000)
	lockAll(t, nodes[lead], long, 7000) // a ~7.5 MB table, ~4 s at 2 MB/s
	third = restart(t, third, nil)
	deadline := time.Now().Add(60 * time.Second)
	for third.Table().Len() < 7000 {
		if time.Now().After(deadline) {
			t.Fatalf("the lagging node has %d of 7000 locks after 60s", third.Table().Len())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A request id the table remembers for another command gets an error and
// changes nothing. (Ids once came from the clock at start: a node restarted
// with its clock near its previous start reused ids, and a LOCK was answered
// "granted" while nobody held the lock.)
func TestReusedRequestIDIsRefused(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	f := nodes[followerOf(nodes, lead)]
	ctx := context.Background()
	if _, err := f.Execute(ctx, lock.Command{Op: lock.OpLock, Name: "warm", Owner: "o"}); err != nil {
		t.Fatal(err)
	}
	f.ids.mu.Lock()
	seq := f.ids.seq
	f.ids.mu.Unlock()
	if tok, err := f.Execute(ctx, lock.Command{Op: lock.OpLock, Name: "a", Owner: "o"}); tok <= 0 || err != nil {
		t.Fatalf("LOCK a: %d, %v", tok, err)
	}
	f.ids.mu.Lock()
	f.ids.seq = seq // as a restart that handed out the same ids again would
	f.ids.mu.Unlock()
	if v, err := f.Execute(ctx, lock.Command{Op: lock.OpLock, Name: "b", Owner: "o"}); !errors.Is(err, ErrIDConflict) {
		t.Fatalf("LOCK b under a reused id = %d, %v; want ErrIDConflict", v, err)
	}
	if _, held := nodes[lead].Table().Get("b"); held {
		t.Fatal("the command under a reused id was applied")
	}
}
