package replication

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3/raftpb"
)

// join starts node id on c's network as a node that joins (Config.Join),
// with an empty data directory and Peers naming the running nodes, and
// adds it to c. tune, if not nil, adjusts its Config.
func (c *memCluster) join(t testing.TB, id uint64, tune func(*Config)) *Node {
	t.Helper()
	peers := map[uint64]string{id: memAddrOf(id)}
	for o := range c.nodes {
		peers[o] = memAddrOf(o)
	}
	cfg := Config{
		ID: id, Peers: peers, Join: true, DataDir: filepath.Join(t.TempDir(), fmt.Sprint(id)),
		Listener: c.net.listen(memAddrOf(id)), Dial: c.net.dialer(memAddrOf(id)),
		ClusterID: "test", Secret: testSecret, ClientAddr: fmt.Sprintf("127.0.0.1:%d", 6378+id),
		TickInterval: 10 * time.Millisecond, RequestTimeout: 5 * time.Second, Logger: dbgLogger,
	}
	if tune != nil {
		tune(&cfg)
	}
	node, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.nodes[id] = node
	t.Cleanup(func() { node.Close() })
	return node
}

// roles returns node's view of the members as id → role.
func roles(node *Node) map[uint64]string {
	m := map[uint64]string{}
	for _, mb := range node.Members() {
		m[mb.ID] = mb.Role
	}
	return m
}

// hasRoles polls until every node in nodes sees exactly want.
func hasRoles(t testing.TB, nodes map[uint64]*Node, want map[uint64]string) {
	t.Helper()
	poll(t, fmt.Sprintf("every node to see members %v", want), func() bool {
		for _, n := range nodes {
			got := roles(n)
			if len(got) != len(want) {
				return false
			}
			for id, r := range want {
				if got[id] != r {
					return false
				}
			}
		}
		return true
	})
}

// A node added through a follower joins as a learner, catches up from the
// leader's snapshot and log until its table is the leader's, stays a
// learner with ManualPromote until PromoteMember, and then counts as a
// voter. Restarted with Peers naming only itself, a member reads the
// members from its snapshot and log.
func TestMemberAddCatchUpPromote(t *testing.T) {
	tune := func(c *Config) { c.SnapshotEntries = 20; c.ManualPromote = true }
	c := startMemCluster(t, 3, 1, tune)
	lead := waitLeader(t, c.nodes)
	acked := lockFresh(t, c.nodes[lead], "before", 60) // several snapshots: the log start is compacted
	follower := c.others(lead)[0]
	ctx := context.Background()

	if err := c.nodes[follower].AddMember(ctx, 4, memAddrOf(4)); err != nil {
		t.Fatalf("MEMBER ADD 4 through follower %d: %v", follower, err)
	}
	hasRoles(t, c.nodes, map[uint64]string{1: "voter", 2: "voter", 3: "voter", 4: "learner"})
	joined := c.join(t, 4, tune)
	c.converged(t)
	holdsAll(t, 4, joined, acked)
	if got := roles(joined); got[4] != "learner" {
		t.Fatalf("the new node sees itself as %q; want learner (ManualPromote)", got[4])
	}
	poll(t, "the leader to report node 4's match", func() bool {
		for _, m := range c.nodes[lead].Members() {
			if m.ID == 4 {
				return m.Match >= c.nodes[lead].Status().Applied-1
			}
		}
		return false
	})

	if err := c.nodes[follower].PromoteMember(ctx, 4); err != nil {
		t.Fatalf("MEMBER PROMOTE 4: %v", err)
	}
	hasRoles(t, c.nodes, map[uint64]string{1: "voter", 2: "voter", 3: "voter", 4: "voter"})
	after := lockFresh(t, joined, "after", 30)
	c.converged(t)

	// A restart reads the members from the data directory, not from Peers.
	other := c.others(lead)[1]
	cfg := c.nodes[other].cfg
	c.nodes[other].Close()
	cfg.Peers = map[uint64]string{other: memAddrOf(other)}
	cfg.Listener = c.net.listen(memAddrOf(other))
	restarted, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restarted.Close() })
	c.nodes[other] = restarted
	hasRoles(t, c.subset(other), map[uint64]string{1: "voter", 2: "voter", 3: "voter", 4: "voter"})
	lockFresh(t, c.nodes[lead], "restarted", 10)
	c.converged(t)
	holdsAll(t, other, restarted, append(acked, after...))
}

// Without ManualPromote the leader promotes a learner by itself once it
// is caught up.
func TestMemberLearnerIsPromotedWhenCaughtUp(t *testing.T) {
	c := startMemCluster(t, 3, 2, func(c *Config) { c.SnapshotEntries = 20 })
	lead := waitLeader(t, c.nodes)
	lockFresh(t, c.nodes[lead], "before", 40)
	if err := c.nodes[lead].AddMember(context.Background(), 4, memAddrOf(4)); err != nil {
		t.Fatal(err)
	}
	c.join(t, 4, func(c *Config) { c.SnapshotEntries = 20 })
	hasRoles(t, c.nodes, map[uint64]string{1: "voter", 2: "voter", 3: "voter", 4: "voter"})
	c.converged(t)
}

// A removed member that keeps running cannot disturb the cluster: its
// links are dropped and refused, the others go on committing under the
// same leader and term, and it applies nothing more.
func TestMemberRemovedNodeCannotDisturb(t *testing.T) {
	c := startMemCluster(t, 3, 3, nil)
	lead := waitLeader(t, c.nodes)
	gone := c.others(lead)[0]
	removed := c.nodes[gone]
	lockFresh(t, c.nodes[lead], "before", 5)
	if err := removed.RemoveMember(context.Background(), gone); err != nil {
		t.Fatalf("MEMBER REMOVE %d through itself: %v", gone, err)
	}
	delete(c.nodes, gone)
	hasRoles(t, c.nodes, map[uint64]string{lead: "voter", c.others(lead)[0]: "voter"})
	term := c.nodes[lead].Status().Term
	applied := removed.Status().Applied

	// Several election timeouts while the removed node runs, with no
	// leader of its own: it campaigns, and nobody listens.
	deadline := time.Now().Add(30 * removed.cfg.TickInterval * time.Duration(removed.cfg.ElectionTicks) / 10)
	for time.Now().Before(deadline) {
		lockFresh(t, c.nodes[lead], fmt.Sprint("during-", time.Now().UnixNano()), 1)
	}
	if st := c.nodes[lead].Status(); st.Role != "leader" || st.Term != term {
		t.Fatalf("after the removal the leader is %s in term %d; want node %d leading in term %d", st.Role, st.Term, lead, term)
	}
	if got := removed.Status().Applied; got > applied+1 {
		t.Fatalf("the removed node applied up to %d after its removal at %d", got, applied)
	}
	for _, p := range c.nodes[lead].Status().Peers {
		if p.ID == gone {
			t.Fatalf("the leader still has a link to removed node %d", gone)
		}
	}
	if _, err := removed.Execute(context.Background(), lock.Command{Op: lock.OpLock, Name: "x", Owner: "o"}); err == nil {
		t.Fatal("a write through the removed node succeeded")
	}
}

// Removing the leader is allowed: it steps down once the change commits,
// and the two others elect a leader among themselves.
func TestMemberRemoveTheLeader(t *testing.T) {
	c := startMemCluster(t, 3, 4, nil)
	lead := waitLeader(t, c.nodes)
	rest := c.others(lead)
	if err := c.nodes[rest[0]].RemoveMember(context.Background(), lead); err != nil {
		t.Fatalf("MEMBER REMOVE the leader: %v", err)
	}
	old := c.nodes[lead]
	delete(c.nodes, lead)
	next := waitLeader(t, c.nodes)
	if next == lead {
		t.Fatalf("the removed leader %d still leads", lead)
	}
	poll(t, "the removed leader to step down", func() bool { return old.Status().Role != "leader" })
	lockFresh(t, c.nodes[next], "after", 5)
	hasRoles(t, c.nodes, map[uint64]string{rest[0]: "voter", rest[1]: "voter"})
}

// Each bad change gets its error and changes nothing.
func TestMemberBadChangesAreRefused(t *testing.T) {
	c := startMemCluster(t, 3, 5, nil)
	lead := waitLeader(t, c.nodes)
	follower := c.nodes[c.others(lead)[0]]
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(n *Node) error
		want   error
	}{
		{"add an existing id", func(n *Node) error { return n.AddMember(ctx, 1, "n9:1") }, ErrMemberExists},
		{"add id 0", func(n *Node) error { return n.AddMember(ctx, 0, "n9:1") }, ErrBadMember},
		{"add id 65536", func(n *Node) error { return n.AddMember(ctx, 65536, "n9:1") }, ErrBadMember},
		{"add without a port", func(n *Node) error { return n.AddMember(ctx, 9, "n9") }, ErrBadMember},
		{"add with port 0", func(n *Node) error { return n.AddMember(ctx, 9, "n9:0") }, ErrBadMember},
		{"promote a voter", func(n *Node) error { return n.PromoteMember(ctx, 2) }, ErrAlreadyVoter},
		{"promote a stranger", func(n *Node) error { return n.PromoteMember(ctx, 9) }, ErrNoSuchMember},
		{"remove a stranger", func(n *Node) error { return n.RemoveMember(ctx, 9) }, ErrNoSuchMember},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []*Node{c.nodes[lead], follower} {
				if err := tc.change(n); !errors.Is(err, tc.want) {
					t.Fatalf("node %d: %v; want %v", n.cfg.ID, err, tc.want)
				}
			}
			hasRoles(t, c.nodes, map[uint64]string{1: "voter", 2: "voter", 3: "voter"})
		})
	}
}

// The last voter cannot be removed.
func TestMemberLastVoterStays(t *testing.T) {
	c := startMemCluster(t, 1, 6, nil)
	waitLeader(t, c.nodes)
	if err := c.nodes[1].RemoveMember(context.Background(), 1); !errors.Is(err, ErrLastVoter) {
		t.Fatalf("MEMBER REMOVE the last voter: %v; want ErrLastVoter", err)
	}
	hasRoles(t, c.nodes, map[uint64]string{1: "voter"})
}

// A change asked for while another is pending (proposed, not yet
// applied) is refused with ErrChangePending, on the leader and through a
// follower whose log holds the pending change.
func TestMemberSecondChangeIsRefused(t *testing.T) {
	c := startMemCluster(t, 3, 7, func(c *Config) { c.ElectionTicks = 300 }) // 3 s of leadership and freshness after the cut
	lead := waitLeader(t, c.nodes)
	follower := c.others(lead)[0]
	c.connected(t)
	ctx := context.Background()
	// The leader sends a follower new entries without waiting for an
	// acknowledgement only once it has heard one (raft's replicate state);
	// before that it probes, one append at a time, and a follower that
	// cannot answer would never get the change.
	lockFresh(t, c.nodes[lead], "before", 1)
	poll(t, "the leader to hear each follower acknowledge the last entry", func() bool {
		m := c.nodes[lead].matches.Load()
		if m == nil {
			return false
		}
		for _, o := range c.others(lead) {
			if (*m)[o] < c.nodes[lead].Status().Commit {
				return false
			}
		}
		return true
	})
	for _, o := range c.others(lead) {
		c.net.cut(memAddrOf(o), memAddrOf(lead)) // the followers get entries but cannot acknowledge them
	}
	first := make(chan error, 1)
	go func() { first <- c.nodes[lead].AddMember(ctx, 4, memAddrOf(4)) }()
	poll(t, "the first change to reach the follower's log", c.nodes[follower].confInLog)
	if err := c.nodes[lead].AddMember(ctx, 5, memAddrOf(5)); !errors.Is(err, ErrChangePending) {
		t.Fatalf("a second change on the leader: %v; want ErrChangePending", err)
	}
	if err := c.nodes[follower].RemoveMember(ctx, lead); !errors.Is(err, ErrChangePending) {
		t.Fatalf("a second change through a follower: %v; want ErrChangePending", err)
	}
	if err := <-first; !errors.Is(err, ErrTimeout) {
		t.Fatalf("the change that cannot commit: %v; want ErrTimeout", err)
	}
}

// A change asked of a leader cut off from the others is refused within
// the request timeout: ErrNoQuorum, or ErrNoLeader once it stepped down;
// the others' members are unchanged.
func TestMemberChangeWithoutQuorumFails(t *testing.T) {
	c := startMemCluster(t, 3, 8, nil)
	lead := waitLeader(t, c.nodes)
	c.connected(t)
	c.net.isolate(memAddrOf(lead))
	poll(t, "the isolated leader to lose contact with its quorum", func() bool { return !c.nodes[lead].fresh() })
	start := time.Now()
	err := c.nodes[lead].AddMember(context.Background(), 4, memAddrOf(4))
	if !errors.Is(err, ErrNoQuorum) && !errors.Is(err, ErrNoLeader) {
		t.Fatalf("a change without quorum: %v; want ErrNoQuorum or ErrNoLeader", err)
	}
	t.Logf("refused after %v: %v", time.Since(start), err)
	hasRoles(t, c.subset(c.others(lead)...), map[uint64]string{1: "voter", 2: "voter", 3: "voter"})
}

// A request that reaches the leader in an ADMIN frame and does not fit
// (here: a node whose own check was skipped) is answered with the
// leader's refusal, which the requesting node returns.
func TestMemberLeaderRefusalTravelsBack(t *testing.T) {
	c := startMemCluster(t, 3, 9, nil)
	lead := waitLeader(t, c.nodes)
	f := c.nodes[c.others(lead)[0]]
	c.connected(t)
	req, err := f.newID()
	if err != nil {
		t.Fatal(err)
	}
	done := f.confWaits.register(req)
	f.tr.Admin(lead, appendConfRequest(nil, req, memberChange{op: raftpb.ConfChangeAddLearnerNode, id: 2, addr: memAddrOf(2)}))
	select {
	case err := <-done:
		if !errors.Is(err, ErrMemberExists) || err.Error() != "node 2 is already a member (voter)" {
			t.Fatalf("the leader's answer: %v; want ErrMemberExists", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer from the leader")
	}
}

// A joining node that catches up from the log rather than a snapshot, a
// log longer than one message, replays the members without itself first:
// it keeps its links meanwhile (it used to drop them, as a removed node
// does, and never caught up).
func TestMemberJoinReplaysALongLog(t *testing.T) {
	c := startMemCluster(t, 3, 10, nil)
	lead := waitLeader(t, c.nodes)
	long := strings.Repeat("x", 200)
	for i := 0; i < 8000; i += 1000 {
		cmds := make([]lock.Command, 1000)
		for j := range cmds {
			cmds[j] = lock.Command{Op: lock.OpLock, Name: fmt.Sprintf("%s-%d", long, i+j), Owner: "o"}
		}
		_, errs := c.nodes[lead].ExecuteAll(context.Background(), cmds)
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if first, _ := c.nodes[lead].mem.FirstIndex(); first != 1 {
		t.Fatalf("the leader's log starts at %d; this test needs it whole", first)
	}
	if err := c.nodes[lead].AddMember(context.Background(), 4, memAddrOf(4)); err != nil {
		t.Fatal(err)
	}
	c.join(t, 4, nil)
	hasRoles(t, c.nodes, map[uint64]string{1: "voter", 2: "voter", 3: "voter", 4: "voter"})
	c.converged(t)
}

// A node restarted with ForceNewCluster after the others are gone for good
// leads alone with every acknowledged lock, and grows again with
// AddMember; ForceNewCluster on an empty directory is refused.
func TestMemberForceNewCluster(t *testing.T) {
	c := startMemCluster(t, 3, 11, func(c *Config) { c.SnapshotEntries = 20 })
	lead := waitLeader(t, c.nodes)
	acked := lockFresh(t, c.nodes[lead], "kept", 50)
	survivor := c.others(lead)[0]
	poll(t, "the survivor to apply every lock", func() bool { return c.nodes[survivor].Table().Len() == len(acked) })
	for _, n := range c.nodes {
		n.Close()
	}
	cfg := c.nodes[survivor].cfg
	cfg.ForceNewCluster = true
	cfg.Listener = c.net.listen(memAddrOf(survivor))
	alone, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alone.Close() })
	c.nodes = map[uint64]*Node{survivor: alone}
	waitLeader(t, c.nodes)
	hasRoles(t, c.nodes, map[uint64]string{survivor: "voter"})
	holdsAll(t, survivor, alone, acked)
	lockFresh(t, alone, "alone", 5)

	if err := alone.AddMember(context.Background(), 7, memAddrOf(7)); err != nil {
		t.Fatal(err)
	}
	c.join(t, 7, nil)
	hasRoles(t, c.nodes, map[uint64]string{survivor: "voter", 7: "voter"})
	c.converged(t)

	empty := cfg
	empty.DataDir, empty.Listener = t.TempDir(), c.net.listen(memAddrOf(9))
	if n, err := Start(empty); err == nil || !strings.Contains(err.Error(), "empty") {
		if n != nil {
			n.Close()
		}
		t.Fatalf("ForceNewCluster on an empty directory: %v; want refused", err)
	}
}

// A member restarted with Peers naming only itself and no cluster secret
// is refused at start: its members, read from its data directory, are
// several.
func TestMemberRestartWithoutSecretIsRefused(t *testing.T) {
	c := startMemCluster(t, 3, 12, nil)
	waitLeader(t, c.nodes)
	cfg := c.nodes[2].cfg
	c.nodes[2].Close()
	cfg.Peers, cfg.Secret, cfg.Listener = map[uint64]string{2: memAddrOf(2)}, "", nil
	if n, err := Start(cfg); err == nil || !strings.Contains(err.Error(), "cluster secret") {
		if n != nil {
			n.Close()
		}
		t.Fatalf("restart without a secret: %v; want refused", err)
	}
}

// A node alone grown to two voters proposes as a cluster's leader does:
// MaxInflight left to its default follows the members (unbounded alone, 1
// with peers).
func TestMemberGrownNodeBoundsItsInflightEntries(t *testing.T) {
	c := startMemCluster(t, 1, 13, nil)
	waitLeader(t, c.nodes)
	if err := c.nodes[1].AddMember(context.Background(), 2, memAddrOf(2)); err != nil {
		t.Fatal(err)
	}
	c.join(t, 2, nil)
	hasRoles(t, c.nodes, map[uint64]string{1: "voter", 2: "voter"})
	lockFresh(t, c.nodes[1], "grown", 5)
	c.nodes[1].Close() // the loop has ended: its fields may be read
	if got := c.nodes[1].loop.maxInflight; got != 1 {
		t.Fatalf("MaxInflight of the grown node = %d; want 1", got)
	}
}

func TestPromotable(t *testing.T) {
	for _, tc := range []struct {
		name             string
		match            uint64
		active           bool
		added, last, lag uint64
		want             bool
	}{
		{"caught up and heard from", 100, true, 50, 120, 64, true},
		{"caught up but silent (died after catching up)", 100, false, 50, 120, 64, false},
		{"lags too far", 40, true, 30, 120, 64, false},
		{"has not the entry that added it", 40, true, 50, 60, 64, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := promotable(tc.match, tc.active, tc.added, tc.last, tc.lag); got != tc.want {
				t.Fatalf("promotable = %v, want %v", got, tc.want)
			}
		})
	}
}
