package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/lockd/lockd/internal/tlsfiles"
	"github.com/lockd/lockd/lock"
)

// Defaults for zero Config fields; cmd/lockd's flags default to them too.
const (
	// DefaultRequestTimeout is below go-redis's 3s read timeout, so that
	// clients hear -TRYAGAIN rather than time out.
	DefaultRequestTimeout   = 2 * time.Second
	DefaultTickInterval     = 100 * time.Millisecond
	DefaultElectionTicks    = 10
	DefaultHeartbeatTicks   = 1
	DefaultSnapshotEntries  = 10000
	DefaultLeaseTick        = 500 * time.Millisecond
	DefaultPeerQueue        = 4096
	DefaultMaxSnapshotBytes = 1 << 30 // 1M locks take about 54 MB
	// DefaultDialTimeout bounds a connection attempt of the default Dial.
	DefaultDialTimeout = time.Second
)

// Config describes one node of a cluster. Zero fields take the defaults
// documented on them.
type Config struct {
	// ID is this node's id, 1..65535, unique in the cluster.
	ID uint64
	// Peers maps every member's id, this node's included, to its cluster
	// address. It makes the members of a new cluster, at the node's first
	// start; from then on the members are read from the log and snapshots
	// (membership.go), and Peers only says how to reach nodes until they
	// do (and the addresses of members that a snapshot of an older lockd
	// lacks).
	Peers map[uint64]string
	// Join starts a node with an empty data directory without making a
	// cluster: it waits for a leader, to which it was added with
	// AddMember, to send it a snapshot and the log. Peers must name the
	// members it can reach. Ignored once the data directory holds state.
	Join bool
	// ForceNewCluster restarts a node as the only member of its cluster,
	// with its state (etcd's --force-new-cluster): for when a majority is
	// gone for good. Every other member is removed through conf change
	// entries written at start (forcenew.go), and its whole log is
	// committed. Grow it again with AddMember. The old members must not
	// come back under their ids; leave it off the next restarts (it would
	// remove members added since).
	ForceNewCluster bool
	// PromoteLag is how close to the leader's last index a learner's
	// Match must be for the leader to promote it to voter (default
	// DefaultPromoteLag entries). ManualPromote turns automatic promotion
	// off: PromoteMember does it.
	PromoteLag    uint64
	ManualPromote bool
	// ClientAddr is this node's client address, told to peers so that
	// INFO can name the leader's.
	ClientAddr string
	// DataDir holds the raft log and snapshots.
	DataDir string
	// ClusterID and Secret must match on every member; a peer that presents
	// others is refused (see internal/peering; the secret never crosses the
	// wire). A cluster of more than one node needs a Secret of at least
	// MinSecretLen bytes: no default leaves the cluster port open.
	ClusterID string
	Secret    string

	// Listener accepts peers on the cluster port. Required when there are
	// other members. The node closes it on Close.
	Listener net.Listener
	// Dial opens a connection to a peer's cluster address. Default: a
	// net.Dialer with DefaultDialTimeout. Tests pass a fault-injecting
	// dialer.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// ClusterTLS, when set, runs every peer connection over mutual TLS
	// made of its files (internal/peering's tls.go; load them with
	// peering.ClusterTLS); nil for plain TCP.
	ClusterTLS *tlsfiles.Files

	// Fsync syncs the log to disk before acknowledging (default true).
	// NoFsync turns it off; acknowledged writes may then be lost in a
	// machine crash.
	NoFsync bool
	// RequestTimeout bounds Execute (default DefaultRequestTimeout; at most
	// 20s, well inside lock.DedupWindow). It is checked at each raft tick,
	// so a request may end up to one TickInterval after it.
	RequestTimeout time.Duration
	// TickInterval is the raft tick (default DefaultTickInterval). A
	// follower starts an election after ElectionTicks to 2*ElectionTicks-1
	// ticks (raft randomizes it) without hearing from a leader.
	TickInterval time.Duration
	// ElectionTicks and HeartbeatTicks default to DefaultElectionTicks and
	// DefaultHeartbeatTicks.
	ElectionTicks  int
	HeartbeatTicks int
	// SnapshotEntries is the number of applied entries between snapshots
	// (default DefaultSnapshotEntries); the log keeps SnapshotEntries/2 entries behind the
	// snapshot for slow followers.
	SnapshotEntries uint64
	// LeaseTick is how often a leader with leases stamps the log even when
	// idle (default DefaultLeaseTick): after a failover a lease keeps at most this much
	// more time than it had.
	LeaseTick time.Duration
	// MaxInflight is how many entries a leader lets await commit before it
	// holds new commands for the next entry (see proposer). Default: 1 in
	// a cluster (measured best on 3 nodes, 50 clients: 11.0k acquires/s
	// against 10.3k with 2 and 9.4k unbounded, as every entry costs raft
	// messages and work on every node); unbounded for a node alone, whose
	// disk writes group Readys by themselves (8 clients: 99-112 µs per
	// LOCK+UNLOCK unbounded, 120-131 µs with 1). The default follows the
	// members: it changes when a node alone gains a voter, or loses its
	// last other one.
	MaxInflight int
	// PeerQueue is the number of frames queued per peer before sending
	// drops them (default DefaultPeerQueue).
	PeerQueue int
	// MaxSnapshotBytes bounds a snapshot received from the leader (default
	// DefaultMaxSnapshotBytes, 1 GiB).
	MaxSnapshotBytes int
	// Validate, when set, checks a command forwarded by a peer as this
	// node would check its own clients' commands (name, owner and lease
	// limits); a command it refuses is dropped.
	Validate func(*lock.Command) error
	// RunScript runs the script a lock.OpScript request asks for against
	// table (this node's, when it leads) and returns its effects: an
	// lock.OpEffects command (its ID is set by the caller). It is called
	// on one goroutine, one request at a time. Without it, scripts answer
	// an error. req.Owner names the ACL user the script runs as.
	RunScript func(table *lock.Table, req lock.Command) lock.Command
	// Events, when set, receives what each applied entry did (lock.Event:
	// PUBLISH's messages, and keys set, deleted, expired, granted), in log
	// order, right after the entry is applied and before its waiters are
	// answered. It is called on the applier's goroutine and must not block.
	// A node that installs a snapshot instead of applying entries delivers
	// no events for them: it calls EventsLost instead, on the same
	// goroutine.
	Events     func([]lock.Event)
	EventsLost func()
	// Observer, when set, hears of log writes, syncs, snapshots and
	// failed proposals (metrics).
	Observer Observer

	Logger *slog.Logger

	// beforeSync is datadir.Options.BeforeSync, for this package's tests.
	beforeSync func() error
}

// WithDefaults returns c with its zero fields set to the defaults documented
// on them. Start calls it.
func (c Config) WithDefaults() Config {
	d := c
	if d.RequestTimeout == 0 {
		d.RequestTimeout = DefaultRequestTimeout
	}
	if d.TickInterval == 0 {
		d.TickInterval = DefaultTickInterval
	}
	if d.ElectionTicks == 0 {
		d.ElectionTicks = DefaultElectionTicks
	}
	if d.HeartbeatTicks == 0 {
		d.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if d.SnapshotEntries == 0 {
		d.SnapshotEntries = DefaultSnapshotEntries
	}
	if d.LeaseTick == 0 {
		d.LeaseTick = DefaultLeaseTick
	}
	if d.MaxInflight == 0 {
		d.MaxInflight = 1
		if len(d.Peers) <= 1 {
			d.MaxInflight = maxHeld
		}
	}
	if d.PromoteLag == 0 {
		d.PromoteLag = DefaultPromoteLag
	}
	if d.PeerQueue == 0 {
		d.PeerQueue = DefaultPeerQueue
	}
	if d.Dial == nil {
		dialer := &net.Dialer{Timeout: DefaultDialTimeout}
		d.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		}
	}
	if d.MaxSnapshotBytes == 0 {
		d.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}

func (c *Config) validate() error {
	switch {
	case c.ID == 0 || c.ID > 0xffff:
		return fmt.Errorf("node id %d: must be 1..65535", c.ID)
	case !hasPeer(c.Peers, c.ID):
		return fmt.Errorf("node id %d is not among the peers", c.ID)
	case c.DataDir == "":
		return errors.New("no data directory")
	case c.RequestTimeout < 10*time.Millisecond || c.RequestTimeout > 20*time.Second:
		return fmt.Errorf("request timeout %v: must be 10ms..20s", c.RequestTimeout)
	case c.TickInterval < time.Millisecond:
		return fmt.Errorf("tick interval %v: too small", c.TickInterval)
	case c.HeartbeatTicks >= c.ElectionTicks:
		return errors.New("heartbeat ticks must be fewer than election ticks")
	case len(c.Peers) > 1 && c.Listener == nil:
		return errors.New("a cluster of several nodes needs a cluster listener")
	case len(c.Peers) > 1 && len(c.Secret) < MinSecretLen:
		return fmt.Errorf("a cluster of %d nodes needs a cluster secret of at least %d characters, "+
			"the same on every node (--cluster-secret-file or --cluster-secret; make one with: openssl rand -hex 32): "+
			"without it anyone who reaches the cluster port could act as a member", len(c.Peers), MinSecretLen)
	case c.MaxSnapshotBytes < 1<<20:
		return fmt.Errorf("max snapshot bytes %d: at least 1 MiB", c.MaxSnapshotBytes)
	}
	for id := range c.Peers {
		if id == 0 || id > 0xffff {
			return fmt.Errorf("peer id %d: must be 1..65535", id)
		}
	}
	return nil
}

// MinSecretLen is the shortest cluster secret accepted.
const MinSecretLen = 16

func hasPeer(peers map[uint64]string, id uint64) bool {
	_, ok := peers[id]
	return ok
}
