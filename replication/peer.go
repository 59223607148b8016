package replication

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lockd/lockd/lock"
	"github.com/tidwall/redcon"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Timing of the links to peers.
const (
	dialTimeout      = time.Second
	handshakeTimeout = 2 * time.Second
	writeTimeout     = 2 * time.Second
	backoffMin       = 50 * time.Millisecond
	backoffMax       = time.Second
	flushBytes       = 256 << 10
)

// frame is one message for a peer: a raft message, or a forwarded command.
type frame struct {
	msg *raftpb.Message
	cmd lock.Command
	fwd bool
}

// peer is this node's outbound link to one other member. Its goroutine dials
// (with backoff), says HELLO, then writes queued frames in batches. Enqueue
// never blocks; a full queue drops the frame.
type peer struct {
	n    *Node
	id   uint64
	addr string
	q    chan frame
	done chan struct{}

	connected atomic.Bool
	dropped   atomic.Uint64
}

func newPeer(n *Node, id uint64, addr string) *peer {
	return &peer{n: n, id: id, addr: addr, q: make(chan frame, n.cfg.PeerQueue), done: make(chan struct{})}
}

func (p *peer) start() { go p.run() }
func (p *peer) wait()  { <-p.done }

// enqueue queues f and reports whether it was queued.
func (p *peer) enqueue(f frame) bool {
	select {
	case p.q <- f:
		return true
	default:
		p.dropped.Add(1)
		return false
	}
}

func (p *peer) run() {
	defer close(p.done)
	log := p.n.log.With("peer", p.id)
	backoff := backoffMin
	for {
		conn, err := p.connect()
		if err == nil {
			backoff = backoffMin
			p.connected.Store(true)
			log.Info("connected to peer", "addr", p.addr)
			err = p.pump(conn)
			p.connected.Store(false)
			conn.Close()
			p.n.reportUnreachable(p.id)
			select {
			case <-p.n.stopc:
				return
			default:
			}
			log.Info("lost peer", "err", err)
		} else {
			log.Debug("cannot reach peer", "addr", p.addr, "err", err)
		}
		select {
		case <-time.After(backoff):
		case <-p.n.stopc:
			return
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// connect dials the peer and completes the handshake.
func (p *peer) connect() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(p.n.ctx, dialTimeout)
	defer cancel()
	conn, err := p.n.cfg.Dial(ctx, p.addr)
	if err != nil {
		return nil, err
	}
	c := p.n.cfg
	hello := redcon.AppendArray(nil, 5)
	hello = redcon.AppendBulkString(hello, "HELLO")
	hello = redcon.AppendBulkString(hello, c.ClusterID)
	hello = redcon.AppendBulkString(hello, fmt.Sprint(c.ID))
	hello = redcon.AppendBulkString(hello, c.Secret)
	hello = redcon.AppendBulkString(hello, c.ClientAddr)
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := conn.Write(hello); err != nil {
		conn.Close()
		return nil, err
	}
	line, err := bufio.NewReaderSize(conn, 512).ReadString('\n')
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if line != "+OK\r\n" {
		conn.Close()
		return nil, fmt.Errorf("refused by peer: %q", line)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

var errStop = errors.New("stopping")

// pump writes queued frames to conn until a write fails or the node stops.
func (p *peer) pump(conn net.Conn) error {
	// The peer never writes on this connection: a read returns only when it
	// is gone, and closing conn then makes the next write fail at once.
	go func() {
		io.Copy(io.Discard, conn)
		conn.Close()
	}()
	buf := make([]byte, 0, 64<<10)
	var snaps int
	for {
		select {
		case f := <-p.q:
			buf, snaps = appendFrame(buf[:0], f), 0
			snaps += isSnap(f)
		case <-p.n.stopc:
			return errStop
		}
	drain:
		for len(buf) < flushBytes {
			select {
			case f := <-p.q:
				buf = appendFrame(buf, f)
				snaps += isSnap(f)
			default:
				break drain
			}
		}
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := conn.Write(buf)
		for ; snaps > 0; snaps-- {
			status := raft.SnapshotFinish
			if err != nil {
				status = raft.SnapshotFailure
			}
			p.n.reportSnapshot(p.id, status)
		}
		if err != nil {
			return err
		}
		if cap(buf) > 4<<20 {
			buf = make([]byte, 0, 64<<10) // do not keep a snapshot's buffer
		}
	}
}

func isSnap(f frame) int {
	if f.msg != nil && f.msg.GetType() == raftpb.MsgSnap {
		return 1
	}
	return 0
}

// appendFrame appends f as a RESP array: RAFT <message> or FORWARD <command>.
func appendFrame(b []byte, f frame) []byte {
	b = redcon.AppendArray(b, 2)
	if f.fwd {
		b = redcon.AppendBulkString(b, "FORWARD")
		return redcon.AppendBulk(b, lock.AppendCommand(nil, &f.cmd))
	}
	b = redcon.AppendBulkString(b, "RAFT")
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(proto.Size(f.msg)), 10)
	b = append(b, '\r', '\n')
	b, err := proto.MarshalOptions{}.MarshalAppend(b, f.msg)
	if err != nil {
		panic(fmt.Sprintf("marshal raft message: %v", err)) // generated code cannot fail
	}
	return append(b, '\r', '\n')
}
