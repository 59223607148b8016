package check

import (
	"fmt"
	"hash/maphash"
	"math"
	"slices"

	"github.com/anishathalye/porcupine"
)

// The sequential specification of one lock, as porcupine sees it.
//
// State is (owner, token, max): owner "" means free; token is the holder's fencing token,
// 0 when the lock is held through an indeterminate grant whose token nobody saw; max is a
// lower bound of the highest token granted on this lock so far (tokens are global across
// names, so other locks' grants raise the real counter in between; the model only knows
// that a new grant here must beat every token seen here).
//
//	LOCK a -> t      free: t > max, becomes (a, t, t). held by a: t == token (re-grant);
//	                 if token is unknown (0), t > max and it becomes (a, t, t).
//	                 held by another: illegal.
//	LOCK a -> null   legal only while held by another owner.
//	SETNX a -> OK    legal only while free; becomes (a, 0, max): no token is seen.
//	SETNX a -> null  legal only while held (by anyone: Redis's NX).
//	UNLOCK a -> 1    legal only while held by a; becomes free (max kept).
//	UNLOCK a -> 0    legal only while not held by a.
//	OWNER -> o       legal only if o == owner.
//
// Indeterminate ops use porcupine's usual trick. Their return time is +∞ (MaxInt64), so
// the checker may linearize them anywhere after their call, including after every other
// op, where their effect is never observed: that placement is "it did not happen". Where
// they are linearized earlier the step applies their effect with any output: LOCK grants
// a free lock with an unknown token; UNLOCK frees a lock held by its owner. Indeterminate
// OWNER reads change nothing and are dropped. So one deterministic step covers both "it
// happened" and "it did not happen".
//
// Pruning: an indeterminate op that would change nothing (LOCK while held, UNLOCK while not
// held by its owner) is refused until every determinate op of the lock is linearized (the
// state counts them, the input carries the total). This is sound: removing a no-op step
// from a linearization changes no later state, and an op that never returns may always
// move to the end, where it is accepted. It keeps the search from trying every subset of
// pointless placements, which otherwise grows as 2^(indeterminate ops).
type lockState struct {
	owner string
	token int64
	max   int64
	done  int // determinate ops linearized so far
}

type opInput struct {
	kind  Kind
	owner string
	final bool
	total int // determinate ops of this lock

	write bool // RWLOCK WRITE
	limit int  // SEMLOCK
	// writerMayWait: an RWLOCK READ refused; some RWLOCK WRITE with WAIT on the name
	// overlaps it, so it may have been queued (see sharedmodel.go).
	writerMayWait bool
}

type opOutput struct {
	unknown  bool
	token    int64
	released bool
	granted  bool
	holder   string
	holders  []Holder // RWINFO, SEMINFO
}

func (s lockState) doneOps() int           { return s.done }
func (s lockState) countOne() lockState    { s.done++; return s }
func (s lockState) equal(o lockState) bool { return s == o }

// prunable is a model state that counts the determinate ops linearized, for the pruning
// above: doneOps reads the count, countOne returns the state with one more.
type prunable[S any] interface {
	doneOps() int
	countOne() S
}

// prunedStep is a model's step: the indeterminate-op trick and the pruning above, around
// the model's own effect of an indeterminate op (unknown: the next state, and whether it
// changed anything) and its step for a determinate op (known).
func prunedStep[S prunable[S]](s S, in opInput, out opOutput,
	unknown func(S, opInput) (S, bool), known func(S, opInput, opOutput) (bool, S)) (bool, S) {
	if out.unknown {
		next, changed := unknown(s, in)
		return changed || s.doneOps() == in.total, next
	}
	ok, next := known(s, in, out)
	return ok, next.countOne()
}

// applyUnknown applies an indeterminate op that took effect, and says if it changed
// anything.
func applyUnknown(s lockState, in opInput) (lockState, bool) {
	switch in.kind {
	case KindLock, KindSetNX:
		if s.owner == "" {
			return lockState{owner: in.owner, max: s.max, done: s.done}, true
		}
	case KindUnlock:
		if s.owner != "" && s.owner == in.owner {
			return lockState{max: s.max, done: s.done}, true
		}
	}
	return s, false
}

func applyKnown(s lockState, in opInput, out opOutput) (bool, lockState) {
	switch in.kind {
	case KindLock:
		t := out.token
		switch {
		case t == 0: // null: held by another
			return s.owner != "" && s.owner != in.owner, s
		case s.owner == "":
			return t > s.max, lockState{owner: in.owner, token: t, max: t, done: s.done}
		case s.owner != in.owner:
			return false, s
		case s.token == 0: // re-grant of an indeterminate grant: first sight of its token
			return t > s.max, lockState{owner: in.owner, token: t, max: t, done: s.done}
		default: // re-grant
			return t == s.token, s
		}
	case KindSetNX:
		if out.granted {
			return s.owner == "", lockState{owner: in.owner, max: s.max, done: s.done}
		}
		return s.owner != "", s
	case KindUnlock:
		held := s.owner != "" && s.owner == in.owner
		if out.released {
			return held, lockState{max: s.max, done: s.done}
		}
		return !held, s
	case KindOwner:
		return out.holder == s.owner, s
	}
	return false, s
}

var hashSeed = maphash.MakeSeed()

// lockModel is the porcupine model of one lock.
func lockModel() porcupine.Model {
	return newModel(lockState{},
		func(s lockState, in opInput, out opOutput) (bool, lockState) {
			return prunedStep(s, in, out, applyUnknown, applyKnown)
		},
		lockState.equal,
		func(s lockState) uint64 {
			return maphash.String(hashSeed, s.owner) ^ uint64(s.token)*0x9e3779b97f4a7c15 ^ uint64(s.max)<<1 ^ uint64(s.done)<<40
		},
		func(s lockState) string {
			switch {
			case s.owner == "":
				return fmt.Sprintf("free (max token %d)", s.max)
			case s.token == 0:
				return fmt.Sprintf("held by %s, token unknown (max %d)", s.owner, s.max)
			}
			return fmt.Sprintf("held by %s, token %d", s.owner, s.token)
		})
}

// newModel builds a porcupine model from a model's typed parts: the initial state, the
// step, equality, hash and description of its states. Histories are split by opMeta.key
// (partitionByKey): the lock's name, or its group's.
func newModel[S any](zero S, step func(S, opInput, opOutput) (bool, S), equal func(S, S) bool,
	hash func(S) uint64, describe func(S) string) porcupine.Model {
	return porcupine.Model{
		Partition: partitionByKey,
		Init:      func() any { return zero },
		Step: func(state, input, output any) (bool, any) {
			return step(state.(S), input.(opInput), output.(opOutput))
		},
		Equal:                     func(a, b any) bool { return equal(a.(S), b.(S)) },
		Hash:                      func(state any) uint64 { return hash(state.(S)) },
		DescribeOperation:         describeOperation,
		DescribeState:             func(state any) string { return describe(state.(S)) },
		DescribeOperationMetadata: describeMetadata,
	}
}

// opMeta travels with each porcupine operation so failures can name the original op.
type opMeta struct {
	index int    // position in the slice given to the checker
	key   string // the partition: the lock's name (CheckLinearizable) or group (CheckGroups)
	op    Op
}

func describeMetadata(info any) string {
	m, ok := info.(opMeta)
	if !ok {
		return ""
	}
	return fmt.Sprintf("op #%d: %s", m.index, m.op)
}

// partitionByKey splits a history by opMeta.key, in the order of the keys, so that both
// passes of a check (checkModel, explain) see the partitions in the same order.
func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := make(map[string][]porcupine.Operation)
	for _, op := range history {
		k := op.Metadata.(opMeta).key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([][]porcupine.Operation, len(keys))
	for i, k := range keys {
		out[i] = byKey[k]
	}
	return out
}

func describeOperation(input, output any) string {
	in, out := input.(opInput), output.(opOutput)
	if in.kind.shared() {
		return describeShared(in, out)
	}
	var res string
	switch {
	case out.unknown:
		res = "?"
	case in.kind == KindLock && out.token == 0, in.kind == KindOwner && out.holder == "":
		res = "null"
	case in.kind == KindLock:
		res = fmt.Sprint(out.token)
	case in.kind == KindSetNX && out.granted:
		res = "OK"
	case in.kind == KindSetNX:
		res = "null"
	case in.kind == KindUnlock && out.released:
		res = "1"
	case in.kind == KindUnlock:
		res = "0"
	default:
		res = out.holder
	}
	switch in.kind {
	case KindOwner:
		if in.final {
			return "final OWNER -> " + res
		}
		return "OWNER -> " + res
	default:
		return fmt.Sprintf("%s(%s) -> %s", in.kind, in.owner, res)
	}
}

// toOperations converts a history for the lock model (see operations).
func toOperations(ops []Op) ([]porcupine.Operation, error) {
	for i, op := range ops {
		if op.Kind.multi() {
			return nil, fmt.Errorf("%w: op #%d %s: a multi-lock op (check it with CheckGroups)", ErrBadHistory, i, op)
		}
	}
	mayWait := writerMayWait(ops)
	return operations(ops, func(op Op) string { return op.Name }, func(i int, op Op, total int) (any, any) {
		holders, _ := parseHolders(op.Holders) // validated
		out := lockOutput(op)
		out.holders = holders
		return opInput{kind: op.Kind, owner: op.Owner, final: op.Final, total: total,
			write: op.Write, limit: op.Limit, writerMayWait: mayWait[i]}, out
	})
}

func lockOutput(op Op) opOutput {
	return opOutput{unknown: op.Status != StatusOK, token: op.Token, released: op.Released, granted: op.Granted, holder: op.Holder}
}

// operations converts a history for porcupine: indeterminate ops return at +∞;
// indeterminate reads and failed ops are dropped. key names each op's partition; conv
// makes its model input and output, given the number of determinate ops of its partition
// (for pruning). It rejects malformed ops.
func operations(ops []Op, key func(Op) string, conv func(i int, op Op, total int) (in, out any)) ([]porcupine.Operation, error) {
	total := make(map[string]int) // determinate ops per partition
	for i, op := range ops {
		if err := validate(op); err != nil {
			return nil, fmt.Errorf("%w: op #%d %s: %v", ErrBadHistory, i, op, err)
		}
		if op.Status == StatusOK {
			total[key(op)]++
		}
	}
	out := make([]porcupine.Operation, 0, len(ops))
	for i, op := range ops {
		if op.Status == StatusFailed {
			continue
		}
		unknown := op.Status != StatusOK
		if unknown && op.Kind.reads() {
			continue
		}
		ret := op.Return
		if unknown {
			ret = math.MaxInt64
		}
		k := key(op)
		in, res := conv(i, op, total[k])
		out = append(out, porcupine.Operation{
			ClientId: op.Client,
			Input:    in,
			Call:     op.Call,
			Output:   res,
			Return:   ret,
			Metadata: opMeta{index: i, key: k, op: op},
		})
	}
	return out, nil
}

func validate(op Op) error {
	switch {
	case !op.Kind.valid():
		return fmt.Errorf("invalid kind")
	case op.Kind.multi():
		if err := validateNames(op); err != nil {
			return err
		}
	case op.Name == "":
		return fmt.Errorf("empty lock name")
	}
	switch {
	case !op.Kind.reads() && op.Owner == "":
		return fmt.Errorf("empty owner")
	case op.Status > StatusFailed:
		return fmt.Errorf("invalid status")
	case op.Client < 0:
		return fmt.Errorf("negative client id")
	case op.Status == StatusOK && op.Return < op.Call:
		return fmt.Errorf("returns before its call")
	case op.Kind.shared():
		return validateShared(op)
	}
	return nil
}

// validateNames checks the names of an MLOCK or MUNLOCK and the shape of an MLOCK's reply.
func validateNames(op Op) error {
	if len(op.Names) == 0 {
		return fmt.Errorf("no names")
	}
	seen := make(map[string]bool, len(op.Names))
	for _, n := range op.Names {
		if n == "" || seen[n] {
			return fmt.Errorf("empty or repeated name %q", n)
		}
		seen[n] = true
	}
	if op.Kind == KindMLock && op.Status == StatusOK && op.Tokens != nil && len(op.Tokens) != len(op.Names) {
		return fmt.Errorf("%d tokens for %d names", len(op.Tokens), len(op.Names))
	}
	return nil
}
