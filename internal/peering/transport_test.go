package peering

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockd/lockd/internal/datadir"
	"github.com/lockd/lockd/lock"
	"github.com/tidwall/redcon"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

const testSecret = "0123456789abcdef-test"

// incarnation is member id's data directory incarnation in these tests.
func incarnation(id uint64) string { return fmt.Sprintf("incarnation-of-%d", id) }

type forwardedAdmin struct {
	from uint64
	data []byte
}

type forwarded struct {
	from uint64
	cmd  lock.Command
}

// recorder is a Handler that records what its Transport hands it, on
// buffered channels the tests read; it knows every member by
// incarnation(id) unless known says otherwise.
type recorder struct {
	steps     chan *raftpb.Message
	forwards  chan forwarded
	sizes     chan int // commands per Forward call
	admins    chan forwardedAdmin
	snapshots chan raft.SnapshotStatus
	lost      chan error
	known     map[uint64]string
}

func newRecorder() *recorder {
	return &recorder{
		steps: make(chan *raftpb.Message, 64), forwards: make(chan forwarded, 64), sizes: make(chan int, 64), admins: make(chan forwardedAdmin, 64),
		snapshots: make(chan raft.SnapshotStatus, 64), lost: make(chan error, 1), known: map[uint64]string{},
	}
}

func (r *recorder) Step(m *raftpb.Message) error {
	select {
	case r.steps <- m:
		return nil
	default:
		return errors.New("test recorder full")
	}
}

func (r *recorder) Forward(from uint64, cmds []lock.Command) {
	select {
	case r.sizes <- len(cmds):
	default:
	}
	for _, c := range cmds {
		select {
		case r.forwards <- forwarded{from, c}:
		default:
		}
	}
}

func (r *recorder) Admin(from uint64, data []byte) {
	select {
	case r.admins <- forwardedAdmin{from, data}:
	default:
	}
}

func (r *recorder) Heard(uint64)                  {}
func (r *recorder) PeerClientAddr(uint64, string) {}
func (r *recorder) ReportUnreachable(uint64)      {}

func (r *recorder) CheckPeer(id uint64, inc string) error {
	known, ok := r.known[id]
	if !ok {
		known = incarnation(id)
	}
	if inc != known {
		return &datadir.LostStateError{Node: id, Known: known, Presented: inc}
	}
	return nil
}

func (r *recorder) ReportSnapshot(_ uint64, st raft.SnapshotStatus) {
	select {
	case r.snapshots <- st:
	default:
	}
}

func (r *recorder) LostState(err error) {
	select {
	case r.lost <- err:
	default:
	}
}

// member is one running Transport of a test cluster.
type member struct {
	id   uint64
	addr string
	tr   *Transport
	h    *recorder
}

// lone starts member 1 of a three-member cluster whose other members never
// answer: tests speak to it with rawPeer.
func lone(t testing.TB) *member {
	t.Helper()
	ln := listen(t)
	peers := map[uint64]string{1: ln.Addr().String(), 2: "node-2", 3: "node-3"}
	return startMember(t, 1, peers, ln, func(context.Context, string) (net.Conn, error) {
		return nil, errors.New("this test's other members do not answer")
	}, nil)
}

// pair starts members 1 and 2 of a two-member cluster, linked over loopback.
func pair(t testing.TB, tune func(id uint64, h *recorder)) (*member, *member) {
	t.Helper()
	ln1, ln2 := listen(t), listen(t)
	peers := map[uint64]string{1: ln1.Addr().String(), 2: ln2.Addr().String()}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	return startMember(t, 1, peers, ln1, dial, tune), startMember(t, 2, peers, ln2, dial, tune)
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func startMember(t testing.TB, id uint64, peers map[uint64]string, ln net.Listener,
	dial func(context.Context, string) (net.Conn, error), tune func(id uint64, h *recorder)) *member {
	t.Helper()
	return startMemberWith(t, id, peers, ln, dial, tune, nil)
}

// startMemberWith is startMember with a last say on the Transport's Config.
func startMemberWith(t testing.TB, id uint64, peers map[uint64]string, ln net.Listener,
	dial func(context.Context, string) (net.Conn, error), tune func(id uint64, h *recorder), cfgTune func(*Config)) *member {
	t.Helper()
	h := newRecorder()
	if tune != nil {
		tune(id, h)
	}
	cfg := Config{
		ID: id, Peers: peers, ClusterID: "test", Secret: testSecret, ClientAddr: fmt.Sprintf("127.0.0.1:%d", 6378+id),
		Incarnation: incarnation(id), Listener: ln, Dial: dial, QueueLen: 4, MaxSnapshotBytes: 1 << 30,
		Logger: slog.New(slog.DiscardHandler),
	}
	if cfgTune != nil {
		cfgTune(&cfg)
	}
	tr := New(cfg, h)
	tr.Start()
	t.Cleanup(tr.Close)
	return &member{id: id, addr: ln.Addr().String(), tr: tr, h: h}
}

// receive waits up to 10 s for a value on c.
func receive[T any](t testing.TB, what string, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		panic("unreachable")
	}
}

// rawPeer is a hand-written dialer side of the cluster handshake, so that
// tests can speak to a node as a member would, or as a stranger.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	rd   *bufio.Reader
	sent [][]byte // every message written, for replays
}

func dialRaw(t testing.TB, to *member) *rawPeer {
	t.Helper()
	conn, err := net.Dial("tcp", to.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return rawOn(t, conn)
}

// rawOn is a rawPeer speaking on conn, which must answer within 5 s.
func rawOn(t testing.TB, conn net.Conn) *rawPeer {
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
// It returns the listener's refusal, or "" once the verdict is OK and the
// listener announced its features.
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
	if f, r := p.recv(); r != "" || len(f) != 2 || f[0] != "FEATURES" || f[1] != featureForwards {
		p.t.Fatalf("after its verdict the listener wrote %q %q; want FEATURES %s", f, r, featureForwards)
	}
	return ""
}

// asPeer connects to member to as the member `as` and returns the
// authenticated connection.
func asPeer(t testing.TB, to *member, as uint64) net.Conn {
	t.Helper()
	p := dialRaw(t, to)
	if r := p.handshake("test", as, testSecret, incarnation(as)); r != "" {
		t.Fatalf("handshake as node %d: %s", as, r)
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

// A stranger hears the same "refused" whatever it got wrong, and only after
// it has answered the challenge: nothing tells it which check failed.
func TestStrangersAreRefusedAlike(t *testing.T) {
	m := lone(t)
	for _, tc := range []struct {
		name, cluster, secret string
		as                    uint64
	}{
		{"wrong secret", "test", "not-the-secret-at-all", 2},
		{"wrong cluster id", "other", testSecret, 2},
		{"unknown node id", "test", testSecret, 9},
		{"its own id", "test", testSecret, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := dialRaw(t, m)
			if r := p.handshake(tc.cluster, tc.as, tc.secret, incarnation(2)); r != "-ERR refused" {
				t.Fatalf("handshake answered %q; want -ERR refused", r)
			}
		})
	}
	t.Run("garbage", func(t *testing.T) {
		p := dialRaw(t, m)
		p.conn.Write([]byte("RAFT hello\r\n"))
		if _, r := p.recv(); r != "-ERR refused" {
			t.Fatalf("a frame before the handshake answered %q", r)
		}
	})
}

// A recorded handshake replayed on a new connection fails: the listener's
// nonce is new, so the recorded mac no longer matches.
func TestReplayedHandshakeIsRefused(t *testing.T) {
	m := lone(t)
	p := dialRaw(t, m)
	if r := p.handshake("test", 2, testSecret, incarnation(2)); r != "" {
		t.Fatal(r)
	}
	q := dialRaw(t, m)
	q.conn.Write(p.sent[0])
	if ch, r := q.recv(); r != "" || ch[0] != "CHALLENGE" {
		t.Fatalf("replayed HELLO answered %q %q", ch, r)
	}
	q.conn.Write(p.sent[1])
	if _, r := q.recv(); r != "-ERR refused" {
		t.Fatalf("replayed AUTH answered %q; want -ERR refused", r)
	}
}

// Frames have the sizes of their kind, and raft messages come from their
// sender: a member sending anything else is cut off, a huge frame before
// the node buffers it.
func TestBadFramesAreRefused(t *testing.T) {
	m := lone(t)
	var as, to, other uint64 = 2, 1, 3
	for _, tc := range []struct {
		name string
		head []byte
	}{
		{"a 512 MiB raft frame", []byte("*2\r\n$4\r\nRAFT\r\n$536870912\r\n")},
		{"a 1 MiB forward", frameOf([]byte("FORWARD"), make([]byte, 1<<20))},
		{"a 1 MiB forwards frame", frameOf([]byte("FORWARDS"), make([]byte, 1<<20))},
		{"a forwards frame of garbage", frameOf([]byte("FORWARDS"), []byte("garbage"))},
		{"an empty forwards frame", frameOf([]byte("FORWARDS"), nil)},
		{"a forwards frame with a command cut short", frameOf([]byte("FORWARDS"), forwardsPayload(2, 10)[:20])},
		{"a forwards frame of 1025 commands", frameOf([]byte("FORWARDS"), forwardsPayload(2, maxForwardBatch+1))},
		{"a snapshot over the ceiling", frameOf([]byte("SNAP"), mustMarshal(t, &raftpb.Message{
			Type: raftpb.MsgSnap.Enum(), From: &as, To: &to, Snapshot: &raftpb.Snapshot{}}), []byte("2000000000"))},
		{"a raft message from another node", frameOf([]byte("RAFT"), mustMarshal(t, &raftpb.Message{
			Type: raftpb.MsgHeartbeat.Enum(), From: &other, To: &to}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := asPeer(t, m, as)
			conn.Write(tc.head)
			conn.Write(make([]byte, 64<<10))
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.Copy(io.Discard, conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the connection was not closed: %v", err)
			}
		})
	}
	conn := asPeer(t, m, as)
	conn.Write(frameOf([]byte("RAFT"), mustMarshal(t, &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: &as, To: &to})))
	if got := receive(t, "raft message", m.h.steps); got.GetFrom() != as || got.GetType() != raftpb.MsgHeartbeat {
		t.Fatalf("after the bad frames, the handler got %v", got)
	}
	if len(m.h.steps) != 0 || len(m.h.forwards) != 0 {
		t.Fatalf("the bad frames reached the handler: %d steps, %d forwards", len(m.h.steps)+1, len(m.h.forwards))
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
	m := lone(t)
	var conns []net.Conn
	for range maxConnsPerPeer + 3 {
		conns = append(conns, asPeer(t, m, 2))
	}
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	if closed != len(conns)-maxConnsPerPeer {
		t.Fatalf("%d of %d connections closed; want %d", closed, len(conns), len(conns)-maxConnsPerPeer)
	}
}

// What one member sends reaches the other's handler: raft messages,
// forwarded commands, and a snapshot larger than a chunk, whose sending is
// reported.
func TestFramesReachThePeer(t *testing.T) {
	a, b := pair(t, nil)
	var from, to uint64 = 1, 2
	a.tr.Send(&raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: &from, To: &to})
	if got := receive(t, "heartbeat", b.h.steps); got.GetType() != raftpb.MsgHeartbeat || got.GetFrom() != from {
		t.Fatalf("got %v", got)
	}
	cmd := lock.Command{Op: lock.OpLock, ID: 1<<48 | 7, Name: "n", Owner: "o"}
	a.tr.Forward(to, cmd)
	if got := receive(t, "forward", b.h.forwards); got.from != from || got.cmd.Name != "n" || got.cmd.ID != cmd.ID {
		t.Fatalf("got %+v", got)
	}
	data := bytes.Repeat([]byte("snapshot"), 3<<20/8+5)
	var index uint64 = 42
	if dropped := a.tr.Send(&raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: &from, To: &to,
		Snapshot: &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{Index: &index}}}); dropped {
		t.Fatal("the snapshot was dropped")
	}
	got := receive(t, "snapshot", b.h.steps)
	if got.GetType() != raftpb.MsgSnap || got.GetSnapshot().GetMetadata().GetIndex() != index || !bytes.Equal(got.GetSnapshot().GetData(), data) {
		t.Fatalf("got a %v at %d with %d bytes", got.GetType(), got.GetSnapshot().GetMetadata().GetIndex(), len(got.GetSnapshot().GetData()))
	}
	if st := receive(t, "snapshot report", a.h.snapshots); st != raft.SnapshotFinish {
		t.Fatalf("snapshot reported %v", st)
	}
	// Three frames were written: the heartbeat, the forward, the snapshot
	// (counted once it is written whole, before it is reported).
	for _, p := range a.tr.Peers() {
		if p.ID == to && p.Sent != 3 {
			t.Fatalf("peer %d: %d frames sent; want 3", p.ID, p.Sent)
		}
	}
}

// A member that presents another incarnation than its peer knows it by
// hears so in an authenticated verdict, and its handler is told.
func TestANodeThatLostItsStateHearsIt(t *testing.T) {
	a, _ := pair(t, func(id uint64, h *recorder) {
		if id == 2 {
			h.known[1] = "the-incarnation-before-the-wipe"
		}
	})
	err := receive(t, "lost-state verdict", a.h.lost)
	if !strings.Contains(err.Error(), "node 2 refused this node") || !strings.Contains(err.Error(), "wiped or replaced") {
		t.Fatalf("LostState(%v)", err)
	}
}

// Send and Forward never block: a peer's full queue drops the frame, and
// the drop is reported and counted.
func TestAFullQueueDropsFrames(t *testing.T) {
	m := lone(t) // its peers never answer, so nothing leaves the queues
	var from, to uint64 = 1, 2
	heartbeat := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: &from, To: &to}
	for i := range 4 { // Config.QueueLen
		if m.tr.Send(heartbeat) {
			t.Fatalf("frame %d dropped; the queue holds 4", i)
		}
	}
	if !m.tr.Send(heartbeat) {
		t.Fatal("a frame beyond the queue was not dropped")
	}
	m.tr.Forward(to, lock.Command{Op: lock.OpLock, Name: "n", Owner: "o"})
	for _, p := range m.tr.Peers() {
		if want := map[uint64]uint64{2: 2, 3: 0}[p.ID]; p.Dropped != want || p.Connected {
			t.Fatalf("peer %d: %+v; want %d dropped, not connected", p.ID, p, want)
		}
	}
	var stranger uint64 = 9
	if m.tr.Send(&raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: &from, To: &stranger}) {
		t.Fatal("a message for a non-member counts as dropped")
	}
}
