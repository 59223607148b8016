package check

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// The sequential specification of one read/write lock or semaphore, as porcupine sees it
// (docs/PROTOCOL.md, RWLOCK and SEMLOCK; the suite takes no leases).
//
// State is the holders, sorted by owner, each with its mode (write or read; a semaphore's
// holders all count as read) and token, and max, a lower bound of the highest token granted
// on the name (as in the lock model). A holder granted by an indeterminate op has token 0
// until a reply shows it, and floor, the max when it was granted: the token shown must beat
// floor. Tokens of other grants made meanwhile may be larger or smaller.
//
//	RWLOCK a WRITE -> t   a holds for writing: a re-grant, t == its token. a holds for
//	                      reading: illegal (that is an -ERR). Nobody holds: t > max; a
//	                      becomes the writer with t, and max = t. Anyone else holds: illegal.
//	RWLOCK a READ -> t    the same, except that a new grant needs only no writer.
//	SEMLOCK a L -> t      a holds: a re-grant. Else fewer than L hold: t > max; a is added.
//	RWLOCK a m -> null    a holds: illegal (a re-grant, or an -ERR). WRITE: legal iff anyone
//	                      holds. READ: legal iff a writer holds, or readers hold and a
//	                      writer may be queued (opInput.writerMayWait, below).
//	SEMLOCK a L -> null   legal iff a does not hold and L or more hold.
//	RWUNLOCK, SEMUNLOCK   as UNLOCK: 1 iff a holds (and a is removed), 0 iff a does not.
//	RWINFO, SEMINFO       exactly the holders (owner, mode, token), tokens rising in reply
//	                      order (the grant order); a token not yet seen must beat its floor
//	                      and is known from then on (and raises max).
//
// Why refusals are checked this closely: the table queues only requests with WAIT, and at
// every release or expiry grants from the head of its queue while the head fits. So after
// every apply the queue is empty or its head does not fit: a semaphore's permits are all
// taken; a writer holds the read/write lock, or readers hold it and a WRITE waits at the
// head. A SEMLOCK or a WRITE refused at once, or refused when its WAIT ran out (then it was
// in the queue), therefore saw the name full or held. A READ refused while only readers
// hold needs a WRITE in the queue, which the model cannot see: it is allowed when some
// RWLOCK WRITE with WAIT on the name was in flight during the READ (called before the READ
// returned, and not returned before the READ was called).
//
// Grants are checked for safety, not fairness: a READ granted while a WRITE waits (which
// the spec forbids, against writer starvation) is not caught.
//
// Indeterminate ops and pruning are the lock model's (prunedStep): an RWLOCK or SEMLOCK that
// took effect grants its owner the name if it fits, with a token not yet seen; an unlock
// that took effect removes its owner's hold.
type sharedState struct {
	holders []sharedHolder // sorted by owner; never changed in place once in a state
	max     int64
	done    int // determinate ops linearized so far
}

type sharedHolder struct {
	owner string
	write bool
	token int64 // 0: granted by an indeterminate op, not seen yet
	floor int64 // token 0: max when it was granted
}

func (s sharedState) doneOps() int          { return s.done }
func (s sharedState) countOne() sharedState { s.done++; return s }
func (s sharedState) find(owner string) int {
	return slices.IndexFunc(s.holders, func(h sharedHolder) bool { return h.owner == owner })
}
func (s sharedState) equal(o sharedState) bool {
	return s.max == o.max && s.done == o.done && slices.Equal(s.holders, o.holders)
}

func (s sharedState) writer() bool {
	return len(s.holders) == 1 && s.holders[0].write
}

// with returns s with h added (h.owner does not hold).
func (s sharedState) with(h sharedHolder) sharedState {
	hs := append(slices.Clone(s.holders), h)
	slices.SortFunc(hs, func(a, b sharedHolder) int { return cmp.Compare(a.owner, b.owner) })
	s.holders = hs
	return s
}

// without returns s without holder i.
func (s sharedState) without(i int) sharedState {
	s.holders = slices.Delete(slices.Clone(s.holders), i, i+1)
	return s
}

// reveal says whether t can be the token of holder i, whose token was not seen yet, and
// returns s with it known.
func (s sharedState) reveal(i int, t int64) (bool, sharedState) {
	ok := t > s.holders[i].floor
	hs := slices.Clone(s.holders)
	hs[i].token, hs[i].floor = t, 0
	s.holders, s.max = hs, max(s.max, t)
	return ok, s
}

// fits says whether in, an RWLOCK or SEMLOCK by an owner that does not hold the name, may
// be granted.
func (s sharedState) fits(in opInput) bool {
	switch {
	case in.kind == KindSemLock:
		return len(s.holders) < in.limit
	case in.write:
		return len(s.holders) == 0
	}
	return !s.writer()
}

// refuses says whether in, an RWLOCK or SEMLOCK by an owner that does not hold the name,
// may get the null reply.
func (s sharedState) refuses(in opInput) bool {
	switch {
	case in.kind == KindSemLock:
		return len(s.holders) >= in.limit
	case in.write:
		return len(s.holders) > 0
	}
	return s.writer() || len(s.holders) > 0 && in.writerMayWait
}

func sharedModel() porcupine.Model {
	return newModel(sharedState{},
		func(s sharedState, in opInput, out opOutput) (bool, sharedState) {
			return prunedStep(s, in, out, sharedUnknown, sharedKnown)
		},
		sharedState.equal,
		func(s sharedState) uint64 {
			h := uint64(s.max)<<1 ^ uint64(s.done)<<40
			for _, x := range s.holders {
				h = h*0x100000001b3 ^ maphash.String(hashSeed, x.owner) ^ uint64(x.token)*0x9e3779b97f4a7c15 ^ uint64(x.floor)
				if x.write {
					h++
				}
			}
			return h
		},
		func(s sharedState) string {
			if len(s.holders) == 0 {
				return fmt.Sprintf("free (max token %d)", s.max)
			}
			hs := make([]string, len(s.holders))
			for i, h := range s.holders {
				hs[i] = h.owner + ":" + fmt.Sprint(h.token)
				if h.token == 0 {
					hs[i] = fmt.Sprintf("%s:?(>%d)", h.owner, h.floor)
				}
				if h.write {
					hs[i] += ":write"
				}
			}
			return fmt.Sprintf("held by %s (max token %d)", strings.Join(hs, " "), s.max)
		})
}

// sharedUnknown applies an indeterminate op that took effect, and says if it changed
// anything.
func sharedUnknown(s sharedState, in opInput) (sharedState, bool) {
	i := s.find(in.owner)
	switch in.kind {
	case KindRWLock, KindSemLock:
		if i < 0 && s.fits(in) {
			return s.with(sharedHolder{owner: in.owner, write: in.write, floor: s.max}), true
		}
	case KindRWUnlock, KindSemUnlock:
		if i >= 0 {
			return s.without(i), true
		}
	}
	return s, false
}

func sharedKnown(s sharedState, in opInput, out opOutput) (bool, sharedState) {
	switch in.kind {
	case KindRWLock, KindSemLock:
		return sharedLock(s, in, out.token)
	case KindRWUnlock, KindSemUnlock:
		i := s.find(in.owner)
		if out.released {
			if i < 0 {
				return false, s
			}
			return true, s.without(i)
		}
		return i < 0, s
	case KindRWInfo, KindSemInfo:
		return sharedInfo(s, out.holders)
	}
	return false, s
}

func sharedLock(s sharedState, in opInput, t int64) (bool, sharedState) {
	if i := s.find(in.owner); i >= 0 {
		h := s.holders[i]
		switch {
		case h.write != in.write || t == 0: // the other mode (an -ERR), or a refused re-grant
			return false, s
		case h.token == 0: // re-grant of an indeterminate grant: first sight of its token
			return s.reveal(i, t)
		}
		return t == h.token, s
	}
	if t == 0 {
		return s.refuses(in), s
	}
	ok := s.fits(in) && t > s.max
	next := s.with(sharedHolder{owner: in.owner, write: in.write, token: t})
	next.max = t
	return ok, next
}

// sharedInfo checks an INFO reply against s.
func sharedInfo(s sharedState, got []Holder) (bool, sharedState) {
	if len(got) != len(s.holders) {
		return false, s
	}
	for k := 1; k < len(got); k++ {
		if got[k].Token <= got[k-1].Token {
			return false, s // not in grant order
		}
	}
	byOwner := slices.SortedFunc(slices.Values(got), func(a, b Holder) int { return cmp.Compare(a.Owner, b.Owner) })
	next := s
	for i, g := range byOwner {
		h := s.holders[i]
		switch {
		case g.Owner != h.owner || g.Write != h.write:
			return false, s
		case h.token == 0:
			var ok bool
			if ok, next = next.reveal(i, g.Token); !ok {
				return false, s
			}
		case g.Token != h.token:
			return false, s
		}
	}
	return true, next
}

// describeShared renders a shared-namespace op for porcupine's visualization.
func describeShared(in opInput, out opOutput) string {
	var res string
	switch {
	case out.unknown:
		res = "?"
	case in.kind.reads():
		res = "[" + FormatHolders(out.holders) + "]"
	case in.kind.family() == KindUnlock && out.released:
		res = "1"
	case in.kind.family() == KindUnlock:
		res = "0"
	case out.token == 0:
		res = "null"
	default:
		res = fmt.Sprint(out.token)
	}
	switch in.kind {
	case KindRWInfo, KindSemInfo:
		if in.final {
			return fmt.Sprintf("final %s -> %s", in.kind, res)
		}
		return fmt.Sprintf("%s -> %s", in.kind, res)
	case KindRWLock, KindSemLock:
		args := Op{Kind: in.kind, Write: in.write, Limit: in.limit}.sharedArgs()
		return fmt.Sprintf("%s(%s %s) -> %s", in.kind, in.owner, args, res)
	}
	return fmt.Sprintf("%s(%s) -> %s", in.kind, in.owner, res)
}

// writerMayWait returns the indexes of the ops that are RWLOCK READs refused while an
// RWLOCK WRITE with WAIT on the same name, indeterminate or not, was in flight (called
// before the READ returned and not returned before it was called): such a WRITE may have
// been queued when the READ was applied.
func writerMayWait(ops []Op) map[int]bool {
	waiting := make(map[string][]Op) // RWLOCK WRITE WAIT ops by name
	for _, op := range ops {
		if op.Kind == KindRWLock && op.Write && op.Wait && op.Status != StatusFailed {
			waiting[op.Name] = append(waiting[op.Name], op)
		}
	}
	out := make(map[int]bool)
	for i, op := range ops {
		if op.Kind != KindRWLock || op.Write || op.Status != StatusOK || op.Token != 0 {
			continue
		}
		for _, w := range waiting[op.Name] {
			if w.Call <= op.Return && (w.Status != StatusOK || w.Return >= op.Call) {
				out[i] = true
				break
			}
		}
	}
	return out
}
