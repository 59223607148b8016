package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Membership changes. The members are raft's configuration (voters and
// learners) and each member's cluster address. Both are replicated state:
// raft's conf change entries carry the address of the member they add in
// their context, and every snapshot carries the ConfState in its metadata
// and the addresses in a members section before the table's bytes
// (snapshotData). So a restarted node reads its members from its snapshot
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

// answerConf tells node from the outcome of its request req: through
// confWaits on this node, or in an ADMIN frame.
func (n *Node) answerConf(from, req uint64, err error) {
	if from == n.cfg.ID {
		n.confWaits.resolve(req, err)
		return
	}
	n.tr.Admin(from, appendConfAnswer(nil, req, err))
}

// The ADMIN frame's payloads:
//
//	'Q' uvarint(req) byte(op) uvarint(id) addr   a request, to the leader
//	'A' uvarint(req) byte(code) text             a refusal, back to its node
//
// code indexes refusals; 255 is a refusal of no known kind.
func appendConfRequest(b []byte, req uint64, c memberChange) []byte {
	b = append(b, 'Q')
	b = binary.AppendUvarint(b, req)
	b = append(b, byte(c.op))
	b = binary.AppendUvarint(b, c.id)
	return append(b, c.addr...)
}

func appendConfAnswer(b []byte, req uint64, err error) []byte {
	b = append(b, 'A')
	b = binary.AppendUvarint(b, req)
	code := slices.IndexFunc(refusals, func(r error) bool { return errors.Is(err, r) })
	if code < 0 {
		code = 255
	}
	b = append(b, byte(code))
	return append(b, err.Error()...)
}

// admin takes an ADMIN frame from peer from: a request, for the leader's
// loop (dropped when its queue is full: the sender's request times out), or
// a refusal of a request of this node's. Anything malformed, or a request
// id that is not the sender's, is dropped.
func (n *Node) admin(from uint64, data []byte) {
	if len(data) < 2 {
		return
	}
	req, k := binary.Uvarint(data[1:])
	if k <= 0 || len(data) < 2+k {
		return
	}
	rest := data[1+k:]
	switch data[0] {
	case 'Q':
		id, j := binary.Uvarint(rest[1:])
		if req>>48 != from || j <= 0 {
			return
		}
		c := memberChange{op: raftpb.ConfChangeType(rest[0]), id: id, addr: string(rest[1+j:])}
		select {
		case n.loop.confc <- confRequest{from: from, req: req, change: c}:
		default:
			n.answerConf(from, req, refuse(ErrChangePending, "too many membership changes queued on the leader"))
		}
	case 'A':
		if req>>48 != n.cfg.ID {
			return
		}
		err := errors.New("refused")
		if code := int(rest[0]); code < len(refusals) {
			err = refusals[code]
		}
		n.confWaits.resolve(req, &refusal{err: err, msg: string(rest[1:])})
	}
}

// handleConfRequest runs in the loop: the leader proposes a change that
// fits, or answers why not.
func (l *loop) handleConfRequest(r confRequest) {
	err := l.checkProposal(r.change)
	if err == nil {
		cc := &raftpb.ConfChange{Type: r.change.op.Enum(), NodeId: proto.Uint64(r.change.id),
			Context: appendConfContext(nil, r.req, r.change.addr)}
		if err = l.rn.ProposeConfChange(cc); err == nil {
			l.drainReady() // learns the entry's index
			l.confProposed = l.lastIndex
			l.n.log.Info("membership change proposed", "op", r.change.op, "member", r.change.id, "addr", r.change.addr, "index", l.lastIndex)
			return
		}
	}
	l.n.answerConf(r.from, r.req, err)
}

// checkProposal is what the leader checks before it proposes a change: it
// leads; a quorum of voters was heard from within an election timeout (see
// fresh); no change is pending, by raft's own rule (a change is pending
// until applied; a new leader's log tail may hold one until it applied an
// entry of its own term), so raft never drops a change the leader
// proposes; and the change fits.
func (l *loop) checkProposal(c memberChange) error {
	if !l.pub.leading() {
		return refuse(ErrNoLeader, "this node stopped leading; retry")
	}
	if !l.n.fresh() {
		return refuse(ErrNoQuorum, "the leader has not heard from a quorum of voters within an election timeout; membership unchanged")
	}
	st := l.rn.BasicStatus()
	if t, err := l.n.mem.Term(st.Applied); err != nil || t != st.HardState.GetTerm() || st.Applied < l.confProposed {
		return refuse(ErrChangePending, "another membership change is pending (applied %d); retry when it is applied", st.Applied)
	}
	return l.n.members.Load().checkChange(c, true)
}

// promoteCaughtUp runs in the loop at each tick. On the leader it
// publishes each member's Match (Members), and proposes to promote a
// learner that holds the entry of the last change and whose Match is within
// PromoteLag of the last index, when no change is pending.
func (l *loop) promoteCaughtUp() {
	if !l.pub.leading() {
		l.n.matches.Store(nil)
		return
	}
	st := l.rn.Status()
	match := make(map[uint64]uint64, len(st.Progress))
	for id, pr := range st.Progress {
		match[id] = pr.Match
	}
	l.n.matches.Store(&match)
	if l.n.cfg.ManualPromote {
		return
	}
	m := l.n.members.Load()
	for _, id := range m.cs.GetLearners() {
		// Caught up: it holds the entry that added it, and lags by at most PromoteLag.
		if match[id] >= m.index && match[id]+l.n.cfg.PromoteLag >= l.lastIndex {
			c := memberChange{op: raftpb.ConfChangeAddNode, id: id}
			if l.checkProposal(c) == nil {
				l.n.log.Info("promoting a caught-up learner", "member", id, "match", match[id], "last", l.lastIndex)
				l.handleConfRequest(confRequest{from: l.n.cfg.ID, change: c})
			}
			return
		}
	}
}

// applyConfChanges applies the membership changes among committed entries
// that are handed out to be applied, in log order: each is checked against
// the members at its point of the log (every node decides alike) and
// applied to raft, or, refused, applied as a no-op. The waiting request
// hears the outcome. It returns the members after the entries when they
// changed, for the applier's snapshots.
func (l *loop) applyConfChanges(ents []*raftpb.Entry) *membership {
	var changed *membership
	for _, e := range ents {
		cc := &raftpb.ConfChange{}
		switch e.GetType() {
		case raftpb.EntryConfChange:
			if err := proto.Unmarshal(e.GetData(), cc); err != nil {
				l.n.log.Error("undecodable conf change", "index", e.GetIndex(), "err", err)
				continue
			}
		case raftpb.EntryConfChangeV2:
			v2 := &raftpb.ConfChangeV2{}
			err := proto.Unmarshal(e.GetData(), v2)
			v1, ok := v2.AsV1()
			if err != nil || !ok {
				l.n.log.Error("conf change lockd does not make", "index", e.GetIndex(), "err", err)
				continue
			}
			cc = v1
		default:
			continue
		}
		req, addr := decodeConfContext(cc.GetContext())
		c := memberChange{op: cc.GetType(), id: cc.GetNodeId(), addr: addr}
		if c.addr == "" && c.op != raftpb.ConfChangeRemoveNode {
			c.addr = l.n.members.Load().addrs[c.id] // a promotion keeps the address
			if c.addr == "" {
				c.addr = l.n.cfg.Peers[c.id] // a bootstrap entry of an older lockd
			}
		}
		m := l.n.members.Load()
		err := m.checkChange(c, false)
		if err != nil {
			l.n.log.Warn("membership change refused", "index", e.GetIndex(), "op", c.op, "member", c.id, "err", err)
			cc.NodeId = proto.Uint64(raft.None) // raft applies it as a no-op
			l.rn.ApplyConfChange(cc)
		} else {
			cs := l.rn.ApplyConfChange(cc)
			changed = m.after(e.GetIndex(), cs, c)
			l.n.members.Store(changed)
			l.n.log.Info("membership changed", "index", e.GetIndex(), "op", c.op, "member", c.id, "addr", c.addr,
				"voters", cs.GetVoters(), "learners", cs.GetLearners())
		}
		l.confIndex = e.GetIndex()
		if req != 0 {
			l.n.confWaits.resolve(req, err)
		}
	}
	if changed != nil {
		l.membersMoved = true
	}
	return changed
}

// followMembers, called by the loop after it sent a round's messages, has
// the transport follow the members when they changed: a removed member's
// link is dropped only after the messages that tell it the commit of its
// removal were queued (the link writes what is queued before it ends).
func (l *loop) followMembers() {
	if l.membersMoved {
		l.membersMoved = false
		l.setMembers(l.n.members.Load())
	}
}

// installMembers takes the members from a snapshot the leader sent, as
// raft took its ConfState.
func (l *loop) installMembers(s *raftpb.Snapshot) {
	addrs, _, err := splitSnapshotData(s.GetData())
	if err != nil {
		return // the applier's restore fails on it and stops the node
	}
	cs := proto.Clone(s.GetMetadata().GetConfState()).(*raftpb.ConfState)
	l.n.members.Store(&membership{index: s.GetMetadata().GetIndex(), cs: cs, addrs: l.n.knownAddrs(cs, addrs)})
	l.membersMoved = true
}

// setMembers publishes m and has the transport and the freshness record
// follow it. A node that was a member and is no longer one (removed) keeps
// no peer; one that never was (a joining node replaying the log up to the
// change that adds it) keeps m's.
func (l *loop) setMembers(m *membership) {
	l.n.members.Store(m)
	member := m.role(l.n.cfg.ID) != ""
	removed := l.wasMember && !member
	l.wasMember = l.wasMember || member
	l.n.followMembers(m, removed)
	if removed {
		l.n.log.Warn("this node is no longer a member of the cluster; it can be stopped")
	}
}

// followMembers makes the transport's peers and the freshness record (heard)
// those of m, or none for a removed node.
func (n *Node) followMembers(m *membership, removed bool) {
	peers := map[uint64]string{}
	if !removed {
		peers = maps.Clone(m.addrs)
	}
	heard := make(map[uint64]*atomic.Int64, len(peers))
	old := *n.heardAt.Load()
	for id := range peers {
		if id == n.cfg.ID {
			continue
		}
		if h := old[id]; h != nil {
			heard[id] = h
		} else {
			heard[id] = new(atomic.Int64)
		}
	}
	n.heardAt.Store(&heard)
	n.tr.SetPeers(peers)
}

// knownAddrs completes a snapshot's addresses from Config.Peers for the
// members it lacks (a snapshot written before members were replicated).
func (n *Node) knownAddrs(cs *raftpb.ConfState, addrs map[uint64]string) map[uint64]string {
	out := maps.Clone(addrs)
	if out == nil {
		out = map[uint64]string{}
	}
	for _, set := range [][]uint64{cs.GetVoters(), cs.GetLearners()} {
		for _, id := range set {
			if out[id] == "" && n.cfg.Peers[id] != "" {
				out[id] = n.cfg.Peers[id]
			}
		}
	}
	return out
}

// A conf change's context: uvarint(request id, 0 for none), then the
// member's cluster address. Bootstrap entries of older versions have none.
func appendConfContext(b []byte, req uint64, addr string) []byte {
	b = binary.AppendUvarint(b, req)
	return append(b, addr...)
}

func decodeConfContext(b []byte) (req uint64, addr string) {
	req, k := binary.Uvarint(b)
	if k <= 0 {
		return 0, ""
	}
	return req, string(b[k:])
}

// A snapshot's data is the members section, then the table's snapshot
// (lock.Table.Snapshot, whose first byte is its version, below
// membersMark):
//
//	membersMark uvarint(count) { uvarint(id) uvarint(len) addr }...
//
// Data without the mark is a table snapshot of an older lockd: its
// addresses come from Config.Peers.
const membersMark = 0xA7

func appendSnapshotData(b []byte, addrs map[uint64]string, table []byte) []byte {
	b = append(b, membersMark)
	b = binary.AppendUvarint(b, uint64(len(addrs)))
	for _, id := range slices.Sorted(maps.Keys(addrs)) {
		b = binary.AppendUvarint(b, id)
		b = binary.AppendUvarint(b, uint64(len(addrs[id])))
		b = append(b, addrs[id]...)
	}
	return append(b, table...)
}

// maxSnapshotMembers bounds the members section a snapshot may claim.
const maxSnapshotMembers = 1 << 16

// splitSnapshotData returns a snapshot's addresses (nil for an older
// snapshot without them) and its table part.
func splitSnapshotData(data []byte) (map[uint64]string, []byte, error) {
	if len(data) == 0 || data[0] != membersMark {
		return nil, data, nil
	}
	bad := errors.New("snapshot: damaged members section")
	b := data[1:]
	count, k := binary.Uvarint(b)
	if k <= 0 || count > maxSnapshotMembers {
		return nil, nil, bad
	}
	b = b[k:]
	addrs := make(map[uint64]string, count)
	for range count {
		id, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, nil, bad
		}
		b = b[k:]
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, nil, bad
		}
		addrs[id] = string(b[k : k+int(l)])
		b = b[k+int(l):]
	}
	return addrs, b, nil
}
