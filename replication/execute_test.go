package replication

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockd/lockd/lock"
)

// appliedEverywhere waits until every node's table reflects every write
// that some node had applied at the call. WaitApplied alone does not
// promise that: a follower knows the commit index only as of the leader's
// last message, so a write acknowledged elsewhere may be committed without
// its knowing. So it first polls until each node knows of a commit index
// that covers those writes, then calls WaitApplied, which promises the
// table reflects everything committed as far as the node knows.
func appliedEverywhere(t testing.TB, nodes map[uint64]*Node) {
	t.Helper()
	var target uint64
	for _, n := range nodes {
		target = max(target, n.Status().Applied)
	}
	poll(t, fmt.Sprintf("every node to learn that index %d is committed", target), func() bool {
		for _, n := range nodes {
			if n.Status().Commit < target {
				return false
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for id, n := range nodes {
		if err := n.WaitApplied(ctx); err != nil {
			t.Fatalf("node %d: WaitApplied: %v", id, err)
		}
	}
}

// holdsEverywhere fails unless every node's table has name held by owner
// with token.
func holdsEverywhere(t testing.TB, nodes map[uint64]*Node, name, owner string, token int64) {
	t.Helper()
	for id, n := range nodes {
		if info, ok := n.Table().Get(name); !ok || info.Owner != owner || int64(info.Token) != token {
			t.Fatalf("node %d has %q = %+v (held %v); want it held by %q with token %d", id, name, info, ok, owner, token)
		}
	}
}

// ExecuteAll returns one result per command, in order, each command applied
// once, through the leader as through a follower; a command the table
// refuses gets its own result without changing the others'.
func TestExecuteAll(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	ctx := context.Background()
	through := map[string]uint64{"leader": lead, "follower": followerOf(nodes, lead)}
	for _, via := range []string{"leader", "follower"} {
		t.Run("distinct names through the "+via, func(t *testing.T) {
			n := nodes[through[via]]
			const count = 20
			cmds := make([]lock.Command, count)
			for i := range cmds {
				cmds[i] = lock.Command{Op: lock.OpLock, Name: fmt.Sprintf("%s-%d", via, i), Owner: "o"}
			}
			rs, errs := n.ExecuteAll(ctx, cmds)
			if len(rs) != count || len(errs) != count {
				t.Fatalf("%d commands got %d results and %d errors", count, len(rs), len(errs))
			}
			for i := range cmds {
				if errs[i] != nil {
					t.Fatalf("command %d: %v", i, errs[i])
				}
				// Sent in order to one leader, they were granted in order.
				if rs[i].Value <= 0 || (i > 0 && rs[i].Value != rs[i-1].Value+1) {
					t.Fatalf("tokens %v: want consecutive tokens in command order", values(rs))
				}
			}
			appliedEverywhere(t, nodes)
			for i, c := range cmds {
				holdsEverywhere(t, nodes, c.Name, "o", rs[i].Value)
			}
			// No duplicate took a token: the next grant follows the batch's last.
			tok, err := n.Execute(ctx, lock.Command{Op: lock.OpLock, Name: via + "-next", Owner: "o"})
			if err != nil || tok != rs[count-1].Value+1 {
				t.Fatalf("LOCK after the batch = %d, %v; want %d", tok, err, rs[count-1].Value+1)
			}
		})
	}

	t.Run("a refused command gets its own result", func(t *testing.T) {
		n := nodes[through["follower"]]
		held, err := n.Execute(ctx, lock.Command{Op: lock.OpLock, Name: "theirs", Owner: "holder"})
		if err != nil || held <= 0 {
			t.Fatalf("LOCK theirs = %d, %v", held, err)
		}
		cmds := []lock.Command{
			{Op: lock.OpLock, Name: "mixed-a", Owner: "me"},
			{Op: lock.OpUnlock, Name: "theirs", Owner: "me"}, // not the owner: refused
			{Op: lock.OpLock, Name: "theirs", Owner: "me"},   // held by another: refused
			{Op: lock.OpLock, Name: "mixed-b", Owner: "me"},
		}
		rs, errs := n.ExecuteAll(ctx, cmds)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("command %d: %v", i, err)
			}
		}
		if got, want := values(rs), []int64{held + 1, 0, 0, held + 2}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("results %v; want %v", got, want)
		}
		appliedEverywhere(t, nodes)
		holdsEverywhere(t, nodes, "theirs", "holder", held)
		holdsEverywhere(t, nodes, "mixed-a", "me", held+1)
		holdsEverywhere(t, nodes, "mixed-b", "me", held+2)
	})

	t.Run("an empty batch", func(t *testing.T) {
		for _, via := range []string{"leader", "follower"} {
			rs, errs := nodes[through[via]].ExecuteAll(ctx, nil)
			if len(rs) != 0 || len(errs) != 0 {
				t.Fatalf("through the %s: an empty batch got %v, %v", via, rs, errs)
			}
		}
	})
}

func values(rs []lock.Result) []int64 {
	vs := make([]int64, len(rs))
	for i, r := range rs {
		vs[i] = r.Value
	}
	return vs
}

// waitResult is what an ExecuteWait returned.
type waitResult struct {
	token int64
	err   error
}

// executeWait runs n.ExecuteWait on its own goroutine; its result arrives
// on the channel returned.
func executeWait(ctx context.Context, n *Node, cmd lock.Command) <-chan waitResult {
	done := make(chan waitResult, 1)
	go func() {
		tok, err := n.ExecuteWait(ctx, cmd)
		done <- waitResult{tok, err}
	}()
	return done
}

// receive returns what arrives on done, failing after 10 s.
func receive(t testing.TB, what string, done <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return within 10s", what)
		return waitResult{}
	}
}

// noWaiterAnywhere polls until no node's table has a request queued.
func noWaiterAnywhere(t testing.TB, nodes map[uint64]*Node, name string) {
	t.Helper()
	poll(t, "the request to leave the queue of "+name+" on every node", func() bool {
		for _, n := range nodes {
			if info, _ := n.Table().Get(name); info.Waiters != 0 || n.Table().Waiting() != 0 {
				return false
			}
		}
		return true
	})
}

// ExecuteWait returns the token once the lock is the request's, 0 when its
// wait runs out, and 0 with ctx's error when ctx ends while it is queued,
// having taken the request out of the queue.
func TestExecuteWait(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	var others []uint64
	for id := range nodes {
		if id != lead {
			others = append(others, id)
		}
	}
	holderNode, waiterNode, unlockNode := nodes[lead], nodes[others[0]], nodes[others[1]]
	ctx := context.Background()
	hold := func(t *testing.T, name string) int64 {
		t.Helper()
		tok, err := holderNode.Execute(ctx, lock.Command{Op: lock.OpLock, Name: name, Owner: "holder"})
		if err != nil || tok <= 0 {
			t.Fatalf("LOCK %s = %d, %v", name, tok, err)
		}
		return tok
	}
	queued := func(t *testing.T, name string) {
		t.Helper()
		poll(t, "the waiter to be queued", func() bool {
			info, _ := waiterNode.Table().Get(name)
			return info.Waiters == 1
		})
	}

	t.Run("granted when the holder unlocks elsewhere", func(t *testing.T) {
		held := hold(t, "handed")
		done := executeWait(ctx, waiterNode, lock.Command{Op: lock.OpLockWait, Name: "handed", Owner: "waiter", Wait: 60_000})
		queued(t, "handed")
		select {
		case r := <-done:
			t.Fatalf("ExecuteWait returned %+v while the lock was held", r)
		default:
		}
		if v, err := unlockNode.Execute(ctx, lock.Command{Op: lock.OpUnlock, Name: "handed", Owner: "holder"}); v != 1 || err != nil {
			t.Fatalf("UNLOCK = %d, %v", v, err)
		}
		r := receive(t, "ExecuteWait after the unlock", done)
		if r.err != nil || r.token <= held {
			t.Fatalf("ExecuteWait = %d, %v; want a token above the holder's %d", r.token, r.err, held)
		}
		appliedEverywhere(t, nodes)
		holdsEverywhere(t, nodes, "handed", "waiter", r.token)
	})

	t.Run("not granted when the wait runs out", func(t *testing.T) {
		held := hold(t, "kept")
		r := receive(t, "ExecuteWait with a 200ms wait", executeWait(ctx, waiterNode,
			lock.Command{Op: lock.OpLockWait, Name: "kept", Owner: "waiter", Wait: 200}))
		if r.token != 0 || r.err != nil {
			t.Fatalf("ExecuteWait = %d, %v; want 0, nil (not granted)", r.token, r.err)
		}
		noWaiterAnywhere(t, nodes, "kept")
		appliedEverywhere(t, nodes)
		holdsEverywhere(t, nodes, "kept", "holder", held)
	})

	t.Run("withdrawn when ctx is cancelled", func(t *testing.T) {
		held := hold(t, "abandoned")
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := executeWait(wctx, waiterNode, lock.Command{Op: lock.OpLockWait, Name: "abandoned", Owner: "waiter", Wait: 60_000})
		queued(t, "abandoned")
		cancel()
		// Its wait is a minute: it returns because ctx ended.
		r := receive(t, "ExecuteWait after its ctx was cancelled", done)
		if r.token != 0 || !errors.Is(r.err, context.Canceled) {
			t.Fatalf("ExecuteWait = %d, %v; want 0, context.Canceled", r.token, r.err)
		}
		noWaiterAnywhere(t, nodes, "abandoned")
		// The withdrawn request is not handed the lock when it frees.
		if v, err := unlockNode.Execute(ctx, lock.Command{Op: lock.OpUnlock, Name: "abandoned", Owner: "holder"}); v != 1 || err != nil {
			t.Fatalf("UNLOCK = %d, %v", v, err)
		}
		appliedEverywhere(t, nodes)
		for id, n := range nodes {
			if info, ok := n.Table().Get("abandoned"); ok {
				t.Fatalf("node %d: after the holder (token %d) unlocked, abandoned is held: %+v", id, held, info)
			}
		}
	})
}

// ExecuteAll's commands share one deadline, and the call ends there: a
// wave that cannot commit (here the leader's disk stalls) fails in about
// the request timeout, not a raft tick later per command still waiting.
func TestExecuteAllEndsAtItsDeadline(t *testing.T) {
	var stalled atomic.Pointer[chan struct{}]
	n, err := Start(Config{ID: 1, DataDir: t.TempDir(), TickInterval: 50 * time.Millisecond, RequestTimeout: 100 * time.Millisecond,
		beforeSync: func() error {
			if g := stalled.Load(); g != nil {
				<-*g
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	disk := make(chan struct{})
	t.Cleanup(func() { close(disk); n.Close() })
	ctx := context.Background()
	poll(t, "the lone node to lead", func() bool { return n.Status().Role == "leader" })
	if _, err := n.Execute(ctx, lock.Command{Op: lock.OpLock, Name: "warm", Owner: "o"}); err != nil {
		t.Fatal(err)
	}
	stalled.Store(&disk)
	cmds := make([]lock.Command, 80)
	for i := range cmds {
		cmds[i] = lock.Command{Op: lock.OpLock, Name: fmt.Sprint("k", i), Owner: "o"}
	}
	start := time.Now()
	_, errs := n.ExecuteAll(ctx, cmds)
	for i, err := range errs {
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("command %d on a stalled disk: %v; want ErrTimeout", i, err)
		}
	}
	// 80 ticks of 50 ms would be 4 s; the request timeout is 100 ms.
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("ExecuteAll of %d commands took %v; its deadline was 100 ms away", len(cmds), took)
	}
}
