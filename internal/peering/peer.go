package peering

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
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

// frame is one message for a peer: a raft message, a forwarded command,
// or an ADMIN frame's payload.
type frame struct {
	msg   *raftpb.Message
	cmd   lock.Command
	fwd   bool
	admin []byte
}

// peer is this node's outbound link to one other member. Its goroutine dials
// (with backoff), says HELLO, then writes queued frames in batches, until
// the Transport closes or SetPeers removes the member (stop). Enqueue never
// blocks; a full queue drops the frame.
type peer struct {
	t      *Transport
	id     uint64
	addr   string
	q      chan frame
	ctx    context.Context // cancelled by the Transport's Close, and when run ends
	cancel context.CancelFunc
	drain  chan struct{} // closed by stop

	connected atomic.Bool
	dropped   atomic.Uint64
	sent      atomic.Uint64 // frames written to the connection
	queued    atomic.Int64  // bytes of the frames in q
}

func newPeer(t *Transport, id uint64, addr string) *peer {
	p := &peer{t: t, id: id, addr: addr, q: make(chan frame, t.cfg.QueueLen), drain: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(t.ctx)
	return p
}

func (p *peer) start() {
	p.t.links.Add(1)
	go p.run()
}

// stop ends the link once it has written what is queued (a removed member
// then hears the commit of its own removal), without waiting to connect.
// Its goroutine returns without reporting anything.
func (p *peer) stop() { close(p.drain) }

// peerQueueBytes bounds the bytes of the frames queued for one peer, beside
// the queue's count (Config.QueueLen): over a slow link raft re-sends a
// probe's append at every heartbeat, and without it a few thousand 1 MiB
// appends could queue.
const peerQueueBytes = 16 << 20

// size is about how many bytes f takes on the wire.
func (f *frame) size() int64 {
	if f.admin != nil {
		return int64(len(f.admin) + 16)
	}
	if f.msg == nil {
		return int64(len(f.cmd.Name) + len(f.cmd.Owner) + 40) // as in an entry
	}
	n := 64 + len(f.msg.GetSnapshot().GetData())
	for _, e := range f.msg.GetEntries() {
		n += len(e.GetData()) + 16
	}
	return int64(n)
}

// enqueue queues f and reports whether it was queued.
func (p *peer) enqueue(f frame) bool {
	size := f.size()
	if q := p.queued.Add(size); q > peerQueueBytes && q != size {
		p.queued.Add(-size)
		p.dropped.Add(1)
		return false
	}
	select {
	case p.q <- f:
		return true
	default:
		p.queued.Add(-size)
		p.dropped.Add(1)
		return false
	}
}

// take is the pump's side of enqueue: f left the queue.
func (p *peer) take(f frame) frame {
	p.queued.Add(-f.size())
	return f
}

func (p *peer) run() {
	defer p.t.links.Done()
	defer p.cancel()
	log := p.t.log.With("peer", p.id)
	backoff := backoffMin
	for {
		select {
		case <-p.drain:
			return
		default:
		}
		conn, after, err := p.connect()
		var lost *lostStateVerdict
		switch {
		case errors.As(err, &lost):
			// An authenticated peer says this node lost its state.
			p.t.h.LostState(lost)
			return
		case err != nil && !errors.Is(err, errRefused) && !isNetErr(err):
			log.Warn("cannot connect to peer", "addr", p.addr, "err", err)
		}
		if err == nil {
			backoff = backoffMin
			p.connected.Store(true)
			log.Info("connected to peer", "addr", p.addr)
			err = p.pump(conn, after)
			p.connected.Store(false)
			conn.Close()
			if errors.Is(err, errStop) {
				return // closed or removed: nothing to report
			}
			p.t.h.ReportUnreachable(p.id)
			log.Info("lost peer", "err", err)
		} else {
			log.Debug("cannot reach peer", "addr", p.addr, "err", err)
		}
		select {
		case <-time.After(backoff):
		case <-p.ctx.Done():
			return
		case <-p.drain:
			return
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// connect dials the peer and completes the handshake.
// It also returns the reader of what the peer writes after the handshake.
func (p *peer) connect() (net.Conn, *handshakeConn, error) {
	ctx, cancel := context.WithTimeout(p.ctx, dialTimeout)
	defer cancel()
	conn, err := p.t.cfg.Dial(ctx, p.addr)
	if err != nil {
		return nil, nil, err
	}
	if conn, err = p.t.dialTLS(conn, p.addr); err != nil {
		return nil, nil, err
	}
	claims, err := p.t.dialerHandshake(conn, p.id)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, claims.after, nil
}

var errStop = errors.New("stopping")

// pump writes queued frames to conn until a write fails or the Transport
// closes. after reads what the peer writes on conn after the handshake.
func (p *peer) pump(conn net.Conn, after *handshakeConn) error {
	// The peer writes nothing on this connection but its features
	// (features.go): a read returns only when it is gone, and closing conn
	// then makes the next write fail at once.
	var fb forwardBatch
	go func() {
		readFeatures(after, &fb.batches)
		io.Copy(io.Discard, conn)
		conn.Close()
	}()
	buf := make([]byte, 0, 64<<10)
	for {
		var snap *raftpb.Message
		select {
		case f := <-p.q:
			if f = p.take(f); isSnap(f) {
				snap = f.msg
			} else {
				buf = fb.add(buf[:0], f)
				if f.fwd {
					// Let the goroutines that are runnable now go first:
					// under load they are clients whose next commands
					// follow, and they join this one's frame and write.
					// Alone, the command goes at once.
					runtime.Gosched()
				}
			}
		case <-p.ctx.Done():
			return errStop
		case <-p.drain:
			return p.flushQueued(conn, buf[:0], &fb)
		}
	drain:
		for snap == nil && len(buf)+len(fb.payload) < flushBytes {
			select {
			case f := <-p.q:
				if f = p.take(f); isSnap(f) {
					snap = f.msg // written after what is buffered
					break drain
				}
				buf = fb.add(buf, f)
			default:
				break drain
			}
		}
		buf = fb.flush(buf)
		frames := fb.frames
		fb.frames = 0
		if len(buf) > 0 {
			conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := conn.Write(buf); err != nil {
				if snap != nil {
					p.t.h.ReportSnapshot(p.id, raft.SnapshotFailure)
				}
				return err
			}
			p.sent.Add(frames)
			buf = buf[:0]
		}
		if snap != nil {
			err := p.sendSnapshot(conn, snap)
			status := raft.SnapshotFinish
			if err != nil {
				status = raft.SnapshotFailure
			} else {
				p.sent.Add(1)
			}
			p.t.h.ReportSnapshot(p.id, status)
			if err != nil {
				return err
			}
		}
	}
}

// flushQueued writes the frames queued for a removed member, but
// snapshots, in one write, and returns errStop.
func (p *peer) flushQueued(conn net.Conn, buf []byte, fb *forwardBatch) error {
	for queued := true; queued; {
		select {
		case f := <-p.q:
			if f = p.take(f); !isSnap(f) {
				buf = fb.add(buf, f)
			}
		default:
			queued = false
		}
	}
	buf = fb.flush(buf)
	conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	conn.Write(buf)
	return errStop
}

func isSnap(f frame) bool {
	return f.msg != nil && f.msg.GetType() == raftpb.MsgSnap
}

// sendSnapshot streams a snapshot message: its header, its data in chunks,
// each write with its own deadline (so a slow link that makes progress is
// not cut off, and one that stalls is), then the data's CRC-32C. Nothing is
// copied but one chunk at a time.
func (p *peer) sendSnapshot(conn net.Conn, m *raftpb.Message) error {
	data := m.GetSnapshot().GetData()
	head := proto.Clone(m).(*raftpb.Message)
	head.Snapshot.Data = nil
	hb, err := proto.Marshal(head)
	if err != nil {
		return err
	}
	b := redcon.AppendArray(nil, 3)
	b = redcon.AppendBulkString(b, "SNAP")
	b = redcon.AppendBulk(b, hb)
	b = redcon.AppendBulkString(b, strconv.Itoa(len(data)))
	write := func(b []byte) error {
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := conn.Write(b)
		return err
	}
	if err := write(b); err != nil {
		return err
	}
	for off := 0; off < len(data); off += snapChunk {
		chunk := data[off:min(off+snapChunk, len(data))]
		b = redcon.AppendArray(b[:0], 2)
		b = redcon.AppendBulkString(b, "SNAPDATA")
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(chunk)), 10)
		b = append(b, '\r', '\n')
		if err := write(b); err != nil {
			return err
		}
		if err := write(chunk); err != nil {
			return err
		}
		if err := write([]byte("\r\n")); err != nil {
			return err
		}
	}
	b = redcon.AppendArray(b[:0], 2)
	b = redcon.AppendBulkString(b, "SNAPEND")
	b = redcon.AppendBulkString(b, strconv.FormatUint(uint64(crc32.Checksum(data, castagnoli)), 10))
	if err := write(b); err != nil {
		return err
	}
	p.t.log.Info("sent a snapshot", "peer", p.id, "index", m.GetSnapshot().GetMetadata().GetIndex(), "bytes", len(data))
	return nil
}

// isNetErr reports whether err is an ordinary network failure, not worth a
// warning each time a down peer is retried. A TLS alert from the peer (it
// refused this node's certificate) is not one.
func isNetErr(err error) bool {
	if isAlert(err) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// appendFrame appends f, which is not a forwarded command (forwardBatch
// writes those), as a RESP array: RAFT <message> or ADMIN <payload>.
func appendFrame(b []byte, f frame) []byte {
	b = redcon.AppendArray(b, 2)
	if f.admin != nil {
		b = redcon.AppendBulkString(b, "ADMIN")
		return redcon.AppendBulk(b, f.admin)
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
