package check

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// ErrLockDelay: a name was granted to another owner inside a lock-delay.
var ErrLockDelay = errors.New("check: grant inside a lock-delay")

// LockDelayViolation is one grant inside a lock-delay: Grant gave the name of Hold to
// another owner and returned before Hold.Call + Hold.PX + Hold.Delay.
type LockDelayViolation struct {
	Hold  Op
	Grant Op
}

func (v LockDelayViolation) String() string {
	end := v.Hold.Call + (v.Hold.PX+v.Hold.Delay)*int64(time.Millisecond)
	return fmt.Sprintf("%s returned %v before the lock-delay of %s can have ended (at %d)", v.Grant, time.Duration(end-v.Grant.Return), v.Hold, end)
}

// LockDelayError lists every violation CheckLockDelay found; it matches ErrLockDelay.
type LockDelayError struct {
	Violations []LockDelayViolation
}

func (e *LockDelayError) Unwrap() error { return ErrLockDelay }

func (e *LockDelayError) Error() string {
	s := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		s[i] = v.String()
	}
	return fmt.Sprintf("check: %d grants inside a lock-delay:\n  %s", len(e.Violations), strings.Join(s, "\n  "))
}

// LockDelaySummary says what CheckLockDelay looked at, so a run can tell a passing check
// from an empty one.
type LockDelaySummary struct {
	Holds  int // acknowledged holds of a name with a lease and a lock-delay, never released or renewed
	Grants int // grants of their names to other owners, called after the hold returned (per hold)
	// MinMargin is the smallest time by which such a grant returned after the earliest
	// moment the lock-delay can have ended (negative: a violation); 0 when Grants is 0.
	MinMargin time.Duration
}

// CheckLockDelay checks that no name was granted to another owner inside a lock-delay.
//
// A hold is a LOCK acknowledged with a token, or an MLOCK with tokens (a hold of each of
// its names), sent with PX p and DELAY d (both > 0) at real time c (its Call). Its lease starts no earlier than c and the table's clock runs no
// faster than real time, so if its owner never released or renewed it, the name is not
// free for anyone else before c + p + d. Then every grant of the name to another owner
// (LOCK with a token, MLOCK with tokens, SET NX granted) that is certainly later than the
// hold (called after the hold returned) must return at c + p + d or later.
//
// "Never released or renewed": the hold's owner has no other op on the name (LOCK, UNLOCK,
// SET NX, MLOCK, MUNLOCK naming it; failed ops and OWNER reads aside) that may have been
// applied after c, that is, one that returned after c or whose outcome is unknown. Holds
// that fail this are skipped, not judged.
//
// It returns what it checked, and nil or a *LockDelayError. ops is not modified.
func CheckLockDelay(ops []Op) (LockDelaySummary, error) {
	byName := make(map[string][]Op) // every op naming the name that counts
	for _, op := range ops {
		if op.Status == StatusFailed || op.Kind == KindOwner {
			continue
		}
		for _, n := range op.names() {
			byName[n] = append(byName[n], op)
		}
	}
	var sum LockDelaySummary
	var violations []LockDelayViolation
	margin := time.Duration(math.MaxInt64)
	for _, name := range sortedKeys(byName) {
		named := byName[name]
		for _, hold := range named {
			if (hold.Kind != KindLock && hold.Kind != KindMLock) || !granted(hold) || hold.PX <= 0 || hold.Delay <= 0 ||
				touchedAgain(named, hold) {
				continue
			}
			sum.Holds++
			end := hold.Call + (hold.PX+hold.Delay)*int64(time.Millisecond)
			for _, g := range named {
				if g.Owner == hold.Owner || !granted(g) || g.Call <= hold.Return {
					continue
				}
				sum.Grants++
				margin = min(margin, time.Duration(g.Return-end))
				if g.Return < end {
					violations = append(violations, LockDelayViolation{Hold: hold, Grant: g})
				}
			}
		}
	}
	if sum.Grants > 0 {
		sum.MinMargin = margin
	}
	if len(violations) > 0 {
		return sum, &LockDelayError{Violations: violations}
	}
	return sum, nil
}

// touchedAgain says whether hold's owner has another op among named that may have been
// applied after hold's call.
func touchedAgain(named []Op, hold Op) bool {
	for _, op := range named {
		if op.Owner != hold.Owner || (op.Client == hold.Client && op.Call == hold.Call) {
			continue
		}
		if op.Status != StatusOK || op.Return > hold.Call {
			return true
		}
	}
	return false
}

// granted says whether op is an acknowledged grant.
func granted(op Op) bool {
	if op.Status != StatusOK {
		return false
	}
	switch op.Kind {
	case KindLock:
		return op.Token > 0
	case KindMLock:
		return op.Tokens != nil
	case KindSetNX:
		return op.Granted
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
