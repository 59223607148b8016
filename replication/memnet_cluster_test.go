package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lockd/lockd/lock"
)

// memCluster is n nodes wired through one memNet, whose faults the test
// drives.
type memCluster struct {
	net   *memNet
	nodes map[uint64]*Node
}

// memAddrOf is node id's address on a memCluster's network, in host:port
// form as a member's address must be.
func memAddrOf(id uint64) string { return fmt.Sprintf("n%d:7000", id) }

// startMemCluster starts n nodes (ids 1..n) on a memNet seeded with seed;
// tune, if not nil, adjusts each node's Config. The nodes close, and the
// network heals first, when the test ends.
func startMemCluster(t testing.TB, n int, seed int64, tune func(*Config)) *memCluster {
	t.Helper()
	c := &memCluster{net: newMemNet(seed), nodes: map[uint64]*Node{}}
	peers := map[uint64]string{}
	for id := uint64(1); id <= uint64(n); id++ {
		peers[id] = memAddrOf(id)
	}
	dir := t.TempDir()
	cfgs := map[uint64]Config{}
	for id := uint64(1); id <= uint64(n); id++ {
		// Every listener first, so that dropAll and isolate know all nodes.
		cfgs[id] = Config{
			ID: id, Peers: peers, DataDir: filepath.Join(dir, fmt.Sprint(id)),
			Listener: c.net.listen(memAddrOf(id)), Dial: c.net.dialer(memAddrOf(id)),
			ClusterID: "test", Secret: testSecret, ClientAddr: fmt.Sprintf("127.0.0.1:%d", 6378+id),
			TickInterval: 10 * time.Millisecond, RequestTimeout: 5 * time.Second, Logger: dbgLogger,
		}
	}
	for id := uint64(1); id <= uint64(n); id++ {
		cfg := cfgs[id]
		if tune != nil {
			tune(&cfg)
		}
		node, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[id] = node
		t.Cleanup(func() {
			c.net.heal()
			node.Close()
		})
	}
	return c
}

// subset returns the nodes ids in a map of their own, for waitLeader.
func (c *memCluster) subset(ids ...uint64) map[uint64]*Node {
	m := map[uint64]*Node{}
	for _, id := range ids {
		m[id] = c.nodes[id]
	}
	return m
}

// others returns every id but id.
func (c *memCluster) others(id uint64) []uint64 {
	var ids []uint64
	for o := range c.nodes {
		if o != id {
			ids = append(ids, o)
		}
	}
	return ids
}

// connected polls until every node's links to all its peers are up.
func (c *memCluster) connected(t testing.TB) {
	t.Helper()
	poll(t, "every peer link up", func() bool {
		for _, n := range c.nodes {
			for _, p := range n.Status().Peers {
				if !p.Connected {
					return false
				}
			}
		}
		return true
	})
}

// converged polls until every node has applied the same entries and holds
// byte-equal tables.
func (c *memCluster) converged(t testing.TB) {
	t.Helper()
	poll(t, "every table equal", func() bool {
		var first []byte
		var applied uint64
		for _, n := range c.nodes {
			a := n.Status().Applied
			s := n.Table().Snapshot()
			if first == nil {
				first, applied = s, a
				continue
			}
			if a != applied || !bytes.Equal(s, first) {
				return false
			}
		}
		return true
	})
}

// ackedLock is a LOCK the cluster acknowledged.
type ackedLock struct {
	name, owner string
	token       int64
}

// lockFresh takes count fresh locks through node, each acknowledged, and
// returns them.
func lockFresh(t testing.TB, node *Node, prefix string, count int) []ackedLock {
	t.Helper()
	var acked []ackedLock
	for i := range count {
		name := fmt.Sprintf("%s-%d", prefix, i)
		tok, err := node.Execute(context.Background(), lock.Command{Op: lock.OpLock, Name: name, Owner: prefix})
		if err != nil || tok <= 0 {
			t.Fatalf("LOCK %s = %d, %v", name, tok, err)
		}
		acked = append(acked, ackedLock{name, prefix, tok})
	}
	return acked
}

// holdsAll fails t unless node's table holds every acked lock with its
// owner and token.
func holdsAll(t testing.TB, id uint64, node *Node, acked []ackedLock) {
	t.Helper()
	for _, a := range acked {
		info, ok := node.Table().Get(a.name)
		if !ok || info.Owner != a.owner || int64(info.Token) != a.token {
			t.Fatalf("node %d: acknowledged LOCK %s (owner %s, token %d) is %+v, held=%v", id, a.name, a.owner, a.token, info, ok)
		}
	}
}

// TestMemNetIsolatedLeaderStepsDownAndRejoins: a leader cut off from both
// its followers acknowledges nothing and stops leading (CheckQuorum); the
// two others elect a leader among themselves that commits; once the network
// heals the old leader follows the new one and its table equals theirs.
func TestMemNetIsolatedLeaderStepsDownAndRejoins(t *testing.T) {
	c := startMemCluster(t, 3, 1, nil)
	old := waitLeader(t, c.nodes)
	c.connected(t)
	before := lockFresh(t, c.nodes[old], "before", 5)

	c.net.isolate(memAddrOf(old))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	tok, err := c.nodes[old].Execute(ctx, lock.Command{Op: lock.OpLock, Name: "isolated", Owner: "o"})
	cancel()
	if err == nil || (!errors.Is(err, ErrTimeout) && !errors.Is(err, ErrNoLeader)) {
		t.Fatalf("LOCK through an isolated leader = %d, %v; want ErrTimeout or ErrNoLeader", tok, err)
	}
	poll(t, "the isolated leader to step down", func() bool { return c.nodes[old].Status().Role != "leader" })
	majority := c.subset(c.others(old)...)
	lead := waitLeader(t, majority)
	if lead == old {
		t.Fatalf("the isolated node %d leads the majority", old)
	}
	after := lockFresh(t, c.nodes[lead], "after", 5)
	for id, n := range majority {
		poll(t, "the majority to apply the new writes", func() bool {
			_, ok := n.Table().Get(after[len(after)-1].name)
			return ok
		})
		holdsAll(t, id, n, append(before, after...))
	}

	c.net.heal()
	// The majority may have elected again since: the old leader follows
	// whoever leads now.
	poll(t, "the old leader to follow another", func() bool {
		s := c.nodes[old].Status()
		return s.Role == "follower" && s.Leader != 0 && s.Leader != old && c.nodes[s.Leader].Status().Role == "leader"
	})
	c.converged(t)
	holdsAll(t, old, c.nodes[old], append(before, after...))
}

// TestMemNetLeaderThatCannotHearFollowers: the leader's followers hear it but
// it hears neither of them. CheckQuorum makes it step down, as it hears no
// quorum; the followers elect one of themselves once its heartbeats stop,
// and ignore the deaf node's campaigns while they hear their leader
// (CheckQuorum's lease; PreVote also keeps its term from growing): the
// cluster ends with one leader, which commits, and no acknowledged write is
// lost.
func TestMemNetLeaderThatCannotHearFollowers(t *testing.T) {
	c := startMemCluster(t, 3, 2, nil)
	old := waitLeader(t, c.nodes)
	c.connected(t)
	acked := lockFresh(t, c.nodes[old], "before", 5)

	for _, f := range c.others(old) {
		c.net.cut(memAddrOf(f), memAddrOf(old))
	}
	// Writes through every node while the link is half cut: whichever are
	// acknowledged must survive.
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, n := range c.nodes {
		wg.Go(func() {
			for i := range 5 {
				name := fmt.Sprintf("during-%d-%d", id, i)
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				tok, err := n.Execute(ctx, lock.Command{Op: lock.OpLock, Name: name, Owner: "during"})
				cancel()
				if err == nil {
					mu.Lock()
					acked = append(acked, ackedLock{name, "during", tok})
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	poll(t, "the deaf leader to step down", func() bool { return c.nodes[old].Status().Role != "leader" })
	lead := waitLeader(t, c.subset(c.others(old)...))
	acked = append(acked, lockFresh(t, c.nodes[lead], "after", 5)...)
	// One node leads, not the deaf one.
	poll(t, "a single leader", func() bool {
		var leaders []uint64
		for id, n := range c.nodes {
			if n.Status().Role == "leader" {
				leaders = append(leaders, id)
			}
		}
		return len(leaders) == 1 && leaders[0] != old
	})

	c.net.heal()
	c.converged(t)
	for id, n := range c.nodes {
		holdsAll(t, id, n, acked)
	}
}

// memOp is one command of TestMemNetRandomDrops and what it returned.
type memOp struct {
	unlock     bool
	name       string
	owner      string
	value      int64
	err        error
	start, end time.Time
}

// TestMemNetRandomDrops runs 200 LOCKs and UNLOCKs through random nodes while
// a fifth of the Writes on every link are lost. Every acknowledged LOCK got a
// token of its own, larger than every token acknowledged before it was sent
// (tokens increase in apply order, and apply order contains real-time
// order); after the heal every node holds the same table, and in it every
// acknowledged LOCK not unlocked since, with its token, and no lock an
// acknowledged UNLOCK released. A command that timed out may or may not have
// acted, but never for another owner.
func TestMemNetRandomDrops(t *testing.T) {
	const workers, perWorker = 20, 10
	c := startMemCluster(t, 3, 3, func(cfg *Config) { cfg.RequestTimeout = 4 * time.Second })
	waitLeader(t, c.nodes)
	c.connected(t)
	c.net.dropAll(0.2)

	ops := make([][]memOp, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewSource(int64(w)))
			owner := fmt.Sprintf("w%d", w)
			var held []string
			for i := range perWorker {
				node := c.nodes[uint64(1+rng.Intn(len(c.nodes)))]
				op := memOp{owner: owner, name: fmt.Sprintf("%s-%d", owner, i)}
				cmd := lock.Command{Op: lock.OpLock, Name: op.name, Owner: owner}
				if len(held) > 0 && rng.Intn(3) == 0 {
					k := rng.Intn(len(held))
					op.unlock, op.name = true, held[k]
					held = append(held[:k], held[k+1:]...)
					cmd = lock.Command{Op: lock.OpUnlock, Name: op.name, Owner: owner}
				}
				op.start = time.Now()
				op.value, op.err = node.Execute(context.Background(), cmd)
				op.end = time.Now()
				if !op.unlock && op.err == nil {
					held = append(held, op.name)
				}
				ops[w] = append(ops[w], op)
			}
		})
	}
	wg.Wait()
	c.net.heal()
	c.converged(t)

	var locks []memOp
	released := map[string]bool{}
	maybeReleased := map[string]bool{} // by an UNLOCK that timed out
	failed := 0
	for _, wops := range ops {
		for _, op := range wops {
			switch {
			case op.err != nil:
				if !errors.Is(op.err, ErrTimeout) && !errors.Is(op.err, ErrNoLeader) {
					t.Errorf("%s %s: %v", op.owner, op.name, op.err)
				}
				failed++
				if op.unlock {
					maybeReleased[op.name] = true
				}
			case op.unlock:
				if op.value != 1 {
					t.Errorf("UNLOCK %s of its own acknowledged lock = %d", op.name, op.value)
				}
				released[op.name] = true
			default:
				if op.value <= 0 {
					t.Errorf("LOCK of the fresh name %s = %d", op.name, op.value)
				}
				locks = append(locks, op)
			}
		}
	}
	t.Logf("%d commands, %d acknowledged LOCKs, %d acknowledged UNLOCKs, %d timed out",
		workers*perWorker, len(locks), len(released), failed)
	tokens := map[int64]string{}
	for _, a := range locks {
		if other, dup := tokens[a.value]; dup {
			t.Errorf("token %d granted to both %s and %s", a.value, other, a.name)
		}
		tokens[a.value] = a.name
		for _, b := range locks {
			if a.end.Before(b.start) && a.value >= b.value {
				t.Errorf("LOCK %s (token %d) was acknowledged before LOCK %s was sent, which got token %d", a.name, a.value, b.name, b.value)
			}
		}
	}
	for id, n := range c.nodes {
		for _, a := range locks {
			info, ok := n.Table().Get(a.name)
			switch {
			case maybeReleased[a.name]:
			case released[a.name] && ok:
				t.Errorf("node %d: %s is %+v after its acknowledged UNLOCK", id, a.name, info)
			case !released[a.name] && (!ok || info.Owner != a.owner || int64(info.Token) != a.value):
				t.Errorf("node %d: acknowledged LOCK %s (token %d) is %+v, held=%v", id, a.name, a.value, info, ok)
			}
		}
		for _, wops := range ops {
			for _, op := range wops {
				if op.err != nil && !op.unlock {
					if info, ok := n.Table().Get(op.name); ok && (info.Owner != op.owner || tokens[int64(info.Token)] != "") {
						t.Errorf("node %d: LOCK %s timed out, and the lock is %+v", id, op.name, info)
					}
				}
			}
		}
	}
}
