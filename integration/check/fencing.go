package check

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrFencing: fencing tokens were not strictly increasing over grants.
var ErrFencing = errors.New("check: fencing tokens out of order")

// FencingViolation is one breach of the token order. Earlier is the op that showed the
// earlier grant (or the first use of a token), Later the op that showed the offending one.
type FencingViolation struct {
	Reason  string
	Earlier Op
	Later   Op
}

func (v FencingViolation) String() string {
	return fmt.Sprintf("%s: earlier %s; later %s", v.Reason, v.Earlier, v.Later)
}

// FencingError lists every violation CheckFencing found; it matches ErrFencing.
type FencingError struct {
	Violations []FencingViolation
}

func (e *FencingError) Unwrap() error { return ErrFencing }

func (e *FencingError) Error() string {
	s := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		s[i] = v.String()
	}
	return fmt.Sprintf("check: %d fencing violations:\n  %s", len(e.Violations), strings.Join(s, "\n  "))
}

// grant is every successful LOCK (or RWLOCK, SEMLOCK) that returned one token.
type grant struct {
	token int64
	first Op    // the returning op called first: the new grant; the others are re-grants
	lower int64 // earliest time the grant can have been applied
	done  Op    // the returning op that returned first
}

// CheckFencing checks the cluster-wide token order of a history over all lock names, and
// over read/write locks and semaphores, whose grants take tokens from the same counter
// (their ops count as LOCKs here, in a namespace apart):
//
//   - every token is positive;
//   - a token is only ever returned for one grant: to one owner of one lock (re-grants);
//   - a new grant's token is larger than every token whose grant had completed (some LOCK
//     returned it) before the new grant was called.
//
// A token's grant is placed no earlier than the call of the first LOCK that returned it,
// or of an earlier indeterminate LOCK by the same owner on the same lock, which may have
// been the real grant (PROTOCOL.md: a retried LOCK returns the first grant's token). A
// re-grant returning a different token is a linearizability violation, not reported here.
//
// It returns nil or a *FencingError. ops is not modified.
func CheckFencing(ops []Op) error {
	var violations []FencingViolation
	byToken := make(map[int64]*grant)
	type key struct {
		shared      bool // the read/write lock and semaphore namespace
		name, owner string
	}
	unknownCalls := make(map[key][]int64) // indeterminate LOCK calls per lock and owner
	for _, op := range ops {
		if op.Kind.family() != KindLock || op.Status == StatusFailed {
			continue
		}
		if op.Status != StatusOK {
			k := key{op.Kind.shared(), op.Name, op.Owner}
			unknownCalls[k] = append(unknownCalls[k], op.Call)
			continue
		}
		if op.Token == 0 {
			continue
		}
		if op.Token < 0 {
			violations = append(violations, FencingViolation{Reason: "non-positive token", Earlier: op, Later: op})
			continue
		}
		g, ok := byToken[op.Token]
		if !ok {
			byToken[op.Token] = &grant{token: op.Token, first: op, done: op}
			continue
		}
		if op.Name != g.first.Name || op.Owner != g.first.Owner || op.Kind.shared() != g.first.Kind.shared() {
			e, l := g.first, op
			if l.Call < e.Call {
				e, l = l, e
			}
			violations = append(violations, FencingViolation{
				Reason: fmt.Sprintf("token %d granted twice, to different owners or locks", op.Token), Earlier: e, Later: l,
			})
		}
		if op.Call < g.first.Call {
			g.first = op
		}
		if op.Return < g.done.Return {
			g.done = op
		}
	}

	grants := make([]*grant, 0, len(byToken))
	for _, g := range byToken {
		g.lower = g.first.Call
		for _, c := range unknownCalls[key{g.first.Kind.shared(), g.first.Name, g.first.Owner}] {
			g.lower = min(g.lower, c)
		}
		grants = append(grants, g)
	}

	// Sweep the grants by placement; keep the largest token among grants completed
	// strictly before (closed intervals: equal times are concurrent).
	byLower := slices.Clone(grants)
	slices.SortFunc(byLower, func(a, b *grant) int {
		return cmp.Or(cmp.Compare(a.lower, b.lower), cmp.Compare(a.token, b.token))
	})
	byDone := slices.Clone(grants)
	slices.SortFunc(byDone, func(a, b *grant) int {
		return cmp.Or(cmp.Compare(a.done.Return, b.done.Return), cmp.Compare(a.token, b.token))
	})
	var best *grant
	j := 0
	for _, g := range byLower {
		for ; j < len(byDone) && byDone[j].done.Return < g.lower; j++ {
			if best == nil || byDone[j].token > best.token {
				best = byDone[j]
			}
		}
		if best != nil && best.token >= g.token {
			violations = append(violations, FencingViolation{
				Reason:  fmt.Sprintf("new grant's token %d is not larger than token %d granted before it was called", g.token, best.token),
				Earlier: best.done,
				Later:   g.first,
			})
		}
	}
	if len(violations) == 0 {
		return nil
	}
	return &FencingError{Violations: violations}
}
