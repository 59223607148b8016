package integration

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRollingRestart restarts the three nodes of a cluster one at a time
// while clients on every node take and release locks, and checks that no
// acknowledged write was lost: every acknowledged LOCK's token is unique,
// a LOCK called after another was acknowledged got a larger token (the
// tokens follow real time across restarts), every lock acknowledged and
// kept is still held with its token, and the next grant's token is larger
// than all. Each round stops the current leader if it has not been
// restarted yet, else another node; the next round starts once the node
// is back and has applied what the leader had committed. The longest
// stall of writes in each round (the longest time between two
// acknowledged writes, from the stop until the node is back and a write
// has been acknowledged since the stop) is logged,
// not asserted. With SIGTERM a leader hands its leadership off before it
// exits; SIGKILL is the comparison, where the cluster waits an election
// timeout for a new leader.
func TestRollingRestart(t *testing.T) {
	for _, mode := range []struct {
		name string
		stop func(c *cluster, i int)
	}{
		{"SIGTERM", func(c *cluster, i int) {
			if rc := c.term(i); rc != 0 {
				c.t.Errorf("node %d exited with %d after SIGTERM", i, rc)
			}
		}},
		{"SIGKILL", func(c *cluster, i int) { c.kill(i) }},
	} {
		t.Run(mode.name, func(t *testing.T) {
			c := startCluster(t, 3, clusterOpts{})
			load := startRollingLoad(t, c, 6)
			load.waitAcks(t, 200)
			from := load.now()
			load.waitAcks(t, load.acked()+1000)
			base := load.longestGap(from, load.now())
			t.Logf("%s: before the restarts, the longest time between acknowledged writes: %v", mode.name, time.Duration(base))

			restarted := map[int]bool{}
			for round := 1; round <= 3; round++ {
				victim := c.waitLeader(10*time.Second, nil)
				wasLeader := !restarted[victim]
				if !wasLeader {
					for i := 1; i <= 3; i++ {
						if !restarted[i] {
							victim = i
							break
						}
					}
				}
				restarted[victim] = true
				from := load.now()
				mode.stop(c, victim)
				stopped := time.Duration(load.now() - from)
				c.start(victim)
				caughtUp(t, c, victim)
				// The node can be back before the clients, retrying after
				// the election, have a write acknowledged: the round, and
				// its stall, ends with the first acknowledged write after
				// the stop, or fails when none comes.
				poll(t, 20*time.Second, fmt.Sprintf("round %d: a write acknowledged after node %d was stopped", round, victim), func() bool {
					return load.acksIn(from, load.now()) > 0
				})
				to := load.now()
				n := load.acksIn(from, to)
				t.Logf("%s round %d: node %d (leader: %v) stopped in %v, back in %v; longest write stall %v; %d writes acknowledged meanwhile",
					mode.name, round, victim, wasLeader, stopped.Round(time.Millisecond), time.Duration(to-from).Round(time.Millisecond),
					time.Duration(load.longestGap(from, to)).Round(time.Millisecond), n)
			}
			load.stop()
			load.check(t, c)
		})
	}
}

// caughtUp polls until node i knows a leader and has applied what that
// leader had committed when the poll began.
func caughtUp(t testing.TB, c *cluster, i int) {
	t.Helper()
	var want uint64
	poll(t, 20*time.Second, fmt.Sprintf("node %d to catch up", i), func() bool {
		m := c.info(i)
		if m == nil || m["leader_id"] == "0" || m["leader_id"] == "" {
			return false
		}
		if want == 0 {
			lead, _ := strconv.Atoi(m["leader_id"])
			lm := c.info(lead)
			if lm == nil {
				return false
			}
			want, _ = strconv.ParseUint(lm["commit_index"], 10, 64)
		}
		applied, _ := strconv.ParseUint(m["applied_index"], 10, 64)
		return applied >= want
	})
}

// rollingLoad is the clients of TestRollingRestart: each takes fresh lock
// names, one after another, on its home node, and releases nine in ten;
// the tenth it keeps. It records every acknowledged LOCK and the times of
// every acknowledged write.
//
// Concurrency: the workers record under mu; stop waits for them.
type rollingLoad struct {
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	locks  []rollingLock // acknowledged LOCKs
	writes []int64       // when each acknowledged write (LOCK, UNLOCK) returned, ns since start
	errs   map[string]int
}

// rollingLock is one acknowledged LOCK: its name, owner and token, when
// it was called and when it returned (ns since the load started), and
// whether it is kept.
type rollingLock struct {
	name, owner string
	token       int64
	call, ack   int64
	kept        bool
}

// rollingMaxOps bounds each worker's LOCKs; the test stops them long before.
const rollingMaxOps = 200_000

func startRollingLoad(t testing.TB, c *cluster, workers int) *rollingLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &rollingLoad{start: time.Now(), cancel: cancel, errs: map[string]int{}}
	t.Cleanup(l.stop)
	for w := range workers {
		rdb := c.client(1 + w%len(c.nodes))
		l.wg.Add(1)
		go l.run(ctx, w, rdb)
	}
	return l
}

// now is the time since the load started, in ns.
func (l *rollingLoad) now() int64 { return int64(time.Since(l.start)) }

// acked returns how many writes were acknowledged so far.
func (l *rollingLoad) acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.writes)
}

func (l *rollingLoad) run(ctx context.Context, w int, rdb *redis.Client) {
	defer l.wg.Done()
	owner := fmt.Sprintf("w%d", w)
	for i := 0; i < rollingMaxOps && ctx.Err() == nil; i++ {
		name := fmt.Sprintf("roll-%d-%d", w, i)
		call := l.now()
		tok, err := lockCmd(ctx, rdb, name, owner)
		if err != nil || tok <= 0 {
			l.failed(ctx, "LOCK", err)
			continue
		}
		kept := i%10 == 0
		l.mu.Lock()
		ack := l.now()
		l.locks = append(l.locks, rollingLock{name: name, owner: owner, token: tok, call: call, ack: ack, kept: kept})
		l.writes = append(l.writes, ack)
		l.mu.Unlock()
		if kept {
			continue
		}
		if err := rdb.Do(ctx, "UNLOCK", name, owner).Err(); err != nil {
			l.failed(ctx, "UNLOCK", err)
			continue
		}
		l.mu.Lock()
		l.writes = append(l.writes, l.now())
		l.mu.Unlock()
	}
}

// failed counts a failed write by its error's first words and paces the
// worker, whose node may be down, for 10 ms.
func (l *rollingLoad) failed(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	text := "null reply"
	if err != nil {
		text = err.Error()
	}
	if f := strings.Fields(text); len(f) > 3 {
		text = strings.Join(f[:3], " ")
	}
	l.mu.Lock()
	l.errs[what+": "+text]++
	l.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Millisecond):
	}
}

// waitAcks polls until n writes were acknowledged.
func (l *rollingLoad) waitAcks(t testing.TB, n int) {
	t.Helper()
	poll(t, 20*time.Second, fmt.Sprintf("%d acknowledged writes", n), func() bool { return l.acked() >= n })
}

// acksIn counts the writes acknowledged in [from, to].
func (l *rollingLoad) acksIn(from, to int64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.writes {
		if a >= from && a <= to {
			n++
		}
	}
	return n
}

// longestGap is the longest time in [from, to] without an acknowledged
// write, counting from the last one before from.
func (l *rollingLoad) longestGap(from, to int64) int64 {
	l.mu.Lock()
	acks := slices.Clone(l.writes)
	l.mu.Unlock()
	slices.Sort(acks)
	prev, gap := from, int64(0)
	for _, a := range acks {
		switch {
		case a < from:
			prev = a
		case a <= to:
			gap = max(gap, a-prev)
			prev = a
		}
	}
	return max(gap, to-prev)
}

// stop ends the workers and waits for them; it may be called twice.
func (l *rollingLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// check verifies the acknowledged LOCKs against the cluster (see
// TestRollingRestart) and logs the errors the clients saw.
func (l *rollingLoad) check(t testing.TB, c *cluster) {
	t.Helper()
	ctx := context.Background()
	locks := l.locks
	t.Logf("%d LOCKs acknowledged (%d kept), %d writes; errors: %v", len(locks), countKept(locks), len(l.writes), l.errs)
	seen := map[int64]string{}
	for _, k := range locks {
		if other, dup := seen[k.token]; dup {
			t.Errorf("token %d acknowledged for both %s and %s", k.token, other, k.name)
		}
		seen[k.token] = k.name
	}
	// Real-time order: a LOCK called after another's acknowledgement has a
	// larger token.
	byAck := slices.Clone(locks)
	slices.SortFunc(byAck, func(a, b rollingLock) int { return int(a.ack - b.ack) })
	best := make([]rollingLock, len(byAck)) // best[i]: the largest token among byAck[:i+1]
	for i, k := range byAck {
		best[i] = k
		if i > 0 && best[i-1].token > k.token {
			best[i] = best[i-1]
		}
	}
	var maxToken int64
	for _, k := range locks {
		maxToken = max(maxToken, k.token)
		i := sort.Search(len(byAck), func(i int) bool { return byAck[i].ack >= k.call }) - 1
		if i >= 0 && best[i].token >= k.token {
			t.Errorf("LOCK %s called at %v got token %d, but LOCK %s acknowledged at %v had token %d",
				k.name, time.Duration(k.call), k.token, best[i].name, time.Duration(best[i].ack), best[i].token)
		}
	}
	rdb := c.client(1)
	for _, k := range locks {
		if !k.kept {
			continue
		}
		v, err := rdb.Do(ctx, "LOCKINFO", k.name).Result()
		if m, ok := v.(map[any]any); err != nil || !ok || m["owner"] != k.owner || m["token"] != k.token {
			t.Errorf("kept lock %s (owner %s, token %d): LOCKINFO = %v, %v", k.name, k.owner, k.token, v, err)
		}
	}
	tok, err := lockCmd(ctx, rdb, "roll-after", "checker")
	if err != nil || tok <= maxToken {
		t.Errorf("LOCK after the restarts = %d, %v; want a token above %d", tok, err, maxToken)
	}
}

func countKept(locks []rollingLock) int {
	n := 0
	for _, k := range locks {
		if k.kept {
			n++
		}
	}
	return n
}
