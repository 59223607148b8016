package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Node is one member of a lockd cluster: it keeps its lock.Table identical to
// every other member's through raft.
type Node struct {
	cfg   Config
	log   *slog.Logger
	table *lock.Table
	disk  *disk
	mem   *raft.MemoryStorage
	rn    *raft.RawNode // owned by the run goroutine
	start time.Time     // origin of this node's leader stamps

	// Inputs of the run goroutine.
	stepc   chan *raftpb.Message // from peers
	propc   chan lock.Command    // from Execute and FORWARD frames
	reportc chan report          // from peer writers

	pending pending
	peers   map[uint64]*peer
	inbound *inbound

	// Published by the raft goroutine, read by anyone.
	leader   atomic.Uint64
	role     atomic.Value // raft.StateType
	term     atomic.Uint64
	commit   atomic.Uint64
	applied  atomic.Uint64
	appliedT atomic.Int64 // UnixNano of the last apply
	changed  atomic.Pointer[chan struct{}]

	addrMu      sync.Mutex
	clientAddrs map[uint64]string

	// Owned by the run goroutine.
	prop      proposer
	confState *raftpb.ConfState
	snapIndex uint64
	stable    uint64 // last log index known to be on disk
	results   []lock.Result

	nextID atomic.Uint64

	stopc    chan struct{}
	ctx      context.Context // cancelled by Close
	cancel   context.CancelFunc
	stopOnce sync.Once
	wg       sync.WaitGroup
	fatal    atomic.Pointer[error]
}

// Start opens (or creates) the node's data directory, recovers its state and
// starts it. The node runs until Close.
func Start(c Config) (*Node, error) {
	cfg := c.withDefaults()
	if len(cfg.Peers) == 0 {
		cfg.Peers = map[uint64]string{cfg.ID: ""}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d, err := openDisk(cfg.DataDir, !cfg.NoFsync)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:         cfg,
		log:         cfg.Logger.With("node", cfg.ID),
		table:       lock.NewTable(),
		disk:        d,
		mem:         raft.NewMemoryStorage(),
		start:       time.Now(),
		clientAddrs: map[uint64]string{cfg.ID: cfg.ClientAddr},
		stopc:       make(chan struct{}),
		confState:   &raftpb.ConfState{},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.pending.init()
	n.role.Store(raft.StateFollower)
	ch := make(chan struct{})
	n.changed.Store(&ch)
	n.nextID.Store(uint64(time.Now().UnixMicro()))

	l, err := d.load()
	if err != nil {
		n.cancel()
		d.close()
		return nil, fmt.Errorf("recover %s: %w", cfg.DataDir, err)
	}
	rc := &raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   n.mem,
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  8 << 20,
		MaxUncommittedEntriesSize: 64 << 20,
		MaxInflightMsgs:           256,
		CheckQuorum:               true,
		PreVote:                   true,
		DisableProposalForwarding: true,
		Logger:                    raftLogger{n.log},
	}
	if !l.empty() {
		if err := n.recover(l); err != nil {
			n.cancel()
			d.close()
			return nil, err
		}
		rc.Applied = n.snapIndex
	}
	if n.rn, err = raft.NewRawNode(rc); err != nil {
		n.cancel()
		d.close()
		return nil, err
	}
	if l.empty() {
		peers := make([]raft.Peer, 0, len(cfg.Peers))
		for _, id := range slices.Sorted(maps.Keys(cfg.Peers)) {
			peers = append(peers, raft.Peer{ID: id})
		}
		if err := n.rn.Bootstrap(peers); err != nil {
			n.cancel()
			d.close()
			return nil, err
		}
	}
	n.applied.Store(n.snapIndex)
	n.stable, _ = n.mem.LastIndex()

	n.stepc = make(chan *raftpb.Message, 1024)
	n.propc = make(chan lock.Command, 4*maxBatch)
	n.reportc = make(chan report, 256)
	n.prop.init()
	n.peers = make(map[uint64]*peer)
	for id, addr := range cfg.Peers {
		if id != cfg.ID {
			n.peers[id] = newPeer(n, id, addr)
		}
	}
	if cfg.Listener != nil {
		n.inbound = newInbound(n, cfg.Listener)
	}
	if len(cfg.Peers) == 1 {
		// Alone, the node need not wait out an election timeout.
		if err := n.rn.Campaign(); err != nil {
			n.log.Warn("campaign", "err", err)
		}
	}
	n.wg.Add(1)
	go n.run()
	for _, p := range n.peers {
		p.start()
	}
	if n.inbound != nil {
		n.inbound.start()
	}
	n.log.Info("node started", "peers", len(cfg.Peers), "applied", n.snapIndex, "entries", len(l.entries))
	return n, nil
}

// recover loads the snapshot and log found on disk into memory.
func (n *Node) recover(l *loaded) error {
	if l.snap != nil {
		if err := n.mem.ApplySnapshot(l.snap); err != nil {
			return err
		}
		if err := n.table.Restore(l.snap.GetData()); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		n.snapIndex = l.snap.GetMetadata().GetIndex()
		n.confState = proto.Clone(l.snap.GetMetadata().GetConfState()).(*raftpb.ConfState)
	}
	if err := n.mem.Append(l.entries); err != nil {
		return err
	}
	if l.hard != nil {
		hs := proto.Clone(l.hard).(*raftpb.HardState)
		last, _ := n.mem.LastIndex()
		// The commit index is written without its own sync; it may lag the
		// snapshot or, never in practice, run past the log.
		c := max(hs.GetCommit(), n.snapIndex)
		c = min(c, last)
		hs.Commit = &c
		if err := n.mem.SetHardState(hs); err != nil {
			return err
		}
		n.term.Store(hs.GetTerm())
		n.commit.Store(c)
	}
	return nil
}

// run is the goroutine that owns the raft node: it alone ticks it, steps
// messages into it, proposes, writes the log, applies entries and sends.
// Commands that arrive while it writes wait in propc and go out together as
// the next entry: group commit.
func (n *Node) run() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.TickInterval)
	defer t.Stop()
	defer n.prop.timer.Stop()
	batch := make([]lock.Command, 0, maxBatch)
	for {
		select {
		case <-t.C:
			n.rn.Tick()
		case m := <-n.stepc:
			n.rn.Step(m)
			for i := 0; i < 256; i++ {
				select {
				case m := <-n.stepc:
					n.rn.Step(m)
					continue
				default:
				}
				break
			}
		case c := <-n.propc:
			batch = append(batch[:0], c)
		drain:
			for len(batch) < maxBatch {
				select {
				case c := <-n.propc:
					batch = append(batch, c)
				default:
					break drain
				}
			}
			n.propose(batch)
		case r := <-n.reportc:
			if r.snapshot {
				n.rn.ReportSnapshot(r.peer, r.status)
			} else {
				n.rn.ReportUnreachable(r.peer)
			}
		case <-n.prop.timer.C:
			n.propose(nil)
		case <-n.stopc:
			return
		}
		for n.rn.HasReady() {
			if err := n.handleReady(n.rn.Ready()); err != nil {
				n.log.Error("raft loop stopped: cannot persist", "err", err)
				n.fatal.Store(&err)
				return
			}
		}
	}
}

// report is a peer writer's news for raft.
type report struct {
	peer     uint64
	snapshot bool // a snapshot was sent (status), else the peer is unreachable
	status   raft.SnapshotStatus
}

// reportUnreachable and reportSnapshot tell raft about a peer; they never block.
func (n *Node) reportUnreachable(id uint64) {
	select {
	case n.reportc <- report{peer: id}:
	default:
	}
}

func (n *Node) reportSnapshot(id uint64, st raft.SnapshotStatus) {
	select {
	case n.reportc <- report{peer: id, snapshot: true, status: st}:
	case <-n.stopc:
	}
}

// step hands a peer's message to the run goroutine.
func (n *Node) step(m *raftpb.Message) error {
	select {
	case n.stepc <- m:
		return nil
	case <-n.stopc:
		return ErrClosed
	}
}

// submit queues cmd for proposal on this node; when the queue is full it is
// dropped (its sender resends).
func (n *Node) submit(cmd lock.Command) {
	select {
	case n.propc <- cmd:
	default:
	}
}

func (n *Node) handleReady(rd raft.Ready) error {
	if !raft.IsEmptyHardState(rd.HardState) {
		if t := rd.HardState.GetTerm(); t != n.term.Load() {
			n.term.Store(t)
			n.notifyChange()
		}
	}
	if rd.SoftState != nil {
		n.setSoftState(rd.SoftState) // after the term, which the proposer stamps
	}
	// A leader sends before it writes: its followers write to their disks
	// while it writes to its own (Raft thesis §10.2.1; etcd does the same).
	// Everyone else persists first, since its messages (votes, append
	// acknowledgements) promise what is on its disk.
	leader := n.role.Load().(raft.StateType) == raft.StateLeader
	if leader {
		n.sendAll(rd.Messages)
	}
	// Committed entries that were already on disk before this Ready are
	// applied before its write, so their clients need not wait for it.
	committed := rd.CommittedEntries
	if raft.IsEmptySnap(rd.Snapshot) {
		i := 0
		for i < len(committed) && committed[i].GetIndex() <= n.stable {
			i++
		}
		if err := n.apply(committed[:i]); err != nil {
			return err
		}
		committed = committed[i:]
	} else if err := n.installSnapshot(rd.Snapshot); err != nil {
		return err
	}
	if err := n.disk.save(rd.HardState, rd.Entries); err != nil {
		return err
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		n.mem.SetHardState(rd.HardState)
		n.commit.Store(rd.HardState.GetCommit())
	}
	if err := n.mem.Append(rd.Entries); err != nil {
		return err
	}
	if k := len(rd.Entries); k > 0 {
		n.stable = rd.Entries[k-1].GetIndex()
	}
	if !leader {
		n.sendAll(rd.Messages)
	}
	if err := n.apply(committed); err != nil {
		return err
	}
	n.rn.Advance(rd)
	if n.prop.tickNow {
		n.prop.tickNow = false
		n.propose(nil)
	}
	return nil
}

func (n *Node) sendAll(msgs []*raftpb.Message) {
	for _, m := range msgs {
		n.send(m)
	}
}

func (n *Node) setSoftState(s *raft.SoftState) {
	old := n.leader.Swap(s.Lead)
	oldRole := n.role.Swap(s.RaftState)
	if old != s.Lead || oldRole != s.RaftState {
		n.log.Info("raft state", "role", roleName(s.RaftState), "leader", s.Lead, "term", n.term.Load())
		n.notifyChange()
	}
	if s.RaftState == raft.StateLeader && oldRole != raft.StateLeader {
		n.prop.tickNow = true // the term's first stamp
	}
}

// notifyChange wakes everyone waiting on a leader or term change.
func (n *Node) notifyChange() {
	ch := make(chan struct{})
	old := n.changed.Swap(&ch)
	close(*old)
}

// leaderChanged returns a channel closed at the next leader or term change.
func (n *Node) leaderChanged() <-chan struct{} { return *n.changed.Load() }

func (n *Node) installSnapshot(s *raftpb.Snapshot) error {
	if err := n.disk.saveSnapshot(s); err != nil {
		return err
	}
	if err := n.disk.resetLog(s.GetMetadata().GetIndex()); err != nil {
		return err
	}
	if err := n.mem.ApplySnapshot(s); err != nil {
		return err
	}
	if err := n.table.Restore(s.GetData()); err != nil {
		return fmt.Errorf("snapshot from leader: %w", err)
	}
	n.snapIndex = s.GetMetadata().GetIndex()
	n.stable = n.snapIndex
	n.confState = proto.Clone(s.GetMetadata().GetConfState()).(*raftpb.ConfState)
	n.applied.Store(n.snapIndex)
	n.appliedT.Store(time.Now().UnixNano())
	n.log.Info("installed snapshot", "index", n.snapIndex, "locks", n.table.Len())
	return nil
}

// apply applies committed entries in order and answers their waiters.
func (n *Node) apply(ents []*raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	for _, e := range ents {
		if e.GetIndex() <= n.applied.Load() {
			continue
		}
		switch e.GetType() {
		case raftpb.EntryNormal:
			if len(e.GetData()) == 0 {
				break
			}
			b, err := lock.DecodeBatch(e.GetData())
			if err != nil {
				// Every node skips the same entry, so tables stay equal.
				n.log.Error("skipping undecodable entry", "index", e.GetIndex(), "err", err)
				break
			}
			n.results = n.table.Apply(e.GetTerm(), &b, n.results[:0])
			for _, r := range n.results {
				n.pending.resolve(r.ID, r.Value)
			}
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				return fmt.Errorf("conf change at %d: %w", e.GetIndex(), err)
			}
			n.confState = n.rn.ApplyConfChange(&cc)
		case raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeV2
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				return fmt.Errorf("conf change at %d: %w", e.GetIndex(), err)
			}
			n.confState = n.rn.ApplyConfChange(&cc)
		}
		n.applied.Store(e.GetIndex())
	}
	n.appliedT.Store(time.Now().UnixNano())
	n.scheduleTick()
	return n.maybeSnapshot()
}

// maybeSnapshot snapshots the table and compacts the log once enough entries
// were applied since the last snapshot.
func (n *Node) maybeSnapshot() error {
	applied := n.applied.Load()
	if applied-n.snapIndex < n.cfg.SnapshotEntries {
		return nil
	}
	snap, err := n.mem.CreateSnapshot(applied, n.confState, n.table.Snapshot())
	if err != nil {
		return err
	}
	if err := n.disk.saveSnapshot(snap); err != nil {
		return err
	}
	n.snapIndex = applied
	keep := n.cfg.SnapshotEntries / 2
	if applied > keep {
		compact := applied - keep
		if err := n.mem.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return err
		}
		if err := n.disk.compact(compact); err != nil {
			return err
		}
	}
	n.log.Debug("snapshot", "index", applied)
	return nil
}

// send hands a raft message to its peer's queue; it never blocks.
func (n *Node) send(m *raftpb.Message) {
	p := n.peers[m.GetTo()]
	if p == nil {
		return
	}
	if !p.enqueue(frame{msg: m}) {
		n.rn.ReportUnreachable(m.GetTo())
		if m.GetType() == raftpb.MsgSnap {
			n.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
		}
	}
}

// Table returns the node's replica of the lock table, for reads.
func (n *Node) Table() *lock.Table { return n.table }

// Close stops the node: waiters get ErrClosed, peers are disconnected, the
// data directory is closed. It is safe to call more than once.
func (n *Node) Close() error {
	n.stopOnce.Do(func() {
		close(n.stopc)
		n.cancel()
		if n.inbound != nil {
			n.inbound.close()
		}
		n.wg.Wait()
		for _, p := range n.peers {
			p.wait()
		}
		if n.inbound != nil {
			n.inbound.wait()
		}
		n.disk.close()
		n.log.Info("node stopped")
	})
	return nil
}

var errNodeFailed = errors.New("replication: node stopped after a storage error")

// failed returns the storage error that stopped the raft loop, if any.
func (n *Node) failed() error {
	if p := n.fatal.Load(); p != nil {
		return fmt.Errorf("%w: %v", errNodeFailed, *p)
	}
	return nil
}
