package integration

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// leaderTracker polls every node's INFO replication in the background and
// keeps the node that a majority agrees leads: one that says role:leader and
// that at least one other node names as its leader_id. It is 0 while there is
// none. Stop it by cancelling the context given to run.
type leaderTracker struct {
	c    *cluster
	lead atomic.Int64
}

func (lt *leaderTracker) get() int { return int(lt.lead.Load()) }

// run polls until ctx is done.
func (lt *leaderTracker) run(ctx context.Context) {
	for ctx.Err() == nil {
		lt.lead.Store(int64(lt.poll()))
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// poll asks every node at once and returns the agreed leader, or 0.
func (lt *leaderTracker) poll() int {
	n := len(lt.c.nodes)
	infos := make([]map[string]string, n+1)
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		wg.Go(func() { infos[i] = lt.c.info(i) })
	}
	wg.Wait()
	for l := 1; l <= n; l++ {
		if infos[l] == nil || infos[l]["role"] != "leader" {
			continue
		}
		votes := 1
		for j := 1; j <= n; j++ {
			if j != l && infos[j] != nil && infos[j]["leader_id"] == strconv.Itoa(l) {
				votes++
			}
		}
		if votes*2 > n {
			return l
		}
	}
	return 0
}

// The nemesis kinds. Each event breaks something, holds it, then heals it.
const (
	nemKillLeader  = "kill-leader"  // kill -9 the leader (or a random node), restart it on its data
	nemPauseLeader = "pause-leader" // SIGSTOP the leader (or a random node), then SIGCONT
	nemIsolate     = "isolate"      // cut one node (leader preferred) off both ways
	nemOneWay      = "one-way"      // cut only the links out of, or only those into, one node
	nemKillAll     = "kill-all"     // kill -9 all nodes, restart them all
	nemMixed       = "mixed"        // two faults at once (see mixed)
	// nemMembers changes the membership while clients run: it adds a new
	// member (id 4, then 5, ...: ids are never reused), which joins as a
	// learner and is promoted once caught up, or removes the one it added
	// and stops it. The clients and the other faults keep to nodes 1-3;
	// the added member links to them directly, not through the proxies.
	nemMembers = "members"
)

var nemesisKinds = []string{nemKillLeader, nemPauseLeader, nemIsolate, nemOneWay, nemKillAll, nemMixed, nemMembers}

// nemesis injects faults into a cluster on a schedule drawn from a seeded RNG.
// It runs on the test goroutine (cluster.start may call t.Fatal).
type nemesis struct {
	t     testing.TB
	c     *cluster
	lt    *leaderTracker
	rng   *rand.Rand
	begin time.Time

	counts map[string]int
	killed map[int]bool
	paused map[int]bool

	extra   *proc // the member nemMembers added, until it removes it
	nextID  int   // the id of the next member it adds
	added   int   // members added, removed, and promoted to voter by their removal, for the report
	removed int
	voters  int
}

func newNemesis(t testing.TB, c *cluster, lt *leaderTracker, seed int64) *nemesis {
	return &nemesis{
		t: t, c: c, lt: lt, rng: rand.New(rand.NewSource(seed ^ 0x6e656d)), begin: time.Now(),
		counts: map[string]int{}, killed: map[int]bool{}, paused: map[int]bool{}, nextID: len(c.nodes) + 1,
	}
}

func (n *nemesis) logf(format string, args ...any) {
	n.t.Helper()
	n.t.Logf("nemesis %6.2fs: %s", time.Since(n.begin).Seconds(), fmt.Sprintf(format, args...))
}

// between returns a random duration in [lo, hi).
func (n *nemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(n.rng.Int63n(int64(hi-lo)))
}

// wait sleeps for d or until ctx is done: the nemesis schedule itself.
func wait(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// target returns the leader with probability pLeader when one is known,
// otherwise a random node.
func (n *nemesis) target(pLeader float64) int {
	if l := n.lt.get(); l != 0 && n.rng.Float64() < pLeader {
		return l
	}
	return 1 + n.rng.Intn(len(n.c.nodes))
}

// run injects events until ctx is done: a quiet gap of 1-3s, then an event
// held for 1-3s, then heal. The first events go through every kind once, in
// a seeded order, so even a short run sees them all.
func (n *nemesis) run(ctx context.Context) {
	order := n.rng.Perm(len(nemesisKinds))
	for ev := 0; ; ev++ {
		wait(ctx, n.between(time.Second, 3*time.Second))
		if ctx.Err() != nil {
			return
		}
		kind := nemesisKinds[n.rng.Intn(len(nemesisKinds))]
		if ev < len(order) {
			kind = nemesisKinds[order[ev]]
		}
		hold := n.between(time.Second, 3*time.Second)
		n.counts[kind]++
		n.inject(kind, hold)
		wait(context.Background(), hold) // the fault holds even if the run ends meanwhile
		n.heal()
	}
}

// inject breaks the cluster as kind says; heal undoes it.
func (n *nemesis) inject(kind string, hold time.Duration) {
	n.t.Helper()
	switch kind {
	case nemKillLeader:
		i := n.target(0.8)
		n.logf("%s: kill -9 node %d (leader %d) for %v", kind, i, n.lt.get(), hold.Round(time.Millisecond))
		n.kill(i)
	case nemPauseLeader:
		i := n.target(0.8)
		n.logf("%s: SIGSTOP node %d (leader %d) for %v", kind, i, n.lt.get(), hold.Round(time.Millisecond))
		n.c.pause(i)
		n.paused[i] = true
	case nemIsolate:
		i := n.target(0.6)
		n.logf("%s: isolate node %d (leader %d) both ways for %v", kind, i, n.lt.get(), hold.Round(time.Millisecond))
		n.c.isolate(i)
	case nemOneWay:
		i := n.target(0.7)
		out := n.rng.Intn(2) == 0
		for _, j := range n.c.others(i) {
			if out {
				n.c.cut(i, j, false)
			} else {
				n.c.cut(j, i, false)
			}
		}
		dir := "into"
		if out {
			dir = "out of"
		}
		n.logf("%s: cut every link %s node %d (leader %d) for %v", kind, dir, i, n.lt.get(), hold.Round(time.Millisecond))
	case nemKillAll:
		n.logf("%s: kill -9 all nodes (leader %d) for %v", kind, n.lt.get(), hold.Round(time.Millisecond))
		for i := 1; i <= len(n.c.nodes); i++ {
			n.kill(i)
		}
	case nemMixed:
		i := n.target(0.7)
		rest := n.c.others(i)
		n.rng.Shuffle(len(rest), func(a, b int) { rest[a], rest[b] = rest[b], rest[a] })
		if n.rng.Intn(2) == 0 {
			n.logf("%s: kill -9 node %d (leader %d) and cut link %d->%d one way, for %v", kind, i, n.lt.get(), rest[0], rest[1], hold.Round(time.Millisecond))
			n.kill(i)
			n.c.cut(rest[0], rest[1], false)
		} else {
			n.logf("%s: SIGSTOP node %d (leader %d) and isolate node %d, for %v", kind, i, n.lt.get(), rest[0], hold.Round(time.Millisecond))
			n.c.pause(i)
			n.paused[i] = true
			n.c.isolate(rest[0])
		}
	case nemMembers:
		n.changeMembers(kind)
	default:
		n.t.Fatalf("unknown nemesis kind %q", kind)
	}
}

// changeMembers adds a member when the nemesis has none of its own, else
// removes it. A change the cluster refuses (one pending, no quorum) is
// logged and tried again at the next event.
func (n *nemesis) changeMembers(kind string) {
	n.t.Helper()
	if n.extra == nil {
		id := n.nextID
		p := n.c.joinProc(id, []int{1, 2, 3})
		if err := n.memberCmd("ADD", id, p.cluster); err != nil {
			n.logf("%s: MEMBER ADD %d refused: %v", kind, id, err)
			return
		}
		n.nextID++
		n.c.launchProc(p)
		n.extra = p
		n.added++
		n.logf("%s: MEMBER ADD %d %s; it joins as a learner (leader %d)", kind, id, p.cluster, n.lt.get())
		return
	}
	id := n.extra.id
	role := "?"
	for i := 1; i <= len(n.c.nodes) && role == "?"; i++ {
		if r := n.c.roles(i); r != nil && !n.killed[i] && !n.paused[i] {
			role = r[id]
		}
	}
	if err := n.memberCmd("REMOVE", id); err != nil {
		n.logf("%s: MEMBER REMOVE %d refused: %v", kind, id, err)
		return
	}
	n.extra.kill()
	n.extra = nil
	n.removed++
	if role == "voter" {
		n.voters++
	}
	n.logf("%s: MEMBER REMOVE %d (a %s by then), and stopped it (leader %d)", kind, id, role, n.lt.get())
}

// memberCmd sends MEMBER args to nodes 1-3 in turn until one accepts it.
func (n *nemesis) memberCmd(args ...any) error {
	var err error
	for i := 1; i <= len(n.c.nodes); i++ {
		if n.killed[i] || n.paused[i] {
			continue
		}
		if _, err = n.c.member(i, args...); err == nil {
			return nil
		}
	}
	return err
}

// settleMembers removes the member the nemesis added, if any, so that the
// recovery's restart of nodes 1-3 makes a quorum; it retries for up to
// 30 s.
func (n *nemesis) settleMembers() {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for n.extra != nil && time.Now().Before(deadline) {
		n.changeMembers("settle")
		if n.extra != nil {
			time.Sleep(200 * time.Millisecond) // between retries, not ordering
		}
	}
	if n.extra != nil {
		n.t.Errorf("nemesis: member %d could not be removed within 30s", n.extra.id)
	}
}

func (n *nemesis) kill(i int) {
	n.c.kill(i)
	n.killed[i] = true
}

// heal restores every link, resumes paused nodes and restarts killed ones.
func (n *nemesis) heal() {
	n.t.Helper()
	n.c.healAll()
	var what []string
	for _, i := range sortedKeys(n.paused) {
		n.c.resume(i)
		what = append(what, fmt.Sprintf("resumed %d", i))
	}
	for _, i := range sortedKeys(n.killed) {
		n.c.start(i)
		what = append(what, fmt.Sprintf("restarted %d", i))
	}
	clear(n.paused)
	clear(n.killed)
	n.logf("heal: links restored %v", what)
}

func sortedKeys(m map[int]bool) []int {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}
