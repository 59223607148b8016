package replication

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/lockd/lockd/internal/peering"
	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// asMember starts a peering.Transport that speaks to node as the member
// `as` would (with its id and incarnation), beside as's own links, for
// tests that send node what a member could. Nothing comes back on it.
func asMember(t testing.TB, node, as *Node) *peering.Transport {
	t.Helper()
	tr := peering.New(peering.Config{
		ID: as.cfg.ID, Peers: map[uint64]string{as.cfg.ID: "", node.cfg.ID: node.cfg.Listener.Addr().String()},
		ClusterID: node.cfg.ClusterID, Secret: node.cfg.Secret, Incarnation: as.disk.Identity().Incarnation,
		Dial: as.cfg.Dial, QueueLen: 64, MaxSnapshotBytes: 1 << 20,
		Logger: slog.New(slog.DiscardHandler),
	}, silent{})
	tr.Start()
	t.Cleanup(tr.Close)
	return tr
}

// silent is the handler of asMember's transport: nothing arrives on it.
type silent struct{}

func (silent) Step(*raftpb.Message) error                 { return nil }
func (silent) Forward(uint64, []lock.Command)             {}
func (silent) Admin(uint64, []byte)                       {}
func (silent) Heard(uint64)                               {}
func (silent) PeerClientAddr(uint64, string)              {}
func (silent) CheckPeer(uint64, string) error             { return nil }
func (silent) ReportUnreachable(uint64)                   {}
func (silent) ReportSnapshot(uint64, raft.SnapshotStatus) {}
func (silent) LostState(error)                            {}

func TestAClusterDoesNotStartWithoutASecret(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, secret := range []string{"", "short"} {
		_, err := Start(Config{ID: 1, Peers: map[uint64]string{1: "a:1", 2: "b:1", 3: "c:1"}, DataDir: t.TempDir(), Listener: ln, Secret: secret})
		if err == nil || !strings.Contains(err.Error(), "cluster secret") || !strings.Contains(err.Error(), "--cluster-secret") {
			t.Fatalf("secret %q: Start = %v; want an error saying what to set", secret, err)
		}
	}
}

// What an authenticated member forwards passes the checks a client's
// command does; none of these reach the table.
func TestForwardedCommandsAreChecked(t *testing.T) {
	nodes := testCluster(t, 3, func(c *Config) {
		c.Validate = func(c *lock.Command) error {
			if len(c.Name) > 512 || c.TTL > 7*24*3600*1000 {
				return errors.New("over the limits")
			}
			return nil
		}
	})
	lead := waitLeader(t, nodes)
	var as uint64 = 1
	if as == lead {
		as = 2
	}
	member := asMember(t, nodes[lead], nodes[as])
	id := func(k uint64) uint64 { return as<<48 | 1<<40 | k }
	bad := []lock.Command{
		{Op: lock.OpLock, ID: id(1), Name: strings.Repeat("n", 100<<10), Owner: "o"},
		{Op: lock.OpLock, ID: id(2), Name: "long-lease", Owner: "o", TTL: 31 * 365 * 24 * 3600 * 1000},
		{Op: lock.OpTick, ID: id(3)},
		{Op: lock.OpLock, ID: (as%3+1)<<48 | 5, Name: "someone-elses-id", Owner: "o"},
		{Op: lock.OpCancel, ID: id(4), Name: "x", Owner: "o", Target: (as%3+1)<<48 | 5},
	}
	for _, c := range bad {
		member.Forward(lead, c)
	}
	// A good one behind them, on the same connection, is applied after them.
	member.Forward(lead, lock.Command{Op: lock.OpLock, ID: id(9), Name: "good", Owner: "o"})
	poll(t, "the good command", func() bool { _, ok := nodes[lead].Table().Get("good"); return ok })
	for _, c := range bad {
		if _, ok := nodes[lead].Table().Get(c.Name); ok && c.Name != "x" {
			t.Fatalf("forwarded %v %q was applied", c.Op, c.Name[:min(len(c.Name), 20)])
		}
	}
	if n := nodes[lead].Table().Len(); n != 1 {
		t.Fatalf("%d locks held; want only the good one", n)
	}
}

// A member's raft proposal (MsgProp) is dropped: lockd forwards commands as
// FORWARD frames, checked, never as raft proposals, so one is forged and
// would put an unchecked entry in the log.
func TestPeerProposalsAreDropped(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	var as uint64 = 1
	if as == lead {
		as = 2
	}
	member := asMember(t, nodes[lead], nodes[as])
	b := lock.Batch{Term: nodes[lead].Status().Term, Cmds: []lock.Command{{Op: lock.OpLock, ID: as<<48 | 1<<40 | 1, Name: "forged", Owner: "o"}}}
	member.Send(&raftpb.Message{Type: raftpb.MsgProp.Enum(), From: &as, To: &lead,
		Entries: []*raftpb.Entry{{Data: lock.AppendBatch(nil, &b)}}})
	// A forwarded command behind it, on the same connection, is applied after it.
	member.Forward(lead, lock.Command{Op: lock.OpLock, ID: as<<48 | 1<<40 | 2, Name: "good", Owner: "o"})
	poll(t, "the good command", func() bool { _, ok := nodes[lead].Table().Get("good"); return ok })
	if _, ok := nodes[lead].Table().Get("forged"); ok {
		t.Fatal("a member's raft proposal was applied")
	}
}
