package lock

import (
	"container/heap"
	"fmt"
	"slices"

	"github.com/lockd/lockd/resp"
)

// Read/write locks and semaphores (RWLOCK, SEMLOCK and their kin): shared
// holds, in Table.sharedLocks, a namespace of their own apart from the key
// space. A name there is a read/write lock or a semaphore while anyone
// holds or waits for it, and is forgotten (its kind and limit with it) when
// nobody does. Every grant takes a token from the table's one fence; waits
// are first come, first served; leases and wait deadlines are in the
// table's lease heap and wait set with the LOCK path's, so they end in the
// same deterministic order (see expiry.go).
//
// Invariant: after every command the head of a queue does not fit (see
// fits), or the queue is empty. Whatever frees a hold or takes a waiter out
// therefore grants from the head (grantWaiters): a run of readers together,
// a writer alone, as many semaphore waiters as there are free permits.

// Mode is how a shared hold is held or asked for. Values are part of the
// on-disk format: never renumber.
type Mode uint8

// The modes.
const (
	// ModeEither names a read/write lock whatever mode owner holds it in:
	// OpSharedUnlock and OpSharedRenew of RWUNLOCK and RWRENEW.
	ModeEither Mode = 0
	ModeRead   Mode = 1 // a reader of a read/write lock
	ModeWrite  Mode = 2 // the writer of a read/write lock
	ModeSem    Mode = 3 // a permit of a semaphore
)

func (m Mode) String() string {
	switch m {
	case ModeRead:
		return "read"
	case ModeWrite:
		return "write"
	case ModeSem:
		return "permit"
	}
	return "either"
}

// MaxSemLimit is the largest number of permits a semaphore may have.
const MaxSemLimit = 1024

// sharedOp reports whether o acts on read/write locks and semaphores.
func (o Op) sharedOp() bool { return o >= OpRWLock && o <= OpSharedRenew }

// sharedLock is a read/write lock or a semaphore that someone holds or
// waits for. The table changes it in place; a SnapshotView copies it (see
// viewShared).
type sharedLock struct {
	sem     bool           // a semaphore; else a read/write lock
	limit   int            // a semaphore's permits, 1..MaxSemLimit
	holders []holder       // in grant order
	waiters []sharedWaiter // first come, first served
}

// holder is one owner's hold of a sharedLock.
type holder struct {
	owner    string
	mode     Mode
	token    uint64
	deadline int64  // logical ms; 0 = no lease
	since    int64  // logical ms when owner got it; unknownSince after Restore
	lease    *lease // its entry in Table.leases; nil when deadline is 0
}

// sharedWaiter is a queued OpRWLock or OpSemLock request.
type sharedWaiter struct {
	id       uint64
	owner    string
	mode     Mode
	ttl      int64
	deadline int64 // logical ms when it gives up
	since    int64 // logical ms when it was queued; unknownSince after Restore
}

// The errors a shared command may get, as replies; each changes nothing.
var errWrongKind = resp.ErrorValue("WRONGTYPE Operation against a key holding the wrong kind of value")

func limitError(name string, have, asked int) Result {
	v := resp.Errorf("ERR semaphore %s has limit %d, not %d", name, have, asked)
	return Result{Reply: &v}
}

func modeError(owner, name string, held Mode) Result {
	how := "reading"
	if held == ModeWrite {
		how = "writing"
	}
	v := resp.Errorf("ERR %s holds %s for %s; RWUNLOCK it first", owner, name, how)
	return Result{Reply: &v}
}

// fits reports whether a request in mode m could be granted now, queue
// aside.
func (s *sharedLock) fits(m Mode) bool {
	switch {
	case s.sem:
		return len(s.holders) < s.limit
	case m == ModeWrite:
		return len(s.holders) == 0
	}
	return len(s.holders) == 0 || s.holders[0].mode == ModeRead
}

// holderIndex returns the index of owner's hold, or -1.
func (s *sharedLock) holderIndex(owner string) int {
	return slices.IndexFunc(s.holders, func(h holder) bool { return h.owner == owner })
}

// execShared executes one of the shared operations.
func (t *Table) execShared(c *Command) Result {
	s := t.sharedLocks[c.Name]
	if s != nil && s.sem != (c.Mode == ModeSem) {
		return Result{Reply: &errWrongKind}
	}
	switch c.Op {
	case OpRWLock, OpSemLock:
		return t.lockShared(c, s)
	case OpSharedUnlock:
		if s == nil {
			return Result{}
		}
		i := s.holderIndex(c.Owner)
		if i < 0 {
			return Result{}
		}
		t.note(EventDel, c.Name)
		t.dropHolder(s, i)
		t.grantWaiters(c.Name, s)
		return Result{Value: 1}
	case OpSharedRenew:
		if s == nil || c.TTL <= 0 {
			return Result{}
		}
		i := s.holderIndex(c.Owner)
		if i < 0 {
			return Result{}
		}
		t.setSharedLease(c.Name, &s.holders[i], c.TTL)
		t.note(EventExpire, c.Name)
		return Result{Value: 1}
	}
	return Result{}
}

// lockShared executes an OpRWLock or OpSemLock on s, the name's state (nil
// when nobody holds or waits for it).
func (t *Table) lockShared(c *Command, s *sharedLock) Result {
	if s != nil && s.sem && s.limit != int(c.Limit) {
		return limitError(c.Name, s.limit, int(c.Limit))
	}
	if s != nil {
		if i := s.holderIndex(c.Owner); i >= 0 {
			h := &s.holders[i]
			if h.mode != c.Mode {
				return modeError(c.Owner, c.Name, h.mode)
			}
			if c.TTL != 0 || h.deadline != 0 {
				t.note(EventExpire, c.Name)
			}
			t.setSharedLease(c.Name, h, c.TTL)
			return Result{Value: int64(h.token)}
		}
	}
	if s == nil {
		s = &sharedLock{sem: c.Mode == ModeSem, limit: int(c.Limit)}
		if t.sharedLocks == nil {
			t.sharedLocks = make(map[string]*sharedLock)
		}
		t.sharedLocks[c.Name] = s
	}
	if len(s.waiters) == 0 && s.fits(c.Mode) {
		h := t.grantShared(c.Name, s, c.Owner, c.Mode, c.TTL)
		return Result{Value: int64(h.token)}
	}
	if c.Wait > 0 {
		t.enqueueShared(c.Name, s, sharedWaiter{id: c.ID, owner: c.Owner, mode: c.Mode, ttl: c.TTL,
			deadline: addSat(t.now, uint64(c.Wait)), since: t.now})
		return Result{Value: Queued}
	}
	t.stats.Refusals++
	t.forgetIfIdle(c.Name, s)
	return Result{}
}

// grantShared gives owner a hold of name, s, in mode m with a new token and
// a lease of ttl ms (none when 0), and returns it.
func (t *Table) grantShared(name string, s *sharedLock, owner string, m Mode, ttl int64) *holder {
	t.fence++
	t.stats.Grants++
	s.holders = append(s.holders, holder{owner: owner, mode: m, token: t.fence, since: t.now})
	h := &s.holders[len(s.holders)-1]
	t.setSharedLease(name, h, ttl)
	t.note(EventGrant, name)
	return h
}

// enqueueShared puts w at the end of the queue of name, s. A request
// already queued with the same ID and deadline (delivered again after its
// ID was forgotten) is not queued twice.
func (t *Table) enqueueShared(name string, s *sharedLock, w sharedWaiter) {
	if _, again := t.waits.Set(waitRec{at: w.deadline, name: name, id: w.id, shared: true}); again {
		return
	}
	s.waiters = append(s.waiters, w)
	t.waiting++
}

// dropHolder ends the hold s.holders[i]: its lease leaves the heap.
func (t *Table) dropHolder(s *sharedLock, i int) {
	h := &s.holders[i]
	if h.lease != nil {
		heap.Remove(&t.leases, h.lease.index)
	}
	t.stats.Hold.observeSince(h.since, t.now)
	s.holders = slices.Delete(s.holders, i, i+1)
}

// grantWaiters grants the head of the queue of name, s, while it fits, and
// answers those whose wait ran out 0 on the way; then forgets name if
// nobody holds or waits for it. A waiter whose owner got a hold since it
// queued (it queued twice) is answered at once, as a lock without WAIT
// would be: a re-grant in the same mode, 0 in the other (never an upgrade
// or a downgrade).
func (t *Table) grantWaiters(name string, s *sharedLock) {
	for len(s.waiters) > 0 {
		w := s.waiters[0]
		i := s.holderIndex(w.owner)
		if w.deadline > t.now && i < 0 && !s.fits(w.mode) {
			break
		}
		s.waiters = s.waiters[1:]
		t.unqueueShared(name, w)
		switch {
		case w.deadline <= t.now:
			t.stats.WaitTimeouts++
			t.answer(w.id, 0)
		case i >= 0 && s.holders[i].mode == w.mode:
			h := &s.holders[i]
			if w.ttl != 0 || h.deadline != 0 {
				t.note(EventExpire, name)
			}
			t.setSharedLease(name, h, w.ttl)
			t.answer(w.id, int64(h.token))
		case i >= 0:
			t.stats.Refusals++
			t.answer(w.id, 0)
		default:
			t.stats.Wait.observeSince(w.since, t.now)
			h := t.grantShared(name, s, w.owner, w.mode, w.ttl)
			t.answer(w.id, int64(h.token))
		}
	}
	if len(s.waiters) == 0 {
		s.waiters = nil
	}
	t.forgetIfIdle(name, s)
}

// dropSharedWaiter takes the queued request id out of the queue of name
// and answers it 0, if it is queued there; the requests behind it may fit
// now.
func (t *Table) dropSharedWaiter(name string, id uint64) {
	s := t.sharedLocks[name]
	if s == nil {
		return
	}
	i := slices.IndexFunc(s.waiters, func(w sharedWaiter) bool { return w.id == id })
	if i < 0 {
		return
	}
	w := s.waiters[i]
	s.waiters = slices.Delete(s.waiters, i, i+1)
	t.unqueueShared(name, w)
	t.stats.WaitTimeouts++
	t.answer(w.id, 0)
	t.grantWaiters(name, s)
}

// unqueueShared forgets the wait of w, which has left the queue of name.
func (t *Table) unqueueShared(name string, w sharedWaiter) {
	t.waits.Delete(waitRec{at: w.deadline, name: name, id: w.id, shared: true})
	t.waiting--
}

// expireShared ends owner's hold of name, whose lease ran out.
func (t *Table) expireShared(name, owner string) {
	s := t.sharedLocks[name]
	t.dropHolder(s, s.holderIndex(owner))
	t.grantWaiters(name, s)
}

// forgetIfIdle forgets name, s, when nobody holds or waits for it.
func (t *Table) forgetIfIdle(name string, s *sharedLock) {
	if len(s.holders) == 0 && len(s.waiters) == 0 {
		delete(t.sharedLocks, name)
	}
}

// setSharedLease gives the hold h of name a lease of ttl ms from now, or
// none when ttl is 0, and moves its lease in t.leases.
func (t *Table) setSharedLease(name string, h *holder, ttl int64) {
	deadline := int64(0)
	if ttl > 0 {
		deadline = addSat(t.now, uint64(ttl))
	}
	if deadline == h.deadline {
		return
	}
	h.deadline = deadline
	switch {
	case deadline == 0:
		heap.Remove(&t.leases, h.lease.index)
		h.lease = nil
	case h.lease == nil:
		h.lease = &lease{deadline: deadline, name: name, owner: h.owner, shared: true}
		heap.Push(&t.leases, h.lease)
	default:
		h.lease.deadline = deadline
		heap.Fix(&t.leases, h.lease.index)
	}
}

// doShared executes a shared command inside a transaction and returns its
// reply as RWLOCK and the others answer it; a WAIT does not wait (as
// LOCK's inside MULTI).
func (t *Table) doShared(c *Command) resp.Value {
	l := *c
	l.Wait = 0
	r := t.execShared(&l)
	switch {
	case r.Reply != nil:
		return *r.Reply
	case (c.Op == OpRWLock || c.Op == OpSemLock) && r.Value <= 0:
		return resp.NilValue()
	}
	return resp.IntValue(r.Value)
}

// SharedInfo answers RWINFO (sem false) or SEMINFO (sem true) name: the
// holders in grant order, each [owner, mode, token, ttl_ms] (RWINFO) or
// [owner, token, ttl_ms] (SEMINFO), ttl_ms -1 for no lease; an empty array
// when nobody holds it; WRONGTYPE when it is the other kind. Leases count
// down by elapsedMS since the last apply, as Read's do.
func (t *Table) SharedInfo(name string, sem bool, elapsedMS int64) resp.Value {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := t.sharedLocks[name]
	if s == nil {
		return resp.ArrayValue()
	}
	if s.sem != sem {
		return errWrongKind
	}
	now := addSat(t.now, uint64(max(elapsedMS, 0)))
	out := make([]resp.Value, 0, len(s.holders))
	for _, h := range s.holders {
		ttl := int64(-1)
		if h.deadline != 0 {
			ttl = max(h.deadline-now, 0)
		}
		if sem {
			out = append(out, resp.ArrayValue(resp.BulkValue(h.owner), resp.IntValue(int64(h.token)), resp.IntValue(ttl)))
		} else {
			out = append(out, resp.ArrayValue(resp.BulkValue(h.owner), resp.BulkValue(h.mode.String()), resp.IntValue(int64(h.token)), resp.IntValue(ttl)))
		}
	}
	return resp.ArrayValue(out...)
}

// SharedLen returns the number of names read/write locks and semaphores
// are held or waited for under (INFO keyspace's shared_locks).
func (t *Table) SharedLen() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.sharedLocks)
}

// validShared checks the fields of a decoded shared command.
func validShared(c *Command) error {
	ok := true
	switch c.Op {
	case OpRWLock:
		ok = (c.Mode == ModeRead || c.Mode == ModeWrite) && c.Limit == 0
	case OpSemLock:
		ok = c.Mode == ModeSem && c.Limit >= 1 && c.Limit <= MaxSemLimit
	case OpSharedUnlock, OpSharedRenew:
		ok = (c.Mode == ModeEither || c.Mode == ModeSem) && c.Limit == 0 && c.Wait == 0
	}
	if !ok {
		return fmt.Errorf("%w: %v with mode %d and limit %d", ErrCorrupt, c.Op, c.Mode, c.Limit)
	}
	return nil
}
