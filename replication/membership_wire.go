package replication

import (
	"encoding/binary"
	"errors"
	"maps"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
)

// The encodings of membership changes (see membership.go): the ADMIN
// frame's payloads between a node and its leader, a conf change's
// context, and the members section of a snapshot.

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
