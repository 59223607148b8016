package peering

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/lockd/lockd/internal/tlsfiles"
	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Config is what a Transport needs to know of its node.
type Config struct {
	// ID is this node's id; Peers maps every member's id, this node's
	// included, to its cluster address: the members at start, which
	// SetPeers changes. A dialer whose id is not a member is refused.
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
	// Forward takes the commands a peer forwarded, in the order it sent
	// them, decoded from a well-formed FORWARD frame (one command) or
	// FORWARDS frame (up to maxForwardBatch); whether each is acceptable is
	// the handler's to check. cmds is the handler's, to read or overwrite,
	// only until it returns.
	Forward(from uint64, cmds []lock.Command)
	// Admin takes the payload of an ADMIN frame (a membership change
	// request or its answer; the node encodes them). It must not block.
	Admin(from uint64, data []byte)
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
// Concurrency: Send, Forward, Admin, Peers and SetPeers may be called from
// any goroutine, before Start and after Close too (frames then stay queued
// and are dropped with the Transport). Start and then Close are called once
// each; Close stops every goroutine the Transport started, those of removed
// peers included.
type Transport struct {
	cfg Config
	h   Handler
	log *slog.Logger
	in  *inbound // nil without a Listener

	// peers holds the link of every member but this node; it is replaced,
	// never changed, so that Send reads it without a lock. mu serializes
	// its writers (SetPeers, Start).
	peers   atomic.Pointer[map[uint64]*peer]
	mu      sync.Mutex
	started bool           // under mu: links start as they are added
	closed  bool           // under mu: no link starts any more
	links   sync.WaitGroup // the peer links' goroutines

	serverTLS *tls.Config // the accepting side's, nil without Config.TLS

	// noFeatures makes the listener announce no features (features.go),
	// as one of an older version: for tests.
	noFeatures bool

	stopc     chan struct{}
	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// New makes the links to every member of cfg.Peers but cfg.ID; Start
// starts them.
func New(cfg Config, h Handler) *Transport {
	t := &Transport{cfg: cfg, h: h, log: cfg.Logger, stopc: make(chan struct{})}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	peers := make(map[uint64]*peer)
	for id, addr := range cfg.Peers {
		if id != cfg.ID {
			peers[id] = newPeer(t, id, addr)
		}
	}
	t.peers.Store(&peers)
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
	t.mu.Lock()
	t.started = true
	for _, p := range *t.peers.Load() {
		p.start()
	}
	t.mu.Unlock()
	if t.in != nil {
		t.in.start()
	}
}

// Close disconnects every peer, closes the listener and waits for the
// Transport's goroutines to end. A Handler's Step or ReportSnapshot blocked
// in its node must return for it to finish.
func (t *Transport) Close() {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true // SetPeers starts no link that Wait would miss
		t.mu.Unlock()
		close(t.stopc)
		t.cancel()
		if t.in != nil {
			t.in.close()
		}
		t.links.Wait()
		if t.in != nil {
			t.in.wait()
		}
	})
}

// Send queues a raft message for its peer m.To and reports whether it was
// dropped because that peer's queue is full. It never blocks. A message for
// a node that is not a peer is ignored.
func (t *Transport) Send(m *raftpb.Message) (dropped bool) {
	p := (*t.peers.Load())[m.GetTo()]
	return p != nil && !p.enqueue(frame{msg: m})
}

// Forward queues a client command for peer to (the leader); it never
// blocks, and a full queue drops it (its sender's request times out).
func (t *Transport) Forward(to uint64, c lock.Command) {
	if p := (*t.peers.Load())[to]; p != nil {
		p.enqueue(frame{cmd: c, fwd: true})
	}
}

// Admin queues an ADMIN frame for peer to; it never blocks, and a full
// queue drops it (its sender's request times out). data is at most
// maxAdminFrame bytes.
func (t *Transport) Admin(to uint64, data []byte) {
	if p := (*t.peers.Load())[to]; p != nil && len(data) <= maxAdminFrame {
		p.enqueue(frame{admin: data})
	}
}

// isPeer reports whether id is a member other than this node.
func (t *Transport) isPeer(id uint64) bool {
	_, ok := (*t.peers.Load())[id]
	return ok
}

// peerAddr is member id's cluster address as the Transport knows it now
// ("" for no member): members added since New are known only here.
func (t *Transport) peerAddr(id uint64) string {
	if p, ok := (*t.peers.Load())[id]; ok {
		return p.addr
	}
	return ""
}

// SetPeers makes addrs (id to cluster address; this node's own entry is
// ignored) the members this Transport talks to: a new member gets a link
// (started if the Transport is), a member whose address changed a new
// one, and a member no longer listed loses its link and its inbound
// connections, and is refused from then on. It never waits for a link's
// goroutine to end (Close does).
func (t *Transport) SetPeers(addrs map[uint64]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.peers.Load()
	next := make(map[uint64]*peer, len(addrs))
	var gone []uint64
	for id, p := range old {
		if a, ok := addrs[id]; ok && a == p.addr {
			next[id] = p
		} else {
			p.stop()
			gone = append(gone, id)
		}
	}
	var added []*peer
	for id, addr := range addrs {
		if _, ok := next[id]; !ok && id != t.cfg.ID {
			next[id] = newPeer(t, id, addr)
			added = append(added, next[id])
		}
	}
	t.peers.Store(&next)
	if t.in != nil {
		for _, id := range gone {
			if _, back := next[id]; !back {
				t.in.dropPeer(id)
			}
		}
	}
	for _, p := range added {
		t.log.Info("peer added", "peer", p.id, "addr", p.addr)
		if t.started && !t.closed {
			p.start()
		}
	}
	for _, id := range gone {
		t.log.Info("peer removed", "peer", id)
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
	peers := *t.peers.Load()
	s := make([]PeerStatus, 0, len(peers))
	for id, p := range peers {
		s = append(s, PeerStatus{ID: id, Addr: p.addr, Connected: p.connected.Load(), Dropped: p.dropped.Load(), Sent: p.sent.Load()})
	}
	return s
}
