package replication

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockd/lockd/internal/datadir"
	"github.com/lockd/lockd/internal/peering"
	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Node is one member of a lockd cluster: it keeps its lock.Table identical to
// every other member's through raft. Its goroutines each have a type: the
// loop (with its proposer), the appender, the applier and the script
// runner; the transport's are in internal/peering.
type Node struct {
	cfg   Config
	log   *slog.Logger
	table *lock.Table
	disk  *datadir.Dir
	mem   *raft.MemoryStorage // the log raft reads: the appender writes it
	tr    *peering.Transport

	pub     published // what the loop and the applier tell readers
	pending pending   // requests waiting for their results
	ids     idSource

	loop     *loop
	appender *appender
	applier  *applier
	scripts  *scriptRunner

	// members is the membership as of the entries handed out to be applied:
	// set by the loop (membership.go); the applier keeps its own for
	// snapshots. matches is each member's Match, published by the leader's
	// loop at each tick (nil elsewhere).
	members   atomic.Pointer[membership]
	matches   atomic.Pointer[map[uint64]uint64]
	confWaits confWaits

	addrMu      sync.Mutex
	clientAddrs map[uint64]string

	// heardAt holds, per peer, when a raft frame from it last arrived
	// (see heard); the map is replaced when the members change
	// (followMembers), the values are atomic.
	heardAt atomic.Pointer[map[uint64]*atomic.Int64]

	stopc    chan struct{}
	haltc    chan struct{} // closed when a storage error stops the node
	halt     sync.Once
	stopOnce sync.Once
	wg       sync.WaitGroup
	fatal    atomic.Pointer[error]
}

// Start opens (or creates) the node's data directory, recovers its state and
// starts it. The node runs until Close.
func Start(c Config) (*Node, error) {
	cfg := c.WithDefaults()
	autoInflight := c.MaxInflight == 0
	if len(cfg.Peers) == 0 {
		cfg.Peers = map[uint64]string{cfg.ID: ""}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d, rec, err := datadir.Open(cfg.DataDir, datadir.Options{
		ClusterID: cfg.ClusterID, NodeID: cfg.ID, NoSync: cfg.NoFsync,
		BeforeSync: cfg.beforeSync, Logger: cfg.Logger.With("node", cfg.ID), Observer: logObserverOf(cfg.Observer),
	})
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:         cfg,
		log:         cfg.Logger.With("node", cfg.ID),
		table:       newTable(cfg.Events != nil),
		disk:        d,
		mem:         raft.NewMemoryStorage(),
		clientAddrs: map[uint64]string{cfg.ID: cfg.ClientAddr},
		stopc:       make(chan struct{}),
		haltc:       make(chan struct{}),
	}
	n.pub.init(time.Now())
	n.pending.init()
	n.ids = idSource{node: cfg.ID, reserve: d.ReserveIDs}
	n.loop = &loop{
		n: n, pub: &n.pub,
		stepc:    make(chan *raftpb.Message, 1024),
		local:    newMailbox[*raftpb.Message](0),
		props:    newMailbox[lock.Command](maxHeld),
		reads:    readIndexes{q: newMailbox[chan uint64](0), rounds: map[uint64]*readRound{}},
		reportc:  make(chan report, 256),
		appliedc: make(chan struct{}, 1),
		confc:    make(chan confRequest, 16),
	}
	n.loop.prop.init()
	n.loop.maxInflight, n.loop.autoInflight = cfg.MaxInflight, autoInflight
	n.appender = &appender{n: n, disk: d, mem: n.mem, keep: cfg.SnapshotEntries / 2, q: newMailbox[appendWork](0)}
	n.applier = &applier{n: n, table: n.table, disk: d, mem: n.mem, every: cfg.SnapshotEntries,
		q: newMailbox[applyWork](0), snapDone: make(chan struct{}, 1)}
	rc := &raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   n.mem,
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  8 << 20,
		MaxUncommittedEntriesSize: 64 << 20,
		MaxInflightMsgs:           256,
		MaxInflightBytes:          8 << 20,
		CheckQuorum:               true,
		AsyncStorageWrites:        true,
		PreVote:                   true,
		DisableProposalForwarding: true,
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{n.log},
	}
	if !rec.Empty() {
		if err := n.recover(rec); err != nil {
			d.Close()
			return nil, err
		}
		rc.Applied = n.applier.snapIndex
	}
	if err := n.checkRecoveredCluster(rec); err != nil {
		d.Close()
		return nil, err
	}
	if cfg.ForceNewCluster {
		err := checkForceNew(rec)
		if err == nil {
			err = n.forceNewCluster()
		}
		if err != nil {
			d.Close()
			return nil, err
		}
	}
	if n.loop.rn, err = raft.NewRawNode(rc); err != nil {
		d.Close()
		return nil, err
	}
	if rec.Empty() && !cfg.Join {
		peers := make([]raft.Peer, 0, len(cfg.Peers))
		for _, id := range slices.Sorted(maps.Keys(cfg.Peers)) {
			peers = append(peers, raft.Peer{ID: id, Context: appendConfContext(nil, 0, cfg.Peers[id])})
		}
		if err := n.loop.rn.Bootstrap(peers); err != nil {
			d.Close()
			return nil, err
		}
	}
	n.applier.applied = n.applier.snapIndex
	n.pub.applied.Store(n.applier.snapIndex)
	if n.members.Load() == nil {
		n.members.Store(&membership{cs: &raftpb.ConfState{}})
	}
	n.applier.members = n.members.Load()
	// Until the log or a snapshot says who the members are, the peers
	// are Config.Peers: a new cluster's, or those a joining node reaches.
	peers := cfg.Peers
	if m := n.members.Load(); m.index > 0 {
		peers = m.addrs
		if n.loop.wasMember = m.role(cfg.ID) != ""; !n.loop.wasMember {
			peers = nil // removed before this start: it talks to nobody
		}
	}
	heard := make(map[uint64]*atomic.Int64)
	for id := range peers {
		if id != cfg.ID {
			heard[id] = new(atomic.Int64)
		}
	}
	n.heardAt.Store(&heard)
	n.tr = peering.New(peering.Config{
		ID: cfg.ID, Peers: peers, ClusterID: cfg.ClusterID, Secret: cfg.Secret, ClientAddr: cfg.ClientAddr,
		Incarnation: d.Identity().Incarnation, Listener: cfg.Listener, Dial: cfg.Dial, TLS: cfg.ClusterTLS,
		QueueLen: cfg.PeerQueue, MaxSnapshotBytes: cfg.MaxSnapshotBytes, Logger: n.log,
	}, handler{n})
	n.loop.lastIndex, _ = n.mem.LastIndex()
	applied := n.applier.snapIndex // read before the applier runs
	n.scripts = newScriptRunner(n)
	n.wg.Add(4)
	go n.loop.run()
	go n.appender.run()
	go n.applier.run()
	go n.scripts.run()
	n.tr.Start()
	n.log.Info("node started", "peers", len(peers), "join", cfg.Join, "applied", applied, "entries", len(rec.Entries),
		"incarnation", d.Identity().Incarnation)
	return n, nil
}

// recover loads the snapshot and log found on disk into memory.
func (n *Node) recover(l *datadir.Recovered) error {
	if l.Snapshot != nil {
		if err := n.mem.ApplySnapshot(l.Snapshot); err != nil {
			return err
		}
		addrs, table, err := splitSnapshotData(l.Snapshot.GetData())
		if err != nil {
			return err
		}
		if err := n.table.Restore(table); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		n.applier.snapIndex = l.Snapshot.GetMetadata().GetIndex()
		cs := proto.Clone(l.Snapshot.GetMetadata().GetConfState()).(*raftpb.ConfState)
		n.members.Store(&membership{index: n.applier.snapIndex, cs: cs, addrs: n.knownAddrs(cs, addrs)})
	}
	if err := n.mem.Append(l.Entries); err != nil {
		return err
	}
	if l.HardState != nil {
		hs := proto.Clone(l.HardState).(*raftpb.HardState)
		last, _ := n.mem.LastIndex()
		// The commit index is written without its own sync; it may lag the
		// snapshot or, never in practice, run past the log.
		c := max(hs.GetCommit(), n.applier.snapIndex)
		c = min(c, last)
		hs.Commit = &c
		if err := n.mem.SetHardState(hs); err != nil {
			return err
		}
		n.pub.term.Store(hs.GetTerm())
		n.pub.commit.Store(c)
	}
	return nil
}

// Table returns the node's replica of the lock table, for reads.
func (n *Node) Table() *lock.Table { return n.table }

// Close stops the node: waiters get ErrClosed, peers are disconnected, the
// data directory is closed. It is safe to call more than once.
func (n *Node) Close() error {
	n.stopOnce.Do(func() {
		close(n.stopc)
		n.tr.Close()
		n.wg.Wait()
		n.disk.Close()
		n.log.Info("node stopped")
	})
	return nil
}

// ErrFailed is wrapped by the error of a node that stopped itself: its
// storage failed, or it found that it lost state it had promised.
var ErrFailed = errors.New("node stopped")

// Failed is closed when the node stopped itself; Err then says why. The node
// answers nothing but errors from then on: its process should exit.
func (n *Node) Failed() <-chan struct{} { return n.haltc }

// Err returns the error that stopped the node, or nil.
func (n *Node) Err() error { return n.failed() }

// failed returns the error that stopped the node, if any.
func (n *Node) failed() error {
	if p := n.fatal.Load(); p != nil {
		return fmt.Errorf("%w: %v", ErrFailed, *p)
	}
	return nil
}

// fail stops the node for good: the loop, the appender and the applier end, and
// Execute fails from then on. Any goroutine may call it.
func (n *Node) fail(err error) {
	n.log.Error("node stopped", "err", err)
	n.fatal.CompareAndSwap(nil, &err)
	n.halt.Do(func() { close(n.haltc) })
}

// stopOnError stops the node after a storage error.
func (n *Node) stopOnError(err error) { n.fail(fmt.Errorf("cannot persist: %w", err)) }
