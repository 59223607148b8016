package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// others returns the node ids of c other than the given ones.
func (c *cluster) others(not ...int) []int {
	var ids []int
	for i := 1; i <= len(c.nodes); i++ {
		skip := false
		for _, n := range not {
			skip = skip || n == i
		}
		if !skip {
			ids = append(ids, i)
		}
	}
	return ids
}

func TestLockThroughFollowerIsSeenOnEveryNode(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	f := c.others(lead)[0]

	tok, err := lockCmd(ctx, c.client(f), "orders-42", "worker-7", "PX", 30000)
	if err != nil || tok <= 0 {
		t.Fatalf("LOCK through follower %d = %d, %v; want a token", f, tok, err)
	}
	// Read-your-writes: the follower that answered sees it at once.
	if o, err := ownerOf(ctx, c.client(f), "orders-42"); o != "worker-7" || err != nil {
		t.Fatalf("OWNER on follower right after its LOCK = %q, %v", o, err)
	}
	for i := 1; i <= 3; i++ {
		rdb := c.client(i)
		poll(t, 5*time.Second, fmt.Sprintf("node %d to see the lock", i), func() bool {
			o, _ := ownerOf(ctx, rdb, "orders-42")
			return o == "worker-7"
		})
	}
	// Another owner is refused through any node.
	for i := 1; i <= 3; i++ {
		if tok, err := lockCmd(ctx, c.client(i), "orders-42", "someone-else"); tok != 0 || err != nil {
			t.Fatalf("LOCK by another owner through node %d = %d, %v; want null", i, tok, err)
		}
	}
}

func TestLeaderKillElectsNewLeaderAndKeepsLocks(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	rest := c.others(lead)

	var last int64
	for i := range 20 {
		tok, err := lockCmd(ctx, c.client(rest[i%2]), fmt.Sprintf("k%d", i), "o")
		if err != nil || tok <= last {
			t.Fatalf("LOCK k%d = %d, %v; want a token above %d", i, tok, err, last)
		}
		last = tok
	}
	killed := time.Now()
	c.kill(lead)
	newLead := c.waitLeader(3*time.Second, rest)
	t.Logf("new leader %d after %v", newLead, time.Since(killed))
	if newLead == lead {
		t.Fatalf("killed leader %d still reported as leader", lead)
	}
	for _, i := range rest {
		for k := range 20 {
			if o, err := ownerOf(ctx, c.client(i), fmt.Sprintf("k%d", k)); o != "o" || err != nil {
				t.Fatalf("node %d: OWNER k%d = %q, %v after failover", i, k, o, err)
			}
		}
	}
	tok, err := lockCmd(ctx, c.client(rest[0]), "after-failover", "o")
	if err != nil || tok <= last {
		t.Fatalf("LOCK after failover = %d, %v; want a token above %d", tok, err, last)
	}
	// The old leader comes back as a follower and catches up.
	c.start(lead)
	poll(t, 10*time.Second, "old leader to catch up", func() bool {
		o, _ := ownerOf(ctx, c.client(lead), "after-failover")
		return o == "o"
	})
}

func TestMinorityCutOffCannotGrantMajorityCan(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{extra: []string{"--request-timeout", "1s"}})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)

	// Cut the leader off: it is the minority now.
	c.isolate(lead)
	rest := c.others(lead)
	poll(t, 5*time.Second, "the majority to elect a new leader", func() bool {
		l := c.leader(rest)
		return l != 0 && l != lead
	})
	_, err := lockCmd(ctx, c.client(lead), "contended", "minority")
	if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
		t.Fatalf("LOCK on the cut-off node = %v; want -TRYAGAIN", err)
	}
	tok, err := lockCmd(ctx, c.client(rest[0]), "contended", "majority")
	if err != nil || tok <= 0 {
		t.Fatalf("LOCK on the majority = %d, %v", tok, err)
	}
	// The cut-off node has heard from no quorum for longer than an election
	// timeout (the majority elected a leader since): it does not vouch for
	// its replica, which misses the majority's grant.
	if o, err := ownerOf(ctx, c.client(lead), "contended"); err == nil || !strings.Contains(err.Error(), "may be stale") {
		t.Fatalf("OWNER on the cut-off node = %q, %v; want -TRYAGAIN ... may be stale", o, err)
	}

	c.healAll()
	poll(t, 10*time.Second, "the healed node to converge", func() bool {
		o, _ := ownerOf(ctx, c.client(lead), "contended")
		return o == "majority"
	})
	if tok2, err := lockCmd(ctx, c.client(lead), "contended", "minority"); tok2 != 0 || err != nil {
		t.Fatalf("LOCK by the minority's owner after healing = %d, %v; want null (held by majority)", tok2, err)
	}
}

func TestKillAllAndRestartLosesNothing(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	c.waitLeader(10*time.Second, nil)
	want := map[string]string{}
	var last int64
	for i := range 30 {
		name := fmt.Sprintf("lock-%d", i)
		tok, err := lockCmd(ctx, c.client(1+i%3), name, fmt.Sprintf("owner-%d", i))
		if err != nil || tok <= 0 {
			t.Fatalf("LOCK %s: %d, %v", name, tok, err)
		}
		last = max(last, tok)
		want[name] = fmt.Sprintf("owner-%d", i)
	}
	for i := 0; i < 30; i += 3 {
		name := fmt.Sprintf("lock-%d", i)
		if n, err := c.client(2).Do(ctx, "UNLOCK", name, want[name]).Int64(); n != 1 || err != nil {
			t.Fatalf("UNLOCK %s = %d, %v", name, n, err)
		}
		want[name] = ""
	}
	for i := 1; i <= 3; i++ {
		c.kill(i)
	}
	for i := 1; i <= 3; i++ {
		c.start(i)
	}
	c.waitLeader(10*time.Second, nil)
	for i := 1; i <= 3; i++ {
		rdb := c.client(i)
		poll(t, 10*time.Second, fmt.Sprintf("node %d to hold every acknowledged state", i), func() bool {
			for name, owner := range want {
				if o, err := ownerOf(ctx, rdb, name); err != nil || o != owner {
					return false
				}
			}
			return true
		})
	}
	tok, err := lockCmd(ctx, c.client(1), "after-restart", "o")
	if err != nil || tok <= last {
		t.Fatalf("LOCK after restart = %d, %v; want a token above %d", tok, err, last)
	}
}

func TestPausedLeaderIsReplacedAndStepsDown(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{extra: []string{"--request-timeout", "2s"}})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	rest := c.others(lead)

	// A client of the old leader sends a LOCK into the pause.
	old := c.client(lead)
	c.pause(lead)
	resumed := false
	defer func() {
		if !resumed {
			c.resume(lead)
		}
	}()
	type res struct {
		tok int64
		err error
	}
	pending := make(chan res, 1)
	go func() {
		tok, err := lockCmd(ctx, old, "paused", "via-old-leader")
		pending <- res{tok, err}
	}()

	// Until the others elect someone, they may still name the paused node.
	var newLead int
	poll(t, 5*time.Second, "the others to elect a new leader", func() bool {
		newLead = c.leader(rest)
		return newLead != 0 && newLead != lead
	})
	tok, err := lockCmd(ctx, c.client(newLead), "paused", "via-new-leader")
	if err != nil || tok <= 0 {
		t.Fatalf("LOCK on the new leader = %d, %v", tok, err)
	}
	c.resume(lead)
	resumed = true

	r := <-pending
	if r.err == nil && r.tok != 0 {
		t.Fatalf("the resumed old leader granted the lock (token %d) that the new leader holds", r.tok)
	}
	poll(t, 10*time.Second, "the old leader to step down and follow", func() bool {
		m := c.info(lead)
		return m != nil && m["role"] == "follower" && m["leader_id"] == fmt.Sprint(newLead)
	})
	if o, err := ownerOf(ctx, c.client(lead), "paused"); o != "via-new-leader" || err != nil {
		poll(t, 5*time.Second, "old leader to apply the new leader's grant", func() bool {
			o, _ := ownerOf(ctx, c.client(lead), "paused")
			return o == "via-new-leader"
		})
	}
}

func TestLeaseSurvivesFailoverWithItsRemainingTime(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	rest := c.others(lead)
	rdb := c.client(rest[0])

	granted := time.Now()
	if tok, err := lockCmd(ctx, rdb, "leased", "holder", "PX", 3000); err != nil || tok <= 0 {
		t.Fatalf("LOCK PX 3000 = %d, %v", tok, err)
	}
	poll(t, 5*time.Second, "2s into the lease", func() bool { return time.Since(granted) >= 2*time.Second })
	c.kill(lead)
	c.waitLeader(5*time.Second, rest)
	heldUntil := time.Now()
	// No lease expires early because of the change: held until the new leader
	// has counted down the time the lease had left.
	for {
		o, err := ownerOf(ctx, rdb, "leased")
		if err != nil {
			t.Fatal(err)
		}
		if o != "holder" {
			break
		}
		heldUntil = time.Now()
		if time.Since(granted) > 15*time.Second {
			t.Fatal("lease never expired after failover")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if held := heldUntil.Sub(granted); held < 3*time.Second {
		t.Fatalf("lease of 3000ms ended after %v: early", held)
	}
	t.Logf("lease of 3000ms held for %v across a failover at 2s", heldUntil.Sub(granted))
	tok, err := lockCmd(ctx, rdb, "leased", "next")
	if err != nil || tok <= 0 {
		t.Fatalf("LOCK after the lease ran out = %d, %v", tok, err)
	}
}

// Without a quorum, writes fail at once and reads stop within an election
// timeout or two: a node that hears from no leader cannot tell how stale its
// replica is.
func TestNoQuorumWritesAndReadsFail(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{extra: []string{"--request-timeout", "1s"}})
	ctx := context.Background()
	c.waitLeader(10*time.Second, nil)
	if tok, err := lockCmd(ctx, c.client(1), "before", "o"); tok <= 0 || err != nil {
		t.Fatalf("LOCK: %d, %v", tok, err)
	}
	poll(t, 5*time.Second, "node 3 to see the lock", func() bool {
		o, _ := ownerOf(ctx, c.client(3), "before")
		return o == "o"
	})
	c.kill(1)
	c.kill(2)
	start := time.Now()
	_, err := lockCmd(ctx, c.client(3), "during", "o")
	if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
		t.Fatalf("LOCK without quorum = %v; want -TRYAGAIN", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("LOCK without quorum took %v", took)
	}
	poll(t, 5*time.Second, "reads without quorum to be refused", func() bool {
		o, err := ownerOf(ctx, c.client(3), "before")
		if err == nil && o != "o" {
			t.Fatalf("OWNER without quorum = %q", o)
		}
		return err != nil && strings.Contains(err.Error(), "may be stale")
	})
	var n int64
	if n, err = c.client(3).Do(ctx, "UNLOCK", "before", "o").Int64(); err == nil {
		t.Fatalf("UNLOCK without quorum = %d; want -TRYAGAIN", n)
	}
	if !strings.HasPrefix(err.Error(), "TRYAGAIN") {
		t.Fatalf("UNLOCK without quorum: %v", err)
	}
	c.start(1)
	c.waitLeader(10*time.Second, []int{1, 3})
	if tok, err := lockCmd(ctx, c.client(3), "during", "o"); tok <= 0 || err != nil {
		t.Fatalf("LOCK with quorum back: %d, %v", tok, err)
	}
	if o, err := ownerOf(ctx, c.client(3), "before"); o != "o" || err != nil {
		t.Fatalf("OWNER with quorum back = %q, %v", o, err)
	}
}

// A follower cut off from the leader stops answering reads within two
// election timeouts (1 s each at the defaults) and goes on refusing them for
// as long as the partition lasts; it answered from its stale replica for
// 20 s and more.
func TestCutOffFollowerStopsAnsweringReads(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	f := c.others(lead)[0]
	if tok, err := lockCmd(ctx, c.client(lead), "k", "before"); tok <= 0 || err != nil {
		t.Fatalf("LOCK: %d, %v", tok, err)
	}
	poll(t, 5*time.Second, "the follower to see the lock", func() bool {
		o, _ := ownerOf(ctx, c.client(f), "k")
		return o == "before"
	})
	c.isolate(f)
	cut := time.Now()
	if v, err := c.client(lead).Do(ctx, "UNLOCK", "k", "before").Int64(); v != 1 || err != nil {
		t.Fatalf("UNLOCK on the majority: %d, %v", v, err)
	}
	poll(t, 10*time.Second, "the cut-off follower to refuse reads", func() bool {
		_, err := ownerOf(ctx, c.client(f), "k")
		return err != nil && strings.Contains(err.Error(), "may be stale")
	})
	t.Logf("reads refused %v after the cut", time.Since(cut).Round(10*time.Millisecond))
	for range 5 {
		if o, err := ownerOf(ctx, c.client(f), "k"); err == nil {
			t.Fatalf("the cut-off follower answered OWNER = %q", o)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.healAll()
	poll(t, 10*time.Second, "the healed follower to answer again", func() bool {
		o, err := ownerOf(ctx, c.client(f), "k")
		return err == nil && o == ""
	})
}

func TestLaggingNodeCatchesUpBySnapshot(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{extra: []string{"--snapshot-entries", "100"}})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	down := c.others(lead)[0]
	c.kill(down)

	const n, workers = 10000, 50
	rdb := c.client(lead)
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := w; i < n; i += workers {
				if _, err := lockCmd(ctx, rdb, fmt.Sprintf("bulk-%05d", i), "o"); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	c.start(down)
	rd := c.client(down)
	poll(t, 30*time.Second, "the restarted node to hold all 10,000 locks", func() bool {
		v, err := rd.Do(ctx, "DBSIZE").Int64()
		return err == nil && v == n
	})
	for _, i := range []int{0, 4999, n - 1} {
		if o, err := ownerOf(ctx, rd, fmt.Sprintf("bulk-%05d", i)); o != "o" || err != nil {
			t.Fatalf("bulk-%05d on the caught-up node = %q, %v", i, o, err)
		}
	}
	b, _ := readFile(c.nodes[down].logPath)
	if !strings.Contains(b, "installed snapshot") {
		t.Fatalf("node %d caught up without a snapshot; the test did not test catch-up by snapshot", down)
	}
}

func TestWaitersAreServedAcrossNodesAndFailover(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	rest := c.others(lead)

	first, err := lockCmd(ctx, c.client(rest[0]), "queue", "alice", "PX", 60000)
	if err != nil || first <= 0 {
		t.Fatalf("LOCK by alice = %d, %v", first, err)
	}
	type answer struct {
		tok int64
		err error
	}
	bob := make(chan answer, 1)
	go func() {
		tok, err := lockCmd(ctx, c.client(rest[1]), "queue", "bob", "PX", 60000, "WAIT", 15000)
		bob <- answer{tok, err}
	}()
	// bob is queued in the replicated table once every node counts him.
	for _, i := range []int{lead, rest[0], rest[1]} {
		rdb := c.client(i)
		poll(t, 5*time.Second, fmt.Sprintf("node %d to count bob's wait", i), func() bool {
			s, err := rdb.Info(ctx, "keyspace").Result()
			return err == nil && strings.Contains(s, "waiters:1")
		})
	}
	// The queue survives the loss of the leader.
	c.kill(lead)
	poll(t, 5*time.Second, "a new leader", func() bool {
		l := c.leader(rest)
		return l != 0 && l != lead
	})
	if n, err := c.client(rest[0]).Do(ctx, "UNLOCK", "queue", "alice").Int64(); n != 1 || err != nil {
		t.Fatalf("UNLOCK by alice = %d, %v", n, err)
	}
	select {
	case a := <-bob:
		if a.err != nil || a.tok <= first {
			t.Fatalf("bob's LOCK ... WAIT = %d, %v; want a token above %d", a.tok, a.err, first)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("bob was not handed the lock")
	}
	if o, err := ownerOf(ctx, c.client(rest[1]), "queue"); o != "bob" || err != nil {
		t.Fatalf("OWNER on bob's node = %q, %v", o, err)
	}
}
