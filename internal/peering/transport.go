package peering

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"

	"github.com/lockd/lockd/internal/tlsfiles"
	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Config is what a Transport needs to know of its node.
type Config struct {
	// ID is this node's id; Peers maps every member's id, this node's
	// included, to its cluster address. A dialer whose id is not a member
	// with an address is refused.
	ID    uint64
	Peers map[uint64]string
	// ClusterID and Secret must match on every member (see the package
	// doc); the secret never crosses the wire.
	ClusterID string
	Secret    string
	// ClientAddr is this node's client address, told to peers.
	ClientAddr string
	// Incarnation is this node's data directory incarnation
	// (datadir.Identity), presented to peers in the handshake.
	Incarnation string
	// Listener accepts peers on the cluster port; nil for none. The
	// Transport closes it on Close.
	Listener net.Listener
	// Dial opens a connection to a peer's cluster address.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// TLS, when set, wraps every connection, accepted and dialed, in
	// mutual TLS made of its files (tls.go; load them with ClusterTLS);
	// nil for plain TCP.
	TLS *tlsfiles.Files
	// QueueLen is the number of frames queued per peer before Send and
	// Forward drop them.
	QueueLen int
	// MaxSnapshotBytes bounds a snapshot received from a peer.
	MaxSnapshotBytes int
	// Logger receives the transport's log.
	Logger *slog.Logger
}

// Handler is what a Transport hands its node. Its methods are called from
// the transport's goroutines, any number at once: one writer per peer, and
// one reader per inbound connection.
type Handler interface {
	// Step takes a raft message from an authenticated peer: a RAFT frame's,
	// or a snapshot once all its data arrived. It may block until the node
	// takes it. An error drops the connection; it is logged unless it is
	// ErrStopped.
	Step(m *raftpb.Message) error
	// Forward takes a command a peer forwarded, decoded from a well-formed
	// FORWARD frame; whether the command is acceptable is the handler's to
	// check.
	Forward(from uint64, c lock.Command)
	// Heard says that a raft frame (RAFT, SNAP or SNAPDATA) from peer from
	// arrived now.
	Heard(from uint64)
	// PeerClientAddr tells an authenticated peer's client address.
	PeerClientAddr(id uint64, addr string)
	// CheckPeer vets an authenticated peer's incarnation, as
	// datadir.Dir.CheckPeer does: an error refuses the peer, and a
	// *datadir.LostStateError refuses it as a node that lost its state (it
	// hears so in its verdict, and stops).
	CheckPeer(id uint64, incarnation string) error
	// ReportUnreachable says that the link to peer id went down. It must
	// not block.
	ReportUnreachable(id uint64)
	// ReportSnapshot says whether a snapshot message sent to peer id was
	// written out. It may block until the node takes the report.
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
	// LostState says that an authenticated peer refused this node because
	// it lost its state: the node must stop. The link to that peer ends.
	LostState(err error)
}

// ErrStopped is what a Handler's Step returns when its node stops: the
// connection ends without a warning.
var ErrStopped = errors.New("stopped")

// Transport is a node's links to its peers: an outbound link per peer that
// sends frames (peer.go) and the cluster port that receives them
// (inbound.go), both opened with the handshake (handshake.go).
//
// Concurrency: Send, Forward and Peers may be called from any goroutine,
// before Start and after Close too (frames then stay queued and are
// dropped with the Transport). Start and then Close are called once each;
// Close stops every goroutine the Transport started.
type Transport struct {
	cfg   Config
	h     Handler
	log   *slog.Logger
	peers map[uint64]*peer
	in    *inbound // nil without a Listener

	serverTLS *tls.Config // the accepting side's, nil without Config.TLS

	stopc     chan struct{}
	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// New makes the links to every member of cfg.Peers but cfg.ID; Start
// starts them.
func New(cfg Config, h Handler) *Transport {
	t := &Transport{cfg: cfg, h: h, log: cfg.Logger, peers: make(map[uint64]*peer), stopc: make(chan struct{})}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	for id, addr := range cfg.Peers {
		if id != cfg.ID {
			t.peers[id] = newPeer(t, id, addr)
		}
	}
	if cfg.Listener != nil {
		t.in = newInbound(t, cfg.Listener)
	}
	if cfg.TLS != nil {
		t.serverTLS = cfg.TLS.ServerConfig()
	}
	return t
}

// Start starts a goroutine per peer link and the accept loop; Close stops
// them.
func (t *Transport) Start() {
	for _, p := range t.peers {
		p.start()
	}
	if t.in != nil {
		t.in.start()
	}
}

// Close disconnects every peer, closes the listener and waits for the
// Transport's goroutines to end. A Handler's Step or ReportSnapshot blocked
// in its node must return for it to finish.
func (t *Transport) Close() {
	t.closeOnce.Do(func() {
		close(t.stopc)
		t.cancel()
		if t.in != nil {
			t.in.close()
		}
		for _, p := range t.peers {
			p.wait()
		}
		if t.in != nil {
			t.in.wait()
		}
	})
}

// Send queues a raft message for its peer m.To and reports whether it was
// dropped because that peer's queue is full. It never blocks. A message for
// a node that is not a peer is ignored.
func (t *Transport) Send(m *raftpb.Message) (dropped bool) {
	p := t.peers[m.GetTo()]
	return p != nil && !p.enqueue(frame{msg: m})
}

// Forward queues a client command for peer to (the leader); it never
// blocks, and a full queue drops it (its sender's request times out).
func (t *Transport) Forward(to uint64, c lock.Command) {
	if p := t.peers[to]; p != nil {
		p.enqueue(frame{cmd: c, fwd: true})
	}
}

// PeerStatus is the state of the link to one peer.
type PeerStatus struct {
	ID        uint64
	Addr      string
	Connected bool
	Dropped   uint64 // frames dropped because the queue was full
	Sent      uint64 // frames written to the peer's connection
}

// Peers returns the state of every peer link.
func (t *Transport) Peers() []PeerStatus {
	s := make([]PeerStatus, 0, len(t.peers))
	for id, p := range t.peers {
		s = append(s, PeerStatus{ID: id, Addr: p.addr, Connected: p.connected.Load(), Dropped: p.dropped.Load(), Sent: p.sent.Load()})
	}
	return s
}
