package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// prepareJoin makes node id of c, not yet started: fresh ports and data
// directory, node 1's flags (the cluster's secret among them; not
// --force-new-cluster), and --join
// with --peers naming itself and the members given, at their own cluster
// addresses (not through the test's proxies: the address MEMBER ADD
// replicates is the same for every member). Start it with c.start(id)
// after MEMBER ADD.
func (c *cluster) prepareJoin(id int, members []int) *proc {
	c.t.Helper()
	p := c.joinProc(id, members)
	c.nodes[id] = p
	return p
}

// joinProc is prepareJoin's process, not added to c.nodes (the Jepsen
// suite's members nemesis keeps its extra members apart).
func (c *cluster) joinProc(id int, members []int) *proc {
	c.t.Helper()
	p := &proc{id: id, client: freePort(c.t), cluster: freePort(c.t), dir: filepath.Join(c.t.TempDir(), fmt.Sprint(id))}
	peers := []string{fmt.Sprintf("%d=%s", id, p.cluster)}
	for _, m := range members {
		peers = append(peers, fmt.Sprintf("%d=%s", m, c.nodes[m].cluster))
	}
	set := map[string]string{
		"--id": fmt.Sprint(id), "--listen": p.client, "--cluster-listen": p.cluster,
		"--peers": strings.Join(peers, ","), "--data-dir": p.dir,
		"--tls-port": p.client, // a cluster with clients on TLS only (clusterOpts.tls) serves them there
	}
	if slices.Contains(c.nodes[1].args, "--tls-port") {
		set["--listen"] = ""
	}
	base := c.nodes[1].args
	for i := 0; i < len(base); i++ {
		a := base[i]
		if v, ok := set[a]; ok && i+1 < len(base) {
			p.args = append(p.args, a, v)
			i++
			continue
		}
		if a != "--force-new-cluster" { // node 1's own restart's, not the cluster's
			p.args = append(p.args, a)
		}
	}
	p.args = append(p.args, "--join")
	p.logPath = filepath.Join(c.t.TempDir(), fmt.Sprintf("lockd-%d.log", id))
	c.t.Cleanup(func() {
		p.kill()
		if c.t.Failed() {
			c.dumpProcLog(p)
		}
	})
	return p
}

// member runs MEMBER args on node i and returns its reply, or its error.
func (c *cluster) member(i int, args ...any) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.client(i).Do(ctx, append([]any{"MEMBER"}, args...)...).Result()
}

// roles returns node i's MEMBER LIST as id → role, or nil when it fails.
func (c *cluster) roles(i int) map[int]string {
	v, err := c.member(i, "LIST")
	if err != nil {
		return nil
	}
	out := map[int]string{}
	for _, m := range v.([]any) {
		f := m.([]any)
		out[int(f[0].(int64))] = f[2].(string)
	}
	return out
}

// waitRoles polls until node i's MEMBER LIST is want.
func (c *cluster) waitRoles(i int, timeout time.Duration, want map[int]string) {
	c.t.Helper()
	poll(c.t, timeout, fmt.Sprintf("node %d to list members %v", i, want), func() bool {
		got := c.roles(i)
		if len(got) != len(want) {
			return false
		}
		for id, r := range want {
			if got[id] != r {
				return false
			}
		}
		return true
	})
}

// addNode adds node id through node via, starts it joining, and waits
// until via lists it as a voter (the leader promotes it once caught up).
func (c *cluster) addNode(via, id int, members []int) time.Duration {
	c.t.Helper()
	p := c.prepareJoin(id, members)
	start := time.Now()
	if _, err := c.member(via, "ADD", id, p.cluster); err != nil {
		c.t.Fatalf("MEMBER ADD %d %s on node %d: %v", id, p.cluster, via, err)
	}
	c.start(id)
	poll(c.t, 60*time.Second, fmt.Sprintf("node %d to become a voter", id), func() bool {
		return c.roles(via)[id] == "voter"
	})
	return time.Since(start)
}

// loadGen runs workers that LOCK fresh names through the given nodes until
// stopped or count locks are acknowledged, and records the acknowledged ones.
type loadGen struct {
	mu    sync.Mutex
	acked map[string]int64 // name → token
	fails atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startLoad(c *cluster, nodes []int, workers, count int) *loadGen {
	g := &loadGen{acked: map[string]int64{}, stop: make(chan struct{})}
	var seq atomic.Int64
	for w := range workers {
		rdb := c.client(nodes[w%len(nodes)])
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for {
				select {
				case <-g.stop:
					return
				default:
				}
				n := seq.Add(1)
				if n > int64(count) {
					return
				}
				name := fmt.Sprintf("load-%d", n)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				tok, err := rdb.Do(ctx, "LOCK", name, "loader").Int64()
				cancel()
				if err != nil {
					g.fails.Add(1)
					continue
				}
				g.mu.Lock()
				g.acked[name] = tok
				g.mu.Unlock()
			}
		}()
	}
	return g
}

// finish stops the load and returns the acknowledged locks.
func (g *loadGen) finish() map[string]int64 {
	close(g.stop)
	g.wg.Wait()
	return g.acked
}

// holds fails the test unless node i holds every acknowledged lock.
func (c *cluster) holds(i int, acked map[string]int64) {
	c.t.Helper()
	rdb := c.client(i)
	ctx := context.Background()
	for name := range acked {
		owner, err := rdb.Do(ctx, "OWNER", name).Text()
		if err != nil || owner != "loader" {
			c.t.Fatalf("node %d: acknowledged LOCK %s has owner %q, %v", i, name, owner, err)
		}
	}
}

// Grow 3 → 5 and shrink 5 → 3 under a bounded client load: each added
// node catches up and is promoted, each removal is applied, and every
// acknowledged lock is held on the nodes that remain and on the new ones.
func TestMembersGrowAndShrinkUnderLoad(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	load := startLoad(c, []int{1, 2, 3}, 4, 20000)
	for _, id := range []int{4, 5} {
		took := c.addNode(2, id, []int{1, 2, 3})
		t.Logf("node %d added, caught up and promoted in %v", id, took)
	}
	c.waitRoles(1, 10*time.Second, map[int]string{1: "voter", 2: "voter", 3: "voter", 4: "voter", 5: "voter"})
	for _, id := range []int{4, 5} {
		if _, err := c.member(1, "REMOVE", id); err != nil {
			t.Fatalf("MEMBER REMOVE %d: %v", id, err)
		}
		c.kill(id)
	}
	acked := load.finish()
	t.Logf("%d locks acknowledged during the changes, %d requests failed (retried by clients in practice)", len(acked), load.fails.Load())
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged while the cluster grew and shrank")
	}
	for _, i := range []int{1, 2, 3} {
		c.waitRoles(i, 10*time.Second, map[int]string{1: "voter", 2: "voter", 3: "voter"})
		c.holds(i, acked)
	}
}

// A killed node is replaced by an empty one under a new id: remove the old
// id, add the new; the new node holds everything that was acknowledged.
func TestMembersReplaceAKilledNode(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	lead := c.waitLeader(10*time.Second, nil)
	dead := 1 + lead%3 // a follower
	load := startLoad(c, []int{lead}, 2, 500)
	acked := load.finish()
	c.kill(dead)
	alive := []int{}
	for i := 1; i <= 3; i++ {
		if i != dead {
			alive = append(alive, i)
		}
	}
	if _, err := c.member(alive[0], "REMOVE", dead); err != nil {
		t.Fatalf("MEMBER REMOVE %d: %v", dead, err)
	}
	c.addNode(alive[0], 4, alive)
	c.waitRoles(4, 10*time.Second, map[int]string{alive[0]: "voter", alive[1]: "voter", 4: "voter"})
	c.holds(4, acked)
}

// A removed node that keeps running cannot disturb the cluster. It is cut
// off while it is removed, so it never hears of it: it campaigns, and once
// the network heals its connections are refused as a non-member's; the
// leader keeps its term, and writes go on.
func TestMembersRemovedNodeCannotDisturb(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	lead := c.waitLeader(10*time.Second, nil)
	gone := 1 + lead%3
	rest := []int{}
	for i := 1; i <= 3; i++ {
		if i != gone {
			rest = append(rest, i)
		}
	}
	c.isolate(gone)
	if _, err := c.member(lead, "REMOVE", gone); err != nil {
		t.Fatalf("MEMBER REMOVE %d: %v", gone, err)
	}
	poll(t, 10*time.Second, "the removed node to campaign", func() bool { return c.info(gone)["role"] == "candidate" })
	c.healAll()
	term := c.info(lead)["raft_term"]
	// Several election timeouts (1-2 s each by default) while node `gone`
	// runs without a leader: it campaigns, and nobody listens.
	load := startLoad(c, []int{lead}, 2, 1<<30)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := c.info(gone); m == nil {
			t.Fatalf("the removed node %d stopped answering", gone)
		}
		time.Sleep(500 * time.Millisecond)
	}
	acked := load.finish()
	if got := c.waitLeader(5*time.Second, rest); got != lead || c.info(lead)["raft_term"] != term {
		t.Fatalf("leader %d in term %s after the removed node ran; want %d in term %s", got, c.info(lead)["raft_term"], lead, term)
	}
	if len(acked) == 0 {
		t.Fatal("no write acknowledged while the removed node ran")
	}
	if !strings.Contains(c.logOf(lead), "not a member") {
		t.Fatalf("the leader's log shows no refusal of the removed node")
	}
	c.waitRoles(lead, 5*time.Second, map[int]string{rest[0]: "voter", rest[1]: "voter"})
}

// A change asked of a leader whose followers are gone fails with a clear
// error, within the request timeout, and changes nothing.
func TestMembersChangeWithoutQuorumFails(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	lead := c.waitLeader(10*time.Second, nil)
	for i := 1; i <= 3; i++ {
		if i != lead {
			c.kill(i)
		}
	}
	var err error
	start := time.Now()
	// Within an election timeout of the kill the leader may still count
	// its followers as heard from: such a change is proposed, cannot
	// commit, and times out with its outcome unknown. After that: refused.
	poll(t, 15*time.Second, "a change without quorum to be refused", func() bool {
		_, err = c.member(lead, "ADD", 4, "127.0.0.1:1")
		if err == nil {
			t.Fatal("MEMBER ADD without quorum succeeded")
		}
		t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
		return strings.Contains(err.Error(), "quorum") || strings.HasPrefix(err.Error(), "TRYAGAIN no leader")
	})
	if r := c.roles(lead); len(r) != 3 {
		t.Fatalf("members after the refused change: %v", r)
	}
}

// The time to add a node to a cluster holding 100,000 locks: from MEMBER
// ADD to the new node promoted, then to it holding every lock. With
// --snapshot-entries 200 the leader's log no longer starts at 1, so the new
// node catches up from a snapshot and then the log. Measured, not asserted.
func TestMembersAddToALoadedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 100,000 locks")
	}
	const locks = 100000
	c := startCluster(t, 3, clusterOpts{extra: []string{"--snapshot-entries", "200"}})
	lead := c.waitLeader(10*time.Second, nil)
	rdb := c.client(lead)
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < locks; i += 1000 {
		pipe := rdb.Pipeline()
		for j := i; j < i+1000; j++ {
			pipe.Do(ctx, "LOCK", fmt.Sprintf("big-%d", j), "loader")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("loading locks %d..: %v", i, err)
		}
	}
	t.Logf("loaded %d locks in %v", locks, time.Since(start))
	added := time.Now()
	promoted := c.addNode(lead, 4, []int{1, 2, 3})
	rdb4 := c.client(4)
	poll(t, 60*time.Second, "node 4 to hold every lock", func() bool {
		n, err := rdb4.Do(ctx, "DBSIZE").Int64()
		return err == nil && n == locks
	})
	t.Logf("adding a node to a cluster of %d locks: promoted %v after MEMBER ADD (process start, snapshot, log), serving all of them %v after",
		locks, promoted, time.Since(added))
	if !strings.Contains(c.logOf(4), "installed snapshot") {
		t.Fatal("node 4 caught up without a snapshot; this test measures the snapshot path")
	}
}

// Disaster recovery: with two of three nodes gone for good, the survivor
// restarted with --force-new-cluster leads alone with every acknowledged
// lock, and grows again with MEMBER ADD.
func TestMembersForceNewCluster(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	lead := c.waitLeader(10*time.Second, nil)
	acked := startLoad(c, []int{lead}, 2, 300).finish()
	survivor := 1 + lead%3
	c.holds(survivor, acked)
	for i := 1; i <= 3; i++ {
		c.kill(i)
	}
	c.nodes[survivor].args = append(c.nodes[survivor].args, "--force-new-cluster")
	c.start(survivor)
	c.waitLeader(10*time.Second, []int{survivor})
	c.waitRoles(survivor, 10*time.Second, map[int]string{survivor: "voter"})
	c.holds(survivor, acked)
	if !strings.Contains(c.logOf(survivor), "forced a new cluster") {
		t.Fatal("the survivor's log does not say it forced a new cluster")
	}
	c.addNode(survivor, 4, []int{survivor})
	c.waitRoles(4, 10*time.Second, map[int]string{survivor: "voter", 4: "voter"})
	c.holds(4, acked)
}

// A node joins a cluster whose clients use TLS only and whose peers use
// mutual TLS, and becomes a voter: the members check its certificate
// against the address it was added with (they once checked the --peers of
// their start, where it was not).
func TestMembersJoinATLSCluster(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{tls: true})
	lead := c.waitLeader(10*time.Second, nil)
	took := c.addNode(lead, 4, []int{1, 2, 3})
	t.Logf("node 4 joined the TLS cluster and became a voter in %v", took)
	c.waitLeader(10*time.Second, nil)
}

// A learner that never catches up (added, never started) harms nothing: it
// stays a learner, does not count toward the quorum (a voter killed beside
// it leaves two of three, and writes go on), blocks no later change, and
// MEMBER REMOVE takes it out.
func TestMembersLearnerThatNeverCatchesUp(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	lead := c.waitLeader(10*time.Second, nil)
	if _, err := c.member(lead, "ADD", 4, freePort(t)); err != nil {
		t.Fatalf("MEMBER ADD 4: %v", err)
	}
	want := map[int]string{1: "voter", 2: "voter", 3: "voter", 4: "learner"}
	c.waitRoles(lead, 10*time.Second, want)
	other := 1 + lead%3
	c.kill(other)
	load := startLoad(c, []int{lead}, 2, 200)
	// Several election timeouts (1-2 s each by default): long enough for a
	// promotion the leader should not make.
	time.Sleep(5 * time.Second)
	acked := load.finish()
	if len(acked) == 0 {
		t.Fatal("no write acknowledged with a voter down beside the stuck learner")
	}
	if r := c.roles(lead); r[4] != "learner" {
		t.Fatalf("the learner that never caught up became %q: %v", r[4], r)
	}
	c.start(other)
	if _, err := c.member(lead, "REMOVE", 4); err != nil {
		t.Fatalf("MEMBER REMOVE 4: %v", err)
	}
	c.waitRoles(lead, 10*time.Second, map[int]string{1: "voter", 2: "voter", 3: "voter"})
	c.holds(lead, acked)
}
