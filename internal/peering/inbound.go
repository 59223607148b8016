package peering

import (
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/respguard"
	"github.com/tidwall/redcon"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Limits of the cluster port.
const (
	// maxHandshakes bounds the connections in their handshake at once;
	// more are closed at accept.
	maxHandshakes = 32
	// maxConnsPerPeer bounds a member's authenticated connections; a new
	// one closes the oldest (a peer reconnects before noticing that its
	// old connection died).
	maxConnsPerPeer = 2
	// Frame sizes, by kind. A raft message carries at most MaxSizePerMsg
	// (1 MiB) of entries, or one entry, which the proposer keeps under
	// maxEntryBytes; a forwarded command is bounded by the client limits,
	// and so are the commands of a FORWARDS frame together (and by
	// maxForwardBatch).
	maxRaftFrame    = 4 << 20
	maxForwardFrame = 256 << 10
	maxAdminFrame   = 4 << 10
	snapChunk       = 1 << 20
)

// wireLimits bound what an authenticated peer may send on the cluster port:
// frames of at most three arguments, the largest a raft message, each
// completed within a minute once started.
var wireLimits = respguard.Limits{
	MaxMultibulk: 3, MaxBulk: maxRaftFrame, MaxCommand: maxRaftFrame + 1024, MaxInline: 512, PartialTimeout: time.Minute,
}

// inbound accepts peers on the cluster port. Each connection must pass the
// handshake (handshake.go); then it carries frames from that peer, and
// nothing more is written back:
//
//	RAFT <raftpb.Message>          any raft message but a snapshot
//	FORWARD <lock.Command>         a client command for the leader
//	FORWARDS <lock.Command>...     client commands for the leader, in one
//	                               argument (listeners announce it: features.go)
//	ADMIN <payload>                a membership change request or answer
//	SNAP <raftpb.Message> <size>   a snapshot message without its data,
//	SNAPDATA <chunk>               then its data in chunks of at most 1 MiB,
//	SNAPEND <crc32c>               then the CRC-32C of the whole data.
//
// What an authenticated peer sends is still checked: frames have the sizes
// of their kind, raft messages come from the peer and are not local ones,
// forwarded commands decode (whether they are acceptable is the handler's
// to check: Forward).
type inbound struct {
	t  *Transport
	ln net.Listener

	mu          sync.Mutex
	conns       map[net.Conn]struct{}
	byPeer      map[uint64][]net.Conn // authenticated, oldest first
	handshaking int
	closed      bool
	wg          sync.WaitGroup
}

func newInbound(t *Transport, ln net.Listener) *inbound {
	return &inbound{t: t, ln: ln, conns: make(map[net.Conn]struct{}), byPeer: make(map[uint64][]net.Conn)}
}

func (in *inbound) start() {
	in.wg.Add(1)
	go in.accept()
}

// close stops accepting and closes every peer connection.
func (in *inbound) close() {
	in.mu.Lock()
	in.closed = true
	for c := range in.conns {
		c.Close()
	}
	in.mu.Unlock()
	in.ln.Close()
}

func (in *inbound) wait() { in.wg.Wait() }

// dropPeer closes the authenticated connections of a member that was
// removed; its reconnections are refused at the handshake.
func (in *inbound) dropPeer(id uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, c := range in.byPeer[id] {
		c.Close()
	}
}

func (in *inbound) accept() {
	defer in.wg.Done()
	for {
		conn, err := in.ln.Accept()
		if err != nil {
			in.mu.Lock()
			closed := in.closed
			in.mu.Unlock()
			if closed {
				return
			}
			in.t.log.Warn("cluster accept", "err", err)
			select {
			case <-time.After(backoffMin):
			case <-in.t.stopc:
				return
			}
			continue
		}
		in.mu.Lock()
		if in.closed {
			in.mu.Unlock()
			conn.Close()
			return
		}
		if in.handshaking >= maxHandshakes {
			in.mu.Unlock()
			in.t.log.Warn("cluster port: too many connections in their handshake; closing one", "remote", conn.RemoteAddr().String())
			conn.Close()
			continue
		}
		in.handshaking++
		in.conns[conn] = struct{}{}
		in.wg.Add(1)
		in.mu.Unlock()
		go in.serve(conn)
	}
}

func (in *inbound) serve(conn net.Conn) {
	defer in.wg.Done()
	authed := false
	var from uint64
	defer func() {
		in.mu.Lock()
		delete(in.conns, conn)
		if !authed {
			in.handshaking--
		} else {
			cs := in.byPeer[from]
			for i, c := range cs {
				if c == conn {
					in.byPeer[from] = append(cs[:i:i], cs[i+1:]...)
					break
				}
			}
		}
		in.mu.Unlock()
		conn.Close()
	}()
	t := in.t
	pc, err := t.acceptTLS(conn) // conn itself without TLS
	if err != nil {
		t.log.Warn("refused peer", "remote", conn.RemoteAddr().String(), "why", err)
		return
	}
	claims, err := t.listenerHandshake(pc)
	if err != nil {
		t.log.Warn("refused peer", "remote", conn.RemoteAddr().String(), "why", err)
		return
	}
	from = claims.id
	in.mu.Lock()
	in.handshaking--
	authed = true
	if !t.isPeer(from) { // removed meanwhile: SetPeers swaps the members before it drops a removed one's connections under in.mu
		in.mu.Unlock()
		return
	}
	cs := append(in.byPeer[from], conn)
	for len(cs) > maxConnsPerPeer {
		cs[0].Close()
		cs = cs[1:]
	}
	in.byPeer[from] = cs
	in.mu.Unlock()
	if claims.clientAddr != "" {
		t.h.PeerClientAddr(from, claims.clientAddr)
	}
	r := &frameReader{t: t, from: from, rd: redcon.NewReader(respguard.Wrap(pc, wireLimits))}
	if err := r.run(); !errors.Is(err, ErrStopped) {
		t.log.Warn("dropped peer connection", "peer", from, "err", err)
	}
}

// frameReader reads one authenticated peer's frames.
type frameReader struct {
	t    *Transport
	from uint64
	rd   *redcon.Reader

	cmds []lock.Command // a FORWARD or FORWARDS frame's, reused

	snap     *raftpb.Message // a snapshot being received
	snapSize int
	snapData []byte
}

// run reads frames until the connection fails or a frame is refused, and
// returns why.
func (r *frameReader) run() error {
	for {
		cmd, err := r.rd.ReadCommand()
		if err != nil {
			return err
		}
		if err := r.frame(cmd.Args); err != nil {
			return err
		}
	}
}

// frame handles one frame; an error drops the connection.
func (r *frameReader) frame(a [][]byte) error {
	t := r.t
	if len(a) < 2 {
		return errors.New("bad frame")
	}
	kind, arg := string(a[0]), a[1]
	if r.snap != nil && kind != "SNAPDATA" && kind != "SNAPEND" {
		return fmt.Errorf("%s frame inside a snapshot", clipString(kind))
	}
	switch {
	case kind == "RAFT" && len(a) == 2:
		if len(arg) > maxRaftFrame {
			return fmt.Errorf("raft frame of %d bytes", len(arg))
		}
		m := &raftpb.Message{}
		if err := proto.Unmarshal(arg, m); err != nil {
			return err
		}
		if err := r.checkMessage(m); err != nil {
			return err
		}
		if m.GetType() == raftpb.MsgSnap {
			return errors.New("snapshot in a RAFT frame")
		}
		t.h.Heard(r.from)
		return t.h.Step(m)
	case kind == "FORWARD" && len(a) == 2:
		if len(arg) > maxForwardFrame {
			return fmt.Errorf("forward frame of %d bytes", len(arg))
		}
		c, rest, err := lock.DecodeCommand(arg)
		if err != nil || len(rest) != 0 {
			return fmt.Errorf("bad forwarded command: %v", err)
		}
		r.cmds = append(r.cmds[:0], c)
		r.forward()
		return nil
	case kind == "FORWARDS" && len(a) == 2:
		if len(arg) > maxForwardFrame {
			return fmt.Errorf("forwards frame of %d bytes", len(arg))
		}
		var err error
		if r.cmds, err = decodeForwards(r.cmds[:0], arg); err != nil {
			return err
		}
		r.forward()
		return nil
	case kind == "ADMIN" && len(a) == 2:
		if len(arg) > maxAdminFrame {
			return fmt.Errorf("admin frame of %d bytes", len(arg))
		}
		t.h.Admin(r.from, append([]byte(nil), arg...))
		return nil
	case kind == "SNAP" && len(a) == 3:
		m := &raftpb.Message{}
		if err := proto.Unmarshal(arg, m); err != nil {
			return err
		}
		if err := r.checkMessage(m); err != nil {
			return err
		}
		size, err := strconv.Atoi(string(a[2]))
		if err != nil || size < 0 || size > t.cfg.MaxSnapshotBytes || m.GetType() != raftpb.MsgSnap || len(m.GetSnapshot().GetData()) != 0 {
			return fmt.Errorf("bad snapshot header (size %q)", clipString(string(a[2])))
		}
		t.h.Heard(r.from)
		r.snap, r.snapSize, r.snapData = m, size, make([]byte, 0, min(size, snapChunk))
		return nil
	case kind == "SNAPDATA" && len(a) == 2 && r.snap != nil:
		if len(arg) > snapChunk || len(r.snapData)+len(arg) > r.snapSize {
			return errors.New("snapshot data beyond its size")
		}
		t.h.Heard(r.from)
		r.snapData = append(r.snapData, arg...)
		return nil
	case kind == "SNAPEND" && len(a) == 2 && r.snap != nil:
		sum, err := strconv.ParseUint(string(arg), 10, 32)
		if err != nil || len(r.snapData) != r.snapSize || uint32(sum) != crc32.Checksum(r.snapData, castagnoli) {
			return errors.New("snapshot data incomplete or damaged")
		}
		m := r.snap
		m.Snapshot.Data = r.snapData
		r.snap, r.snapData = nil, nil
		t.log.Info("received a snapshot", "peer", r.from, "index", m.GetSnapshot().GetMetadata().GetIndex(), "bytes", r.snapSize)
		return t.h.Step(m)
	}
	return fmt.Errorf("unknown frame %s with %d arguments", clipString(kind), len(a)-1)
}

// forward hands the commands of a forwarding frame to the handler, and
// then lets go of them.
func (r *frameReader) forward() {
	r.t.h.Forward(r.from, r.cmds)
	clear(r.cmds)
}

// checkMessage checks that a raft message is one a peer may send: from the
// peer itself, to this node, and not one of raft's local message types.
func (r *frameReader) checkMessage(m *raftpb.Message) error {
	if m.GetFrom() != r.from || m.GetTo() != r.t.cfg.ID || raft.IsLocalMsg(m.GetType()) {
		return fmt.Errorf("raft message %v from %d to %d", m.GetType(), m.GetFrom(), m.GetTo())
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
