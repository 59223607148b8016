package lock

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Op is what a Command asks of the table.
type Op uint8

// The operations. Values are part of the on-disk format: never renumber.
const (
	OpLock   Op = 1 // take Name for Owner, with an optional lease of TTL ms
	OpUnlock Op = 2 // release Name if Owner holds it
	OpRenew  Op = 3 // reset the lease of Name if Owner holds it
	OpTick   Op = 4 // advance the clock and expire leases; no other effect
	// OpLockWait is OpLock that, when the lock is held by another owner,
	// queues the request for Wait ms (result Queued) instead of refusing
	// it. A queued request is later answered by a result with its ID: the
	// token when the lock is handed to it, or 0 when its wait ran out or it
	// was cancelled.
	OpLockWait Op = 5
	// OpCancel takes the queued request Target out of its queue; Target's
	// result is then 0, unless it was granted first.
	OpCancel Op = 6
)

// Queued is the result of an OpLockWait that joined a queue.
const Queued = -1

// Conflict is the result of a command whose request ID was already used,
// within DedupWindow, by a different command (one of another fingerprint:
// its encoding without the ID differs). Nothing was done, and the ID keeps
// the first command's result.
const Conflict = -2

func (o Op) String() string {
	switch o {
	case OpLock:
		return "LOCK"
	case OpUnlock:
		return "UNLOCK"
	case OpRenew:
		return "RENEW"
	case OpTick:
		return "TICK"
	case OpLockWait:
		return "LOCKWAIT"
	case OpCancel:
		return "CANCEL"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Command is one client request as it travels through the log.
//
// ID identifies the request cluster-wide; the table remembers the results of
// recent IDs, so a command delivered twice acts once (and another command
// with a remembered ID gets Conflict). ID 0 means "no
// deduplication" (ticks). TTL is the lease in milliseconds; 0 means no lease.
// Wait (OpLockWait only) is how long to stay queued, in ms; Target
// (OpCancel only) is the ID of the queued request to cancel.
type Command struct {
	Op     Op
	ID     uint64
	Name   string
	Owner  string
	TTL    int64
	Wait   int64
	Target uint64
}

// Batch is the payload of one raft entry: the commands the leader proposed
// together, stamped with the leader's term and its clock in milliseconds.
type Batch struct {
	Term  uint64
	Stamp int64
	Cmds  []Command
}

// batchVersion is the first byte of every encoded batch.
const batchVersion = 1

// ErrCorrupt is returned by the decoders for data they did not encode.
var ErrCorrupt = errors.New("lock: corrupt encoding")

// AppendCommand appends the binary form of c to dst.
func AppendCommand(dst []byte, c *Command) []byte {
	dst = append(dst, byte(c.Op))
	dst = binary.AppendUvarint(dst, c.ID)
	dst = binary.AppendUvarint(dst, uint64(len(c.Name)))
	dst = append(dst, c.Name...)
	dst = binary.AppendUvarint(dst, uint64(len(c.Owner)))
	dst = append(dst, c.Owner...)
	dst = binary.AppendVarint(dst, c.TTL)
	switch c.Op {
	case OpLockWait:
		dst = binary.AppendVarint(dst, c.Wait)
	case OpCancel:
		dst = binary.AppendUvarint(dst, c.Target)
	}
	return dst
}

// DecodeCommand decodes one command from the front of data and returns the rest.
func DecodeCommand(data []byte) (Command, []byte, error) {
	var c Command
	d := decoder{b: data}
	c.Op = Op(d.byte())
	c.ID = d.uvarint()
	c.Name = d.string()
	c.Owner = d.string()
	c.TTL = d.varint()
	switch c.Op {
	case OpLockWait:
		c.Wait = d.varint()
	case OpCancel:
		c.Target = d.uvarint()
	}
	if d.err != nil {
		return Command{}, nil, d.err
	}
	if c.Op < OpLock || c.Op > OpCancel || c.TTL < 0 || c.Wait < 0 {
		return Command{}, nil, ErrCorrupt
	}
	return c, d.b, nil
}

// AppendBatch appends the binary form of b to dst.
func AppendBatch(dst []byte, b *Batch) []byte {
	dst = append(dst, batchVersion)
	dst = binary.AppendUvarint(dst, b.Term)
	dst = binary.AppendVarint(dst, b.Stamp)
	dst = binary.AppendUvarint(dst, uint64(len(b.Cmds)))
	for i := range b.Cmds {
		dst = AppendCommand(dst, &b.Cmds[i])
	}
	return dst
}

// DecodeBatch decodes a whole batch; trailing bytes are an error.
func DecodeBatch(data []byte) (Batch, error) {
	var b Batch
	d := decoder{b: data}
	if v := d.byte(); d.err == nil && v != batchVersion {
		return Batch{}, fmt.Errorf("%w: batch version %d", ErrCorrupt, v)
	}
	b.Term = d.uvarint()
	b.Stamp = d.varint()
	n := d.uvarint()
	if d.err != nil {
		return Batch{}, d.err
	}
	// Every command takes at least 5 bytes, which bounds the allocation.
	if n > uint64(len(d.b))/5 {
		return Batch{}, ErrCorrupt
	}
	b.Cmds = make([]Command, 0, n)
	rest := d.b
	for i := uint64(0); i < n; i++ {
		c, r, err := DecodeCommand(rest)
		if err != nil {
			return Batch{}, err
		}
		b.Cmds = append(b.Cmds, c)
		rest = r
	}
	if len(rest) != 0 {
		return Batch{}, ErrCorrupt
	}
	return b, nil
}

// decoder reads primitives from b, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = ErrCorrupt
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = ErrCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = ErrCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint32() uint32 {
	if d.err != nil || len(d.b) < 4 {
		d.err = ErrCorrupt
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = ErrCorrupt
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
