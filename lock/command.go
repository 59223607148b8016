package lock

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/lockd/lockd/resp"
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

	// The key space: a key is a lock, its value the owner, its TTL the
	// lease. These commands answer with a resp.Value (Result.Reply); see
	// keyspace.go for each one's Redis semantics.
	OpSet     Op = 7  // SET Name Owner with Flags, TTL (ms, 0: none) or KeepTTL, Match
	OpDel     Op = 8  // DEL Name and X.Keys; with IfEq/IfNe: DELEX/DELIFEQ on Name
	OpExpire  Op = 9  // PEXPIRE Name TTL with NX/XX/GT/LT, or IfEq; ExpireNow deletes
	OpPersist Op = 10 // PERSIST Name
	// OpTx runs X.Sub as one step, after checking X.Checks (WATCH): its
	// reply is the array of their replies, or null when a check fails.
	OpTx Op = 11
	// OpEffects is what a script did, run once on the leader: X.Sub (its
	// writes) are applied and X.Reply is the reply if X.Checks (the keys it
	// touched, at the versions it saw) still hold; else nothing is done and
	// the result is Retry. X.Script, when set, is registered.
	OpEffects     Op = 12
	OpScriptLoad  Op = 13 // register X.Script; reply its SHA1
	OpScriptFlush Op = 14 // forget every registered script
	// OpScript asks the leader to run a script (X.SHA or X.Script, X.Keys,
	// X.Args): the leader proposes its OpEffects instead. The table never
	// applies one.
	OpScript Op = 15
	// Reads: inside OpTx, and on scratch tables (Do).
	OpGet      Op = 16 // reply the value (owner) or null
	OpExists   Op = 17 // count of Name and X.Keys that exist
	OpPTTL     Op = 18 // ms left (Seconds: s, rounded), -1 no lease, -2 no key
	OpType     Op = 19 // "string" or "none"
	OpExpireAt Op = 20 // the deadline in Unix ms (Seconds: s), -1, -2
	OpLockInfo Op = 21 // [owner, token, ttl ms] or null
	// OpPublish is PUBLISH of the message Owner on the channel Name: every
	// node that applies it delivers it to its own subscribers (see
	// events.go). It changes nothing in the table; its reply is 0, which
	// the node that answers replaces with its own count of receivers.
	OpPublish Op = 22
	// OpLeaderTransfer asks the leader to hand its leadership to the voter
	// Target (0: the most caught-up one). It travels from node to node
	// only; the table never applies one.
	OpLeaderTransfer Op = 23
	// ACL users (see users.go). OpACLSetUser applies ACL SETUSER Name with
	// the rules X.Args (password hashes only, never a clear password); for
	// the default user, while none is set, Owner lists (space-separated)
	// the rules of the proposing node's default user to start from.
	// OpACLDelUser deletes the users Name and X.Args. Both reply as Redis.
	OpACLSetUser Op = 24
	OpACLDelUser Op = 25
	// Read/write locks and semaphores (shared.go), named by Name in their
	// own namespace. OpRWLock takes Name for Owner in Mode (ModeRead or
	// ModeWrite), OpSemLock a permit of the semaphore Name of Limit
	// permits; with Wait they queue as OpLockWait does. OpSharedUnlock and
	// OpSharedRenew release and renew Owner's hold, of a read/write lock
	// (Mode ModeEither) or a semaphore (ModeSem).
	OpRWLock       Op = 26
	OpSemLock      Op = 27
	OpSharedUnlock Op = 28
	OpSharedRenew  Op = 29
	maxOp             = OpSharedRenew
)

// Flags are the options of key-space commands.
type Flags uint32

// The flags. Values are part of the on-disk format: never renumber.
const (
	FlagNX        Flags = 1 << iota // SET: only if the key does not exist; PEXPIRE: only if it has no TTL
	FlagXX                          // SET: only if it exists; PEXPIRE: only if it has a TTL
	FlagGT                          // PEXPIRE: only to a later deadline (no TTL counts as infinite)
	FlagLT                          // PEXPIRE: only to an earlier one
	FlagGet                         // SET: reply the old value
	FlagKeepTTL                     // SET: keep the TTL
	FlagIfEq                        // SET, DEL, PEXPIRE: only if the value equals Match
	FlagIfNe                        // SET, DEL: only if the value differs from Match (or, SET, the key does not exist)
	FlagExpireNow                   // SET, PEXPIRE: the deadline given is past: the key goes at once
	FlagInt                         // SET: reply 1 or 0 (SETNX); DEL with IfEq: -1 when the key does not exist
	FlagSeconds                     // PTTL, ExpireAt: in seconds
	maxFlag
)

// Retry is the result of an OpEffects whose checks failed: the script ran
// against a state that changed before its effects reached the log. Nothing
// was done and the request ID is not remembered: its node sends it again.
const Retry = -3

// Check is the version a key had when a script or WATCH saw it (0: it did
// not exist).
type Check struct {
	Name    string
	Version uint64
}

// Extra holds the parts of a command that only a few operations use.
type Extra struct {
	Keys   []string  // OpDel, OpExists: more keys after Name; OpScript: KEYS
	Sub    []Command // OpTx, OpEffects: the commands, in order (no ID, no Sub of their own)
	Checks []Check   // OpTx, OpEffects
	Reply  resp.Value
	Script string // OpEffects, OpScriptLoad, OpScript: a script body
	SHA    string // OpScript
	Args   []string
}

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
	case OpSet:
		return "SET"
	case OpDel:
		return "DEL"
	case OpExpire:
		return "PEXPIRE"
	case OpPersist:
		return "PERSIST"
	case OpTx:
		return "EXEC"
	case OpEffects:
		return "EFFECTS"
	case OpScriptLoad:
		return "SCRIPTLOAD"
	case OpScriptFlush:
		return "SCRIPTFLUSH"
	case OpScript:
		return "SCRIPT"
	case OpGet:
		return "GET"
	case OpExists:
		return "EXISTS"
	case OpPTTL:
		return "PTTL"
	case OpType:
		return "TYPE"
	case OpExpireAt:
		return "PEXPIRETIME"
	case OpLockInfo:
		return "LOCKINFO"
	case OpPublish:
		return "PUBLISH"
	case OpLeaderTransfer:
		return "LEADERTRANSFER"
	case OpACLSetUser:
		return "ACL SETUSER"
	case OpACLDelUser:
		return "ACL DELUSER"
	case OpRWLock:
		return "RWLOCK"
	case OpSemLock:
		return "SEMLOCK"
	case OpSharedUnlock:
		return "SHAREDUNLOCK"
	case OpSharedRenew:
		return "SHAREDRENEW"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Command is one client request as it travels through the log.
//
// ID identifies the request cluster-wide; the table remembers the results of
// recent IDs, so a command delivered twice acts once (and another command
// with a remembered ID gets Conflict). ID 0 means "no
// deduplication" (ticks). TTL is the lease in milliseconds; 0 means no lease.
// Wait (OpLockWait, OpRWLock and OpSemLock only) is how long to stay queued, in ms; Target
// (OpCancel) is the ID of the queued request to cancel, or (OpLeaderTransfer)
// the node to hand leadership to.
//
// Key-space commands use Owner for the value, Flags and Match for their
// options and At for an absolute deadline (EXAT, PXAT, EXPIREAT) in Unix ms,
// which the table measures against the batch's Wall (the leader's clock
// when it proposed it), so every node turns it into the same lease. X holds
// the rarer parts (see Extra).
type Command struct {
	Op     Op
	ID     uint64
	Name   string
	Owner  string
	TTL    int64
	Wait   int64
	Target uint64
	Flags  Flags
	Match  string
	At     int64
	X      *Extra
	Mode   Mode  // shared operations only (shared.go)
	Limit  int64 // OpSemLock: the semaphore's permits
}

// keySpace reports whether op is one of the key-space operations or the
// ACL ones, whose results are replies (and whose encoding carries Flags,
// Match, At and X).
func (o Op) keySpace() bool {
	return (o >= OpSet && o <= OpPublish) || o == OpACLSetUser || o == OpACLDelUser
}

// Batch is the payload of one raft entry: the commands the leader proposed
// together, stamped with the leader's term and its clock in milliseconds
// (monotonic, from its start). Wall is the leader's wall clock in Unix ms
// when it proposed the batch: it only turns deadlines into the absolute
// times that PEXPIRETIME answers, never decides an outcome.
type Batch struct {
	Term  uint64
	Stamp int64
	Wall  int64
	Cmds  []Command
}

// batchVersion is the first byte of every encoded batch: 2 carries Wall;
// version 1 batches (without it) are still read.
const batchVersion = 2

// ErrCorrupt is returned by the decoders for data they did not encode.
var ErrCorrupt = errors.New("lock: corrupt encoding")

// maxNested bounds the commands, keys, checks and arguments one command
// carries. Commands nest once: a transaction's commands carry none.
const maxNested = 1 << 16

// AppendCommand appends the binary form of c to dst.
func AppendCommand(dst []byte, c *Command) []byte {
	dst = append(dst, byte(c.Op))
	dst = binary.AppendUvarint(dst, c.ID)
	dst = appendString(dst, c.Name)
	dst = appendString(dst, c.Owner)
	dst = binary.AppendVarint(dst, c.TTL)
	switch c.Op {
	case OpLockWait:
		dst = binary.AppendVarint(dst, c.Wait)
	case OpCancel, OpLeaderTransfer:
		dst = binary.AppendUvarint(dst, c.Target)
	case OpRWLock, OpSemLock, OpSharedUnlock, OpSharedRenew:
		dst = append(dst, byte(c.Mode))
		dst = binary.AppendVarint(dst, c.Limit)
		dst = binary.AppendVarint(dst, c.Wait)
	}
	if !c.Op.keySpace() {
		return dst
	}
	dst = binary.AppendUvarint(dst, uint64(c.Flags))
	dst = appendString(dst, c.Match)
	dst = binary.AppendVarint(dst, c.At)
	if c.X == nil {
		return append(dst, 0)
	}
	x := c.X
	dst = append(dst, 1)
	dst = appendStrings(dst, x.Keys)
	dst = binary.AppendUvarint(dst, uint64(len(x.Sub)))
	for i := range x.Sub {
		dst = AppendCommand(dst, &x.Sub[i])
	}
	dst = binary.AppendUvarint(dst, uint64(len(x.Checks)))
	for _, k := range x.Checks {
		dst = appendString(dst, k.Name)
		dst = binary.AppendUvarint(dst, k.Version)
	}
	dst = resp.Append(dst, x.Reply)
	dst = appendString(dst, x.Script)
	dst = appendString(dst, x.SHA)
	return appendStrings(dst, x.Args)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

// DecodeCommand decodes one command from the front of data and returns the rest.
func DecodeCommand(data []byte) (Command, []byte, error) {
	d := decoder{b: data}
	c := d.command(0)
	if d.err != nil {
		return Command{}, nil, d.err
	}
	return c, d.b, nil
}

func (d *decoder) command(depth int) Command {
	var c Command
	c.Op = Op(d.byte())
	c.ID = d.uvarint()
	c.Name = d.string()
	c.Owner = d.string()
	c.TTL = d.varint()
	switch c.Op {
	case OpLockWait:
		c.Wait = d.varint()
	case OpCancel, OpLeaderTransfer:
		c.Target = d.uvarint()
	case OpRWLock, OpSemLock, OpSharedUnlock, OpSharedRenew:
		c.Mode = Mode(d.byte())
		c.Limit = d.varint()
		c.Wait = d.varint()
		if d.err == nil {
			d.err = validShared(&c)
		}
	}
	if d.err == nil && (c.Op < OpLock || c.Op > maxOp || c.TTL < 0 || c.Wait < 0) {
		d.err = ErrCorrupt
	}
	if d.err != nil || !c.Op.keySpace() {
		return c
	}
	c.Flags = Flags(d.uvarint())
	c.Match = d.string()
	c.At = d.varint()
	if d.err == nil && c.Flags >= maxFlag {
		d.err = ErrCorrupt
	}
	if d.byte() == 0 || d.err != nil {
		return c
	}
	x := &Extra{Keys: d.strings()}
	n := d.count(5)
	if depth > 0 && n > 0 {
		d.err = ErrCorrupt // a transaction's commands carry no commands
		return c
	}
	for i := 0; i < n && d.err == nil; i++ {
		x.Sub = append(x.Sub, d.command(depth+1))
	}
	n = d.count(2)
	for i := 0; i < n && d.err == nil; i++ {
		x.Checks = append(x.Checks, Check{Name: d.string(), Version: d.uvarint()})
	}
	if d.err == nil {
		v, rest, err := resp.Decode(d.b)
		if err != nil {
			d.err = ErrCorrupt
			return c
		}
		x.Reply, d.b = v, rest
	}
	x.Script = d.string()
	x.SHA = d.string()
	x.Args = d.strings()
	c.X = x
	return c
}

// count reads a count of items of at least min bytes each, refusing one
// that the rest of the input cannot hold (which bounds allocations).
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err == nil && (n > maxNested || n > uint64(len(d.b)/min)) {
		d.err = ErrCorrupt
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

func (d *decoder) strings() []string {
	n := d.count(1)
	var ss []string
	for i := 0; i < n && d.err == nil; i++ {
		ss = append(ss, d.string())
	}
	return ss
}

// AppendBatch appends the binary form of b to dst.
func AppendBatch(dst []byte, b *Batch) []byte {
	dst = append(dst, batchVersion)
	dst = binary.AppendUvarint(dst, b.Term)
	dst = binary.AppendVarint(dst, b.Stamp)
	dst = binary.AppendVarint(dst, b.Wall)
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
	v := d.byte()
	if d.err == nil && v != batchVersion && v != 1 {
		return Batch{}, fmt.Errorf("%w: batch version %d", ErrCorrupt, v)
	}
	b.Term = d.uvarint()
	b.Stamp = d.varint()
	if v == batchVersion {
		b.Wall = d.varint()
	}
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
