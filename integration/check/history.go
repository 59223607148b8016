package check

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Kind is the command an Op sent.
type Kind uint8

// The recorded commands. The zero Kind is invalid.
const (
	KindLock   Kind = iota + 1 // LOCK name owner (no lease)
	KindUnlock                 // UNLOCK name owner
	KindOwner                  // OWNER name
	// KindSetNX is SET name owner NX PX ms: Redis's lock, with no token in
	// its reply. Its release is a compare-and-delete script, recorded as
	// KindUnlock.
	KindSetNX
	KindMLock   // MLOCK numnames name... owner [WAIT ms]: Op.Names, reply Op.Tokens
	KindMUnlock // MUNLOCK numnames name... owner: Op.Names, reply Op.Count
)

// multi says whether the kind names several locks (Op.Names) rather than one (Op.Name).
func (k Kind) multi() bool { return k == KindMLock || k == KindMUnlock }

func (k Kind) String() string {
	switch k {
	case KindLock:
		return "LOCK"
	case KindUnlock:
		return "UNLOCK"
	case KindOwner:
		return "OWNER"
	case KindSetNX:
		return "SETNX"
	case KindMLock:
		return "MLOCK"
	case KindMUnlock:
		return "MUNLOCK"
	}
	if s, ok := sharedKindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k >= KindLock && k <= KindMUnlock || k.shared() }

// reads says whether k is a read: it changes nothing and names no owner.
func (k Kind) reads() bool { return k == KindOwner || k == KindRWInfo || k == KindSemInfo }

// family is the kind whose Pending method finishes an op of kind k: KindLock for every
// grant (Locked), KindUnlock for every release (Unlocked), KindRWInfo for both INFOs (Info).
func (k Kind) family() Kind {
	switch k {
	case KindRWLock, KindSemLock:
		return KindLock
	case KindRWUnlock, KindSemUnlock:
		return KindUnlock
	case KindSemInfo:
		return KindRWInfo
	}
	return k
}

// Status says whether the client knows an Op's outcome.
type Status uint8

const (
	// StatusUnknown: indeterminate (timeout, connection error, or never finished). The op
	// may or may not have taken effect, at any time after Call. The zero value, so an op
	// that was never finished is indeterminate.
	StatusUnknown Status = iota
	// StatusOK: the node replied and the result fields hold the reply.
	StatusOK
	// StatusFailed: the op certainly did not take effect: a reply PROTOCOL.md guarantees
	// was not applied ("-TRYAGAIN no leader", argument errors), or the command was never
	// sent. Checkers ignore failed ops. When in doubt, record StatusUnknown.
	StatusFailed
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusFailed:
		return "failed"
	}
	return "unknown"
}

// Op is one operation as a client observed it.
//
// Call and Return are monotonic nanoseconds (History.Now). Return is informational for
// StatusUnknown ops: the checkers treat an indeterminate op as never returning.
// Exactly one result field is meaningful, chosen by Kind, and only when Status is OK.
// Ops with StatusFailed are kept for the record and ignored by every checker.
// The ops of read/write locks and semaphores (shared.go) use the same fields as their
// LOCK, UNLOCK and OWNER counterparts, and a few of their own.
type Op struct {
	Client int    // client id, small and zero-based (porcupine draws one row per client)
	Kind   Kind   // command sent
	Name   string // lock name
	Owner  string // owner argument of LOCK and UNLOCK; empty for OWNER
	Call   int64  // when the command was sent
	Return int64  // when the reply arrived (or the client gave up)
	Status Status // OK, Unknown or Failed
	Final  bool   // a read (OWNER, RWINFO, SEMINFO) taken after the whole cluster was restarted

	// Arguments beyond name and owner (BeginOp).
	Names []string // MLOCK, MUNLOCK: the names, in the order sent (Name is empty)
	Wait  bool     // LOCK, MLOCK, RWLOCK, SEMLOCK: sent with WAIT (it may queue, and an MLOCK reserve names)
	PX    int64    // LOCK, MLOCK: the lease sent, in ms; 0 for none
	Delay int64    // LOCK, MLOCK: the DELAY sent, in ms; 0 for none
	Write bool     // RWLOCK: WRITE rather than READ
	Limit int      // SEMLOCK: the limit sent

	Token    int64   // LOCK, RWLOCK, SEMLOCK: the fencing token granted; 0 means the null reply
	Granted  bool    // SETNX: true for OK, false for the null reply
	Released bool    // UNLOCK, RWUNLOCK, SEMUNLOCK: true for reply 1, false for 0
	Holder   string  // OWNER: the owner read; "" means the null reply
	Holders  string  // RWINFO, SEMINFO: the holders replied, as FormatHolders writes them
	Tokens   []int64 // MLOCK: one token per name of Names; nil means the null reply
	Count    int     // MUNLOCK: how many of the names the owner held and released
}

// names returns the lock names the op is about: Names, or Name alone.
func (o Op) names() []string {
	if o.Kind.multi() {
		return o.Names
	}
	return []string{o.Name}
}

// String renders the op compactly for error messages, e.g.
// "c3 LOCK x owner=a -> 7 [100,250]".
func (o Op) String() string {
	var s string
	switch o.Kind {
	case KindOwner, KindRWInfo, KindSemInfo:
		s = fmt.Sprintf("c%d %s %s", o.Client, o.Kind, o.Name)
		if o.Final {
			s += " (final)"
		}
	case KindMLock, KindMUnlock:
		s = fmt.Sprintf("c%d %s %s owner=%s", o.Client, o.Kind, strings.Join(o.Names, ","), o.Owner)
	case KindRWLock, KindSemLock:
		s = fmt.Sprintf("c%d %s %s owner=%s %s", o.Client, o.Kind, o.Name, o.Owner, o.sharedArgs())
	default:
		s = fmt.Sprintf("c%d %s %s owner=%s", o.Client, o.Kind, o.Name, o.Owner)
	}
	switch {
	case o.Wait:
		s += " WAIT"
	case o.PX > 0 || o.Delay > 0:
		s += fmt.Sprintf(" PX %d DELAY %d", o.PX, o.Delay)
	}
	return fmt.Sprintf("%s -> %s [%d,%s]", s, o.result(), o.Call, o.returnString())
}

func (o Op) returnString() string {
	if o.Status != StatusOK {
		return "?"
	}
	return fmt.Sprint(o.Return)
}

func (o Op) result() string {
	if o.Status != StatusOK {
		return o.Status.String()
	}
	switch o.Kind {
	case KindLock, KindRWLock, KindSemLock:
		if o.Token == 0 {
			return "null"
		}
		return fmt.Sprint(o.Token)
	case KindRWInfo, KindSemInfo:
		return "[" + o.Holders + "]"
	case KindUnlock, KindRWUnlock, KindSemUnlock:
		if o.Released {
			return "1"
		}
		return "0"
	case KindOwner:
		if o.Holder == "" {
			return "null"
		}
		return o.Holder
	case KindSetNX:
		if o.Granted {
			return "OK"
		}
		return "null"
	case KindMLock:
		if o.Tokens == nil {
			return "null"
		}
		return fmt.Sprint(o.Tokens)
	case KindMUnlock:
		return fmt.Sprint(o.Count)
	}
	return "?"
}

// History records Ops from many goroutines. The zero value is not usable; use NewHistory.
type History struct {
	base time.Time // its monotonic reading is the origin of all timestamps

	mu   sync.Mutex
	ops  []Op
	done []bool // done[i]: ops[i] has been finished
}

// NewHistory returns an empty history whose clock starts now.
func NewHistory() *History {
	return &History{base: time.Now()}
}

// Sibling returns an empty history on h's clock: the times of its ops and of h's are on
// one scale, so the two can be checked together (CheckFencing over both). Histories from
// two NewHistory calls are not: each clock starts at its own call.
func (h *History) Sibling() *History {
	return &History{base: h.base}
}

// Now returns monotonic nanoseconds since NewHistory. Use it to time ops recorded by hand.
func (h *History) Now() int64 {
	return int64(time.Since(h.base))
}

// Pending is an op that has been called and not yet finished. It is a small value owned
// by the goroutine that called Begin; finish it exactly once with the method matching its
// kind, or with Unknown. An op never finished is recorded as indeterminate.
type Pending struct {
	h    *History
	i    int
	kind Kind
}

// Begin records the call of an op and stamps its call time. Call it just before sending
// the command. owner is ignored for reads (OWNER, RWINFO, SEMINFO).
func (h *History) Begin(client int, kind Kind, name, owner string) Pending {
	return h.BeginOp(Op{Client: client, Kind: kind, Name: name, Owner: owner})
}

// BeginOp is Begin for an op with arguments beyond its owner: it records op's Client,
// Kind, Name or Names (copied), Owner and Wait, PX, Delay, Write and Limit, stamped with
// its call time; its Final and result fields are ignored.
func (h *History) BeginOp(op Op) Pending {
	op.Final = false
	return h.beginOp(op)
}

func (h *History) beginOp(op Op) Pending {
	if !op.Kind.valid() {
		panic(fmt.Sprintf("check: Begin with invalid kind %v", op.Kind))
	}
	if op.Kind.reads() {
		op.Owner = ""
	}
	op = Op{Client: op.Client, Kind: op.Kind, Name: op.Name, Owner: op.Owner, Final: op.Final,
		Names: append([]string(nil), op.Names...), Wait: op.Wait, PX: op.PX, Delay: op.Delay,
		Write: op.Write, Limit: op.Limit, Call: h.Now()}
	h.mu.Lock()
	i := len(h.ops)
	h.ops = append(h.ops, op)
	h.done = append(h.done, false)
	h.mu.Unlock()
	return Pending{h: h, i: i, kind: op.Kind}
}

// Locked finishes a LOCK, RWLOCK or SEMLOCK with its reply: the token, or 0 for the null
// reply.
func (p Pending) Locked(token int64) {
	p.finish(KindLock, func(o *Op) { o.Status, o.Token = StatusOK, token })
}

// Set finishes a SET NX with its reply (OK → true, null → false).
func (p Pending) Set(granted bool) {
	p.finish(KindSetNX, func(o *Op) { o.Status, o.Granted = StatusOK, granted })
}

// Unlocked finishes an UNLOCK, RWUNLOCK or SEMUNLOCK with its reply (1 → true, 0 → false).
func (p Pending) Unlocked(released bool) {
	p.finish(KindUnlock, func(o *Op) { o.Status, o.Released = StatusOK, released })
}

// Read finishes an OWNER with its reply: the owner, or "" for the null reply.
func (p Pending) Read(holder string) {
	p.finish(KindOwner, func(o *Op) { o.Status, o.Holder = StatusOK, holder })
}

// MLocked finishes an MLOCK with its reply: one token per name, or nil for the null reply.
func (p Pending) MLocked(tokens []int64) {
	p.finish(KindMLock, func(o *Op) { o.Status, o.Tokens = StatusOK, tokens })
}

// MUnlocked finishes an MUNLOCK with its reply: how many names were released.
func (p Pending) MUnlocked(n int) {
	p.finish(KindMUnlock, func(o *Op) { o.Status, o.Count = StatusOK, n })
}

// Unknown finishes an op whose outcome is indeterminate (timeout, connection error,
// -TRYAGAIN). It may still take effect later; the checkers allow for that.
func (p Pending) Unknown() {
	p.finish(0, func(o *Op) { o.Status = StatusUnknown })
}

// Failed finishes an op that certainly did not take effect (see StatusFailed).
func (p Pending) Failed() {
	p.finish(0, func(o *Op) { o.Status = StatusFailed })
}

func (p Pending) finish(kind Kind, set func(*Op)) {
	if p.h == nil {
		panic("check: finish of a zero Pending")
	}
	if kind != 0 && kind != p.kind.family() {
		panic(fmt.Sprintf("check: %v op finished as %v", p.kind, kind))
	}
	ret := p.h.Now()
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	if p.h.done[p.i] {
		panic("check: op finished twice")
	}
	p.h.done[p.i] = true
	op := &p.h.ops[p.i]
	op.Return = ret
	set(op)
}

// Ops returns a copy of every op recorded so far, in call order of Begin. Ops not yet
// finished appear with StatusUnknown. Their Names and Tokens are shared: do not modify them.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Op, len(h.ops))
	copy(out, h.ops)
	return out
}

// FinalReads records one OWNER read of each name as a final read (Op.Final), calling read
// for each in turn. The suite calls it after it has stopped every client and nemesis and
// restarted all nodes; CheckLinearizable with RequireFinalReads then proves that every
// acknowledged grant and release survived. A read that fails is recorded as Unknown, the
// remaining names are still read, and the first error is returned: a final read that
// failed proves nothing.
func (h *History) FinalReads(client int, names []string, read func(name string) (holder string, err error)) error {
	return h.finalReads(client, KindOwner, names, func(name string, p Pending) error {
		holder, err := read(name)
		if err == nil {
			p.Read(holder)
		}
		return err
	})
}

// finalReads records a final read of kind of each name in turn: do sends it and, when it
// returns nil, has finished p; an error leaves p to be recorded Unknown.
func (h *History) finalReads(client int, kind Kind, names []string, do func(name string, p Pending) error) error {
	var first error
	for _, name := range names {
		p := h.beginOp(Op{Client: client, Kind: kind, Name: name, Final: true})
		if err := do(name, p); err != nil {
			p.Unknown()
			if first == nil {
				first = fmt.Errorf("check: final read of %q: %w", name, err)
			}
		}
	}
	return first
}
