package replication

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockd/lockd/lock"
	"github.com/tidwall/redcon"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

const testSecret = "0123456789abcdef-test"

// rawPeer is a hand-written dialer side of the cluster handshake, so that
// tests can speak to a node as a member would, or as a stranger.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	rd   *bufio.Reader
	sent [][]byte // every message written, for replays
}

func dialRaw(t testing.TB, node *Node) *rawPeer {
	t.Helper()
	conn, err := net.Dial("tcp", node.cfg.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	return &rawPeer{t: t, conn: conn, rd: bufio.NewReader(conn)}
}

func (p *rawPeer) send(args ...[]byte) {
	p.t.Helper()
	b := redcon.AppendArray(nil, len(args))
	for _, a := range args {
		b = redcon.AppendBulk(b, a)
	}
	p.sent = append(p.sent, b)
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// recv reads one reply: an array of bulk strings, or an error line.
func (p *rawPeer) recv() ([]string, string) {
	p.t.Helper()
	line, err := p.rd.ReadString('\n')
	if err != nil {
		return nil, "closed: " + err.Error()
	}
	if line[0] == '-' {
		return nil, strings.TrimSpace(line)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
	var out []string
	for range n {
		h, _ := p.rd.ReadString('\n')
		l, _ := strconv.Atoi(strings.TrimSpace(h[1:]))
		b := make([]byte, l+2)
		io.ReadFull(p.rd, b)
		out = append(out, string(b[:l]))
	}
	return out, ""
}

// handshake runs the dialer side as node `as` with the given incarnation.
// It returns the listener's refusal, or "" once the verdict is OK.
func (p *rawPeer) handshake(cluster string, as uint64, secret, incarnation string) string {
	p.t.Helper()
	dn := bytes.Repeat([]byte{byte(as)}, nonceSize)
	copy(dn, fmt.Sprint(time.Now().UnixNano()))
	p.send([]byte("HELLO"), []byte("2"), []byte(cluster), u64(as), dn)
	ch, refusal := p.recv()
	if refusal != "" {
		return refusal
	}
	if len(ch) != 5 || ch[0] != "CHALLENGE" {
		p.t.Fatalf("HELLO answered %q", ch)
	}
	lid, _ := strconv.ParseUint(ch[1], 10, 64)
	ln, linc := []byte(ch[2]), []byte(ch[3])
	if want := mac([]byte(secret), labelListener, []byte(cluster), u64(as), u64(lid), dn, ln, linc); secret == testSecret && !bytes.Equal([]byte(ch[4]), want) {
		p.t.Fatal("the listener's mac does not check out")
	}
	inc := []byte(incarnation)
	p.send([]byte("AUTH"), inc, []byte("127.0.0.1:1"), mac([]byte(secret), labelDialer, []byte(cluster), u64(as), u64(lid), dn, ln, inc, []byte("127.0.0.1:1")))
	v, refusal := p.recv()
	if refusal != "" {
		return refusal
	}
	if len(v) != 3 || v[0] != "VERDICT" {
		p.t.Fatalf("AUTH answered %q", v)
	}
	if v[1] != "OK" {
		return v[1]
	}
	return ""
}

// asPeer connects to node as the member `as` (a running node whose
// incarnation it presents) and returns the authenticated connection.
func asPeer(t testing.TB, node, as *Node, secret string) net.Conn {
	t.Helper()
	p := dialRaw(t, node)
	if r := p.handshake("test", as.cfg.ID, secret, as.disk.Identity().Incarnation); r != "" {
		t.Fatalf("handshake as node %d: %s", as.cfg.ID, r)
	}
	return p.conn
}

func frameOf(args ...[]byte) []byte {
	b := redcon.AppendArray(nil, len(args))
	for _, a := range args {
		b = redcon.AppendBulk(b, a)
	}
	return b
}

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

// A stranger hears the same "refused" whatever it got wrong, and only after
// it has answered the challenge: nothing tells it which check failed.
func TestStrangersAreRefusedAlike(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	inc := nodes[2].disk.Identity().Incarnation
	for _, tc := range []struct {
		name, cluster, secret string
		as                    uint64
	}{
		{"wrong secret", "test", "not-the-secret-at-all", 2},
		{"wrong cluster id", "other", testSecret, 2},
		{"unknown node id", "test", testSecret, 9},
		{"its own id", "test", testSecret, lead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := dialRaw(t, nodes[lead])
			if r := p.handshake(tc.cluster, tc.as, tc.secret, inc); r != "-ERR refused" {
				t.Fatalf("handshake answered %q; want -ERR refused", r)
			}
		})
	}
	t.Run("garbage", func(t *testing.T) {
		p := dialRaw(t, nodes[lead])
		p.conn.Write([]byte("RAFT hello\r\n"))
		if _, r := p.recv(); r != "-ERR refused" {
			t.Fatalf("a frame before the handshake answered %q", r)
		}
	})
}

// A recorded handshake replayed on a new connection fails: the listener's
// nonce is new, so the recorded mac no longer matches.
func TestReplayedHandshakeIsRefused(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	var as uint64 = 1
	if as == lead {
		as = 2
	}
	p := dialRaw(t, nodes[lead])
	if r := p.handshake("test", as, testSecret, nodes[as].disk.Identity().Incarnation); r != "" {
		t.Fatal(r)
	}
	q := dialRaw(t, nodes[lead])
	q.conn.Write(p.sent[0])
	if ch, r := q.recv(); r != "" || ch[0] != "CHALLENGE" {
		t.Fatalf("replayed HELLO answered %q %q", ch, r)
	}
	q.conn.Write(p.sent[1])
	if _, r := q.recv(); r != "-ERR refused" {
		t.Fatalf("replayed AUTH answered %q; want -ERR refused", r)
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
	conn := asPeer(t, nodes[lead], nodes[as], testSecret)
	id := func(k uint64) uint64 { return as<<48 | 1<<40 | k }
	bad := []lock.Command{
		{Op: lock.OpLock, ID: id(1), Name: strings.Repeat("n", 100<<10), Owner: "o"},
		{Op: lock.OpLock, ID: id(2), Name: "long-lease", Owner: "o", TTL: 31 * 365 * 24 * 3600 * 1000},
		{Op: lock.OpTick, ID: id(3)},
		{Op: lock.OpLock, ID: (as%3+1)<<48 | 5, Name: "someone-elses-id", Owner: "o"},
		{Op: lock.OpCancel, ID: id(4), Name: "x", Owner: "o", Target: (as%3+1)<<48 | 5},
	}
	for _, c := range bad {
		forward(t, conn, c)
	}
	// A good one behind them, on the same connection, is applied after them.
	forward(t, conn, lock.Command{Op: lock.OpLock, ID: id(9), Name: "good", Owner: "o"})
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

// Frames have the sizes of their kind: a member sending a huge frame is
// cut off before the node buffers it.
func TestOversizedFramesAreRefused(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	var as uint64 = 1
	if as == lead {
		as = 2
	}
	for _, tc := range []struct {
		name string
		head []byte
	}{
		{"a 512 MiB raft frame", []byte("*2\r\n$4\r\nRAFT\r\n$536870912\r\n")},
		{"a 1 MiB forward", frameOf([]byte("FORWARD"), make([]byte, 1<<20))},
		{"a snapshot over the ceiling", frameOf([]byte("SNAP"), mustMarshal(t, &raftpb.Message{
			Type: raftpb.MsgSnap.Enum(), From: &as, To: &lead, Snapshot: &raftpb.Snapshot{}}), []byte("2000000000"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := asPeer(t, nodes[lead], nodes[as], testSecret)
			conn.Write(tc.head)
			conn.Write(make([]byte, 64<<10))
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.Copy(io.Discard, conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the connection was not closed: %v", err)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := nodes[as].Execute(ctx, lock.Command{Op: lock.OpLock, Name: "still-works", Owner: "o"}); err != nil {
		t.Fatalf("the cluster after oversized frames: %v", err)
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A member's connections are capped: each new one closes the oldest.
func TestConnectionsPerPeerAreCapped(t *testing.T) {
	nodes := testCluster(t, 3, nil)
	lead := waitLeader(t, nodes)
	var as uint64 = 1
	if as == lead {
		as = 2
	}
	var conns []net.Conn
	for range maxConnsPerPeer + 3 {
		conns = append(conns, asPeer(t, nodes[lead], nodes[as], testSecret))
	}
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	// The real node as also holds a connection, so at least all but the
	// newest maxConnsPerPeer-1 of ours are closed.
	if closed < len(conns)-maxConnsPerPeer {
		t.Fatalf("%d of %d connections closed; want at least %d", closed, len(conns), len(conns)-maxConnsPerPeer)
	}
}
