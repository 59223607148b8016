package replication

import (
	"errors"
	"fmt"

	"github.com/lockd/lockd/internal/peering"
	"github.com/lockd/lockd/lock"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// handler is the node's side of its transport, the peering.Handler: what
// arrives from peers reaches the loop through it.
//
// Concurrency: its methods are called from the transport's goroutines, any
// number at once.
type handler struct{ n *Node }

// Step hands a peer's message to the loop.
func (h handler) Step(m *raftpb.Message) error {
	n := h.n
	select {
	case n.loop.stepc <- m:
		return nil
	case <-n.stopc:
		return peering.ErrStopped
	case <-n.haltc:
		return n.failed()
	}
}

// Forward proposes a command a peer forwarded, if it passes checkForwarded;
// a leader transfer request goes to the loop instead (transfer.go).
func (h handler) Forward(from uint64, c lock.Command) {
	n := h.n
	if c.Op == lock.OpLeaderTransfer {
		n.transferForwarded(from, c)
		return
	}
	if err := n.checkForwarded(from, &c); err != nil {
		// A command the leader would refuse from a client of its own:
		// dropped, and its sender's request times out.
		n.log.Warn("refused a forwarded command", "peer", from, "op", c.Op, "err", err)
		return
	}
	n.submit(c)
}

func (h handler) Admin(from uint64, data []byte) { h.n.admin(from, data) }

func (h handler) Heard(from uint64) { h.n.heard(from) }

func (h handler) PeerClientAddr(id uint64, addr string) { h.n.setClientAddr(id, addr) }

func (h handler) CheckPeer(id uint64, incarnation string) error {
	return h.n.disk.CheckPeer(id, incarnation)
}

// ReportUnreachable tells raft that a peer's link went down; when the run
// goroutine is busy the report is dropped (raft learns from the next drop).
func (h handler) ReportUnreachable(id uint64) {
	select {
	case h.n.loop.reportc <- report{peer: id}:
	default:
	}
}

// ReportSnapshot tells raft how sending a snapshot went; it waits for the
// loop, or for the node to stop.
func (h handler) ReportSnapshot(id uint64, st raft.SnapshotStatus) {
	select {
	case h.n.loop.reportc <- report{peer: id, snapshot: true, status: st}:
	case <-h.n.stopc:
	}
}

// LostState stops a node that an authenticated peer found to have lost its
// state.
func (h handler) LostState(err error) { h.n.fail(err) }

// forwardable are the operations a node may forward: its clients' writes
// and script requests. Ticks and script effects come only from the leader
// itself; reads never travel.
var forwardable = map[lock.Op]bool{
	lock.OpLock: true, lock.OpLockWait: true, lock.OpUnlock: true, lock.OpRenew: true, lock.OpCancel: true,
	lock.OpSet: true, lock.OpDel: true, lock.OpExpire: true, lock.OpPersist: true, lock.OpTx: true,
	lock.OpScriptLoad: true, lock.OpScriptFlush: true, lock.OpScript: true, lock.OpPublish: true,
	lock.OpACLSetUser: true, lock.OpACLDelUser: true,
	lock.OpRWLock: true, lock.OpSemLock: true, lock.OpSharedUnlock: true, lock.OpSharedRenew: true,
}

// checkForwarded checks a command a peer forwards: one of the client
// operations, with an id of the peer's and, for a cancel, of a request of
// the peer's; and whatever Config.Validate checks of client commands.
func (n *Node) checkForwarded(from uint64, c *lock.Command) error {
	switch {
	case c.ID>>48 != from || c.ID&(1<<48-1) == 0:
		return fmt.Errorf("request id %#x is not node %d's", c.ID, from)
	case c.Op == lock.OpCancel && c.Target>>48 != from:
		return errors.New("a cancel of another node's request")
	case !forwardable[c.Op]:
		return fmt.Errorf("operation %v", c.Op)
	}
	if n.cfg.Validate != nil {
		return n.cfg.Validate(c)
	}
	return nil
}
