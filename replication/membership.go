package replication

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"

	"github.com/lockd/lockd/internal/datadir"
	"go.etcd.io/raft/v3/raftpb"
)

// Membership changes. The members are raft's configuration (voters and
// learners) and each member's cluster address. Both are replicated state:
// raft's conf change entries carry the address of the member they add in
// their context, and every snapshot carries the ConfState in its metadata
// and the addresses in a members section before the table's bytes
// (membership_wire.go). So a restarted node reads its members from its snapshot
// and log, never again from Config.Peers, which seeds a new cluster only.
//
// A change is proposed by the leader, one at a time (raft's rule): a
// request made on any node travels to the leader (an ADMIN frame, or the
// loop's confc on the leader itself), which refuses it at once, with a
// reason, when another change is pending, when it cannot reach a quorum, or
// when the change does not fit the members (checkChange); otherwise it
// proposes it. When the change's entry is handed out to be applied, every
// node checks it again against the members of that point of the log, so
// that all decide alike, and applies it to raft or, refused, as a no-op.
// The node that made the request hears the outcome then, from its own log.
//
// A member joins as a learner: it receives a snapshot (taken right after
// the change that added it, so that it lists the learner) and the log, and
// the leader promotes it to voter once its Match is within PromoteLag
// entries of the leader's last index (or on PromoteMember).

// Errors of the membership changes; the error returned wraps one of them,
// with the member's id in its text. Compare with errors.Is.
var (
	ErrBadMember     = errors.New("bad member")
	ErrMemberExists  = errors.New("member exists")
	ErrNoSuchMember  = errors.New("no such member")
	ErrAlreadyVoter  = errors.New("member is already a voter")
	ErrLastVoter     = errors.New("cannot remove the last voter")
	ErrChangePending = errors.New("another membership change is pending")
	ErrNoQuorum      = errors.New("the leader is not in contact with a quorum of voters")
	ErrNoClusterPort = errors.New("this node has no cluster port or secret")
)

// refusals numbers the refusals a leader sends back in an ADMIN answer.
var refusals = []error{ErrBadMember, ErrMemberExists, ErrNoSuchMember, ErrAlreadyVoter,
	ErrLastVoter, ErrChangePending, ErrNoQuorum, ErrNoLeader, ErrNoClusterPort}

// refusal is a refused change: its text and the sentinel it wraps.
type refusal struct {
	err error
	msg string
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.err }

func refuse(err error, format string, args ...any) error {
	return &refusal{err: err, msg: fmt.Sprintf(format, args...)}
}

// DefaultPromoteLag is Config.PromoteLag's default: a learner within this
// many entries of the leader's last index is caught up.
const DefaultPromoteLag = 64

// membership is the cluster's members as of the entry or snapshot at index.
// It is never changed once made.
type membership struct {
	index uint64
	cs    *raftpb.ConfState
	addrs map[uint64]string // every voter's and learner's cluster address
}

// role is "voter", "learner", or "" for a node that is not a member.
func (m *membership) role(id uint64) string {
	switch {
	case slices.Contains(m.cs.GetVoters(), id):
		return "voter"
	case slices.Contains(m.cs.GetLearners(), id):
		return "learner"
	}
	return ""
}

// soleVoter reports whether id is the only voter.
func (m *membership) soleVoter(id uint64) bool {
	v := m.cs.GetVoters()
	return len(v) == 1 && v[0] == id
}

// memberChange is a requested change: add a learner, promote a learner,
// or remove a member.
type memberChange struct {
	op   raftpb.ConfChangeType // AddLearnerNode, AddNode (promote) or RemoveNode
	id   uint64
	addr string // the new member's cluster address
}

// checkChange says whether c fits m, the members it would change. What a
// node may request is narrower than what the log may hold: proposing, a
// voter is added only as a learner first; applying, an entry that adds a
// voter outright (raft's Bootstrap writes those) or makes a voter a voter
// again (Bootstrap applied its entries before they are handed out) fits.
func (m *membership) checkChange(c memberChange, proposing bool) error {
	role := m.role(c.id)
	switch c.op {
	case raftpb.ConfChangeAddLearnerNode:
		if role != "" {
			return refuse(ErrMemberExists, "node %d is already a member (%s)", c.id, role)
		}
		if checkMember(c.id, c.addr) != nil {
			return refuse(ErrBadMember, "node %d: no valid cluster address", c.id)
		}
	case raftpb.ConfChangeAddNode:
		switch {
		case !proposing:
		case role == "voter":
			return refuse(ErrAlreadyVoter, "node %d is already a voter", c.id)
		case role == "":
			return refuse(ErrNoSuchMember, "node %d is not a member; add it first", c.id)
		}
	case raftpb.ConfChangeRemoveNode:
		if role == "" {
			return refuse(ErrNoSuchMember, "node %d is not a member", c.id)
		}
		if m.soleVoter(c.id) {
			return refuse(ErrLastVoter, "node %d is the last voter", c.id)
		}
	default:
		return refuse(ErrBadMember, "conf change %v", c.op)
	}
	return nil
}

// checkMember checks a member's id and cluster address as given.
func checkMember(id uint64, addr string) error {
	if id == 0 || id > 0xffff {
		return refuse(ErrBadMember, "node id %d: must be 1..65535", id)
	}
	host, port, err := net.SplitHostPort(addr)
	p, perr := strconv.Atoi(port)
	if err != nil || host == "" || perr != nil || p < 1 || p > 65535 || len(addr) > 256 {
		return refuse(ErrBadMember, "cluster address %q: want host:port", clipAddr(addr))
	}
	return nil
}

func clipAddr(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// after returns the members once cs, made by the entry at index, applies:
// c's member gets its address, or, removed, loses it.
func (m *membership) after(index uint64, cs *raftpb.ConfState, c memberChange) *membership {
	addrs := maps.Clone(m.addrs)
	if addrs == nil {
		addrs = map[uint64]string{}
	}
	switch c.op {
	case raftpb.ConfChangeRemoveNode:
		delete(addrs, c.id)
	default:
		if c.addr != "" {
			addrs[c.id] = c.addr
		}
	}
	return &membership{index: index, cs: cs, addrs: addrs}
}

// Member is one member as MEMBER LIST shows it.
type Member struct {
	ID     uint64
	Addr   string // cluster address
	Role   string // "voter" or "learner"
	Leader bool
	Match  uint64 // the highest log index known replicated to it; the leader's own last index for itself; 0 where unknown (off the leader)
}

// Members returns the members as this node knows them, by id. The Match
// indexes are known on the leader only.
func (n *Node) Members() []Member {
	m := n.members.Load()
	lead := n.pub.leader.Load()
	match := n.matches.Load()
	var out []Member
	for _, set := range [][]uint64{m.cs.GetVoters(), m.cs.GetLearners()} {
		for _, id := range set {
			mb := Member{ID: id, Addr: m.addrs[id], Role: m.role(id), Leader: id == lead}
			if match != nil {
				mb.Match = (*match)[id]
			}
			out = append(out, mb)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return int(a.ID) - int(b.ID) })
	return out
}

// AddMember adds node id, whose cluster address is addr, as a learner; the
// leader promotes it to voter once it is caught up (Config.PromoteLag). It
// returns once this node has applied the change, or with a refusal
// (ErrBadMember, ErrMemberExists, ErrChangePending, ErrNoQuorum,
// ErrNoClusterPort on a node without a cluster listener or secret), or with
// ErrNoLeader or ErrTimeout when the request timeout passes first.
func (n *Node) AddMember(ctx context.Context, id uint64, addr string) error {
	if err := checkMember(id, addr); err != nil {
		return err
	}
	return n.changeMembers(ctx, memberChange{op: raftpb.ConfChangeAddLearnerNode, id: id, addr: addr})
}

// PromoteMember makes learner id a voter, caught up or not.
func (n *Node) PromoteMember(ctx context.Context, id uint64) error {
	return n.changeMembers(ctx, memberChange{op: raftpb.ConfChangeAddNode, id: id})
}

// RemoveMember removes voter or learner id. Removing the leader is allowed:
// it steps down once the change is committed, and the others elect another
// (an election timeout without a leader). The last voter cannot be removed.
func (n *Node) RemoveMember(ctx context.Context, id uint64) error {
	return n.changeMembers(ctx, memberChange{op: raftpb.ConfChangeRemoveNode, id: id})
}

// changeMembers checks c against this node's members, sends it to the
// leader and waits, bounded by the request timeout, for its outcome.
func (n *Node) changeMembers(ctx context.Context, c memberChange) error {
	if err := n.failed(); err != nil {
		return err
	}
	if c.id == 0 || c.id > 0xffff {
		return refuse(ErrBadMember, "node id %d: must be 1..65535", c.id)
	}
	if err := n.members.Load().checkChange(c, true); err != nil {
		return err
	}
	if c.op == raftpb.ConfChangeAddLearnerNode && (n.cfg.Listener == nil || len(n.cfg.Secret) < MinSecretLen) {
		return refuse(ErrNoClusterPort, "this node has no cluster listener or no cluster secret: restart it with them (--cluster-listen, --cluster-secret-file) to grow the cluster")
	}
	req, err := n.newID()
	if err != nil {
		return err
	}
	done := n.confWaits.register(req)
	defer n.confWaits.cancel(req)
	dl := n.deadline(ctx)
	ctx, cancel := context.WithDeadline(ctx, dl.at)
	defer cancel()
	sent := false
	for !sent {
		changed := n.pub.leaderChanged()
		switch lead := n.pub.leader.Load(); {
		case lead == n.cfg.ID:
			select {
			case n.loop.confc <- confRequest{from: n.cfg.ID, req: req, change: c}:
				sent = true
			default:
				return refuse(ErrChangePending, "too many membership changes queued on the leader")
			}
		case lead != 0:
			if n.confInLog() { // the leader would refuse it; its loop checks for itself (checkProposal)
				return refuse(ErrChangePending, "another membership change is pending in this node's log; retry when it is applied")
			}
			n.tr.Admin(lead, appendConfRequest(nil, req, c))
			sent = true
		default:
			select {
			case <-changed:
			case <-ctx.Done():
				return ErrNoLeader
			case <-n.stopc:
				return ErrClosed
			case <-n.haltc:
				return n.failed()
			}
		}
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ErrTimeout
	case <-n.stopc:
		return ErrClosedUnknown
	case <-n.haltc:
		return ErrClosedUnknown
	}
}

// confInLog reports whether this node's log holds a membership change it
// has not applied yet (looking at most maxPendingScan bytes of entries
// past the applied index): the leader would refuse another change.
func (n *Node) confInLog() bool {
	last, err := n.mem.LastIndex()
	applied := n.pub.applied.Load()
	if err != nil || last <= applied {
		return false
	}
	ents, err := n.mem.Entries(applied+1, last+1, maxPendingScan)
	if err != nil {
		return false // compacted meanwhile: the leader decides
	}
	for _, e := range ents {
		if t := e.GetType(); t == raftpb.EntryConfChange || t == raftpb.EntryConfChangeV2 {
			return true
		}
	}
	return false
}

// maxPendingScan bounds the entries confInLog reads.
const maxPendingScan = 4 << 20

// checkRecoveredCluster refuses to start a joining node with an empty data
// directory and no member to reach, and a node whose data directory says
// its cluster has several members without a cluster listener and secret,
// whatever Config.Peers says (it may name this node alone).
func (n *Node) checkRecoveredCluster(rec *datadir.Recovered) error {
	if rec.Empty() && n.cfg.Join && len(n.cfg.Peers) < 2 {
		return errors.New("a joining node needs the cluster addresses of members it can reach besides its own (--peers)")
	}
	if rec.Empty() || n.cfg.ForceNewCluster || (n.cfg.Listener != nil && len(n.cfg.Secret) >= MinSecretLen) {
		return nil
	}
	roles, err := n.recoveredRoles()
	if err != nil || len(roles) <= 1 {
		return err
	}
	return fmt.Errorf("this node's cluster has %d members (read from its data directory): it needs a cluster listener "+
		"and a cluster secret of at least %d characters, whatever --peers says", len(roles), MinSecretLen)
}

// confRequest is a membership change request for the leader's loop.
type confRequest struct {
	from   uint64 // the node that waits for the outcome
	req    uint64 // its request id
	change memberChange
}

// confWaits are the membership change requests this node waits on.
type confWaits struct {
	mu sync.Mutex
	m  map[uint64]chan error
}

func (w *confWaits) register(req uint64) <-chan error {
	ch := make(chan error, 1)
	w.mu.Lock()
	if w.m == nil {
		w.m = make(map[uint64]chan error)
	}
	w.m[req] = ch
	w.mu.Unlock()
	return ch
}

func (w *confWaits) cancel(req uint64) {
	w.mu.Lock()
	delete(w.m, req)
	w.mu.Unlock()
}

// resolve hands req's outcome to its waiter, if there is one; it never
// blocks.
func (w *confWaits) resolve(req uint64, err error) {
	w.mu.Lock()
	ch := w.m[req]
	delete(w.m, req)
	w.mu.Unlock()
	if ch != nil {
		ch <- err
	}
}
