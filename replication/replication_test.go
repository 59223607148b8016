package replication

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lockd/lockd/lock"
)

const testSecret = "0123456789abcdef-test"

// testCluster starts n in-process nodes on loopback and returns them by id.
func testCluster(t testing.TB, n int, tune func(*Config)) map[uint64]*Node {
	t.Helper()
	dir := t.TempDir()
	lns := map[uint64]net.Listener{}
	peers := map[uint64]string{}
	for id := uint64(1); id <= uint64(n); id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id], peers[id] = ln, ln.Addr().String()
	}
	nodes := map[uint64]*Node{}
	for id := uint64(1); id <= uint64(n); id++ {
		cfg := Config{
			ID: id, Peers: peers, DataDir: filepath.Join(dir, fmt.Sprint(id)), Listener: lns[id],
			ClusterID: "test", Secret: testSecret, ClientAddr: fmt.Sprintf("127.0.0.1:%d", 6378+id),
			TickInterval: 10 * time.Millisecond, RequestTimeout: 5 * time.Second,
		}
		cfg.Logger = dbgLogger
		if tune != nil {
			tune(&cfg)
		}
		node, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = node
		t.Cleanup(func() { node.Close() })
	}
	return nodes
}

// waitLeader polls until every node names the same leader.
func waitLeader(t testing.TB, nodes map[uint64]*Node) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var lead uint64
		agree := true
		for _, n := range nodes {
			l := n.Status().Leader
			if l == 0 || (lead != 0 && l != lead) {
				agree = false
				break
			}
			lead = l
		}
		if agree && nodes[lead] != nil && nodes[lead].Status().Role == "leader" {
			return lead
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader within 10s")
	return 0
}

func TestDuplicateForwardAppliesOnce(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	var follower uint64 = 1
	if follower == lead {
		follower = 2
	}
	member := asMember(t, nodes[lead], nodes[follower])
	ctx := context.Background()
	dup := lock.Command{Op: lock.OpLock, ID: follower<<48 | 77, Name: "a", Owner: "o1"}

	member.Forward(lead, dup)
	var first lock.Info
	poll(t, "the forwarded LOCK to apply", func() bool {
		var ok bool
		first, ok = nodes[lead].Table().Get("a")
		return ok && first.Owner == "o1"
	})
	if v, err := nodes[follower].Execute(ctx, lock.Command{Op: lock.OpUnlock, Name: "a", Owner: "o1"}); v != 1 || err != nil {
		t.Fatalf("UNLOCK = %d, %v", v, err)
	}
	// The same request again, as after a leader change or a retry.
	member.Forward(lead, dup)
	member.Forward(lead, dup)
	tok, err := nodes[follower].Execute(ctx, lock.Command{Op: lock.OpLock, Name: "b", Owner: "o2"})
	if err != nil {
		t.Fatal(err)
	}
	// FORWARDs on one connection are proposed in order, so both duplicates
	// were applied before "b" was granted.
	if info, held := nodes[lead].Table().Get("a"); held {
		t.Fatalf("duplicate LOCK took the lock again: %+v", info)
	}
	if want := int64(first.Token) + 1; tok != want {
		t.Fatalf("next grant got token %d; want %d (a duplicate must not consume a token)", tok, want)
	}
}

func TestFollowerExecuteReadsItsOwnWrite(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	ctx := context.Background()
	for id, n := range nodes {
		if id == lead {
			continue
		}
		name := fmt.Sprintf("ryw-%d", id)
		tok, err := n.Execute(ctx, lock.Command{Op: lock.OpLock, Name: name, Owner: "me"})
		if err != nil || tok <= 0 {
			t.Fatalf("node %d: LOCK = %d, %v", id, tok, err)
		}
		if info, ok := n.Table().Get(name); !ok || info.Owner != "me" || int64(info.Token) != tok {
			t.Fatalf("node %d: right after its LOCK, its replica has %+v, %v", id, info, ok)
		}
	}
}

func TestRestartRecoversSnapshotAndLog(t *testing.T) {
	dir := t.TempDir()
	start := func() *Node {
		n, err := Start(Config{ID: 1, DataDir: dir, SnapshotEntries: 50, TickInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := start()
	ctx := context.Background()
	var last int64
	for i := range 230 {
		tok, err := n.Execute(ctx, lock.Command{Op: lock.OpLock, Name: fmt.Sprintf("k%d", i), Owner: "o"})
		if err != nil {
			t.Fatal(err)
		}
		last = tok
	}
	for i := 0; i < 230; i += 2 {
		if v, err := n.Execute(ctx, lock.Command{Op: lock.OpUnlock, Name: fmt.Sprintf("k%d", i), Owner: "o"}); v != 1 || err != nil {
			t.Fatalf("UNLOCK k%d = %d, %v", i, v, err)
		}
	}
	before := n.Table().Snapshot()
	n.Close()
	if snaps, _ := filepath.Glob(filepath.Join(dir, "snap", "*.snap")); len(snaps) == 0 {
		t.Fatal("345 entries with SnapshotEntries 50 wrote no snapshot")
	}

	n = start()
	defer n.Close()
	poll(t, "the restarted node to replay its log", func() bool { return n.Table().Len() == 115 })
	tok, err := n.Execute(ctx, lock.Command{Op: lock.OpLock, Name: "new", Owner: "o"})
	if err != nil || tok != last+1 {
		t.Fatalf("LOCK after restart = %d, %v; want %d", tok, err, last+1)
	}
	for i := range 230 {
		_, held := n.Table().Get(fmt.Sprintf("k%d", i))
		if held != (i%2 == 1) {
			t.Fatalf("k%d held=%v after restart", i, held)
		}
	}
	if len(before) == 0 {
		t.Fatal("empty snapshot")
	}
}

func TestExecuteWithoutLeaderFailsInTime(t *testing.T) {
	nodes := testCluster(t, 3, func(c *Config) { c.RequestTimeout = 300 * time.Millisecond })
	waitLeader(t, nodes)
	nodes[1].Close()
	nodes[2].Close()
	start := time.Now()
	_, err := nodes[3].Execute(context.Background(), lock.Command{Op: lock.OpLock, Name: "x", Owner: "o"})
	if err == nil {
		t.Fatal("LOCK without quorum succeeded")
	}
	if err != ErrTimeout && err != ErrNoLeader {
		t.Fatalf("LOCK without quorum: %v; want ErrTimeout or ErrNoLeader", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("LOCK without quorum returned after %v; timeout is 300ms", took)
	}
}

func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStorageErrorStopsTheNode(t *testing.T) {
	var full atomic.Bool
	n, err := Start(Config{ID: 1, DataDir: t.TempDir(), TickInterval: 10 * time.Millisecond, RequestTimeout: 10 * time.Second,
		beforeSync: func() error {
			if full.Load() {
				return syscall.ENOSPC
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	if _, err := n.Execute(ctx, lock.Command{Op: lock.OpLock, Name: "a", Owner: "o"}); err != nil {
		t.Fatal(err)
	}
	// The disk fills up under the log: the next write fails, and its
	// request hears that the node stopped, not its request timeout.
	full.Store(true)
	if _, err := n.Execute(ctx, lock.Command{Op: lock.OpLock, Name: "b", Owner: "o"}); !errors.Is(err, ErrClosedUnknown) {
		t.Fatalf("a write whose log write failed: %v; want ErrClosedUnknown", err)
	}
	select {
	case <-n.Failed():
	case <-time.After(5 * time.Second):
		t.Fatal("a failed log write did not stop the node")
	}
	if n.Err() == nil {
		t.Fatal("Err() is nil after a storage failure")
	}
	if _, err := n.Execute(ctx, lock.Command{Op: lock.OpLock, Name: "c", Owner: "o"}); err == nil {
		t.Fatal("Execute succeeded on a node whose storage failed")
	}
}

// TestLeaderGroupsCommandsWhileEntriesAwaitCommit holds the leader's disk
// still: the first commands go out as at most MaxInflight entries, and every
// command that arrives meanwhile waits for the disk and then goes out in one
// entry, instead of one entry each.
func TestLeaderGroupsCommandsWhileEntriesAwaitCommit(t *testing.T) {
	var gate atomic.Pointer[chan struct{}]
	n, err := Start(Config{ID: 1, DataDir: t.TempDir(), TickInterval: 10 * time.Millisecond, RequestTimeout: 10 * time.Second, MaxInflight: 1,
		beforeSync: func() error {
			if g := gate.Load(); g != nil {
				<-*g
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	if _, err := n.Execute(ctx, lock.Command{Op: lock.OpLock, Name: "warm", Owner: "o"}); err != nil {
		t.Fatal(err)
	}
	before := n.Status().Commit

	held := make(chan struct{})
	gate.Store(&held)
	const cmds = 200
	errs := make(chan error, cmds)
	for i := range cmds {
		go func() {
			_, err := n.Execute(ctx, lock.Command{Op: lock.OpLock, Name: fmt.Sprint("n", i), Owner: "o"})
			errs <- err
		}()
	}
	poll(t, "every command registered", func() bool { return n.Status().Pending == cmds })
	gate.Store(nil)
	close(held)
	for range cmds {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	entries := n.Status().Commit - before
	t.Logf("%d commands in %d entries", cmds, entries)
	// MaxInflight (1) entry went out before the disk stalled, the rest
	// together after; a few stragglers that reached the leader only after
	// the release may take an entry of their own.
	if entries > 10 {
		t.Fatalf("%d commands took %d entries; want them grouped into a few", cmds, entries)
	}
}
