package check

import (
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The sequential specification of a group of locks used together: the names that MLOCK
// and MUNLOCK take and release as one, alongside LOCK, UNLOCK and OWNER on each of them.
//
// A group is a connected component of names: two names are in one group when some MLOCK or
// MUNLOCK of the history names both. Each group is checked on its own (porcupine's
// partitions), as CheckLinearizable checks each lock. The state is one lockState per name
// of the group (model.go), and single-name ops step that name's state exactly as the lock
// model does. The multi-name ops:
//
//	MLOCK a -> [t...]  legal only if every name is free or held by a; a free name is granted
//	                   with its token (t > that name's max; new tokens increase in the order
//	                   of the names, as PROTOCOL.md says),
//	                   a name a holds keeps its token (a re-grant; the first sight of the
//	                   token of an indeterminate grant, which must beat the name's max).
//	MLOCK a -> null    legal only if some name is held by another owner, or reserved.
//	MUNLOCK a -> n     legal only if a holds exactly n of the names; those become free.
//
// Reservations. A name released while the head of its queue is a waiting MLOCK stays
// reserved for it: LOCK and MLOCK without WAIT get null, OWNER shows it free. The model does
// not hold queues; instead a null reply to LOCK or MLOCK on a name that may be reserved is
// legal even while the name is free. A name may be reserved only while an MLOCK ... WAIT
// naming it is in flight (called before the null reply returned and not returned before it
// was called; an indeterminate one is in flight for ever after its call), and the input
// says so (groupInput.reserved). MLOCK without WAIT never queues, so reserves nothing.
//
// Indeterminate ops and pruning are the lock model's: an indeterminate MLOCK applies when
// every name is free or held by its owner, granting the free ones with unknown tokens; an
// indeterminate MUNLOCK frees what its owner holds; one that would change nothing is
// refused until every determinate op of the group is linearized.
type groupState struct {
	// locks holds the names' states by index into the group's sorted names; an index past
	// its end is a name in the zero state (free, max 0), so the zero groupState is every
	// group's initial state. Never modified in place.
	locks []lockState
	done  int // determinate ops linearized so far
}

// lock returns the state of the group's i-th name.
func (s groupState) lock(i int) lockState {
	if i < len(s.locks) {
		return s.locks[i]
	}
	return lockState{}
}

type groupInput struct {
	kind     Kind
	owner    string
	idx      []int // the op's names, as indices into the group's sorted names, in the order sent
	final    bool
	reserved bool // a null LOCK or MLOCK reply may come from a reserved name
	total    int  // determinate ops of this group
}

type groupOutput struct {
	opOutput
	tokens []int64 // MLOCK; nil for null
	count  int     // MUNLOCK
}

// with returns s with lock i replaced by l.
func (s groupState) with(i int, l lockState) groupState {
	locks := make([]lockState, max(len(s.locks), i+1))
	copy(locks, s.locks)
	locks[i] = l
	return groupState{locks: locks, done: s.done}
}

func (s groupState) equal(t groupState) bool {
	if s.done != t.done {
		return false
	}
	for i := range max(len(s.locks), len(t.locks)) {
		if s.lock(i) != t.lock(i) {
			return false
		}
	}
	return true
}

// hash agrees with equal: names in the zero state do not count.
func (s groupState) hash() uint64 {
	h := uint64(s.done) << 40
	for i, l := range s.locks {
		if l != (lockState{}) {
			h ^= (maphash.String(groupHashSeed, l.owner) ^ uint64(l.token)*0x9e3779b97f4a7c15 ^ uint64(l.max)<<1) * uint64(2*i+1)
		}
	}
	return h
}

func groupStep(s groupState, in groupInput, out groupOutput) (bool, groupState) {
	if out.unknown {
		next, changed := groupUnknown(s, in)
		return changed || s.done == in.total, next
	}
	ok, next := groupKnown(s, in, out)
	next.done++
	return ok, next
}

// groupUnknown applies an indeterminate op that took effect, and says if it changed anything.
func groupUnknown(s groupState, in groupInput) (groupState, bool) {
	switch in.kind {
	case KindMLock:
		next, changed := s, false
		for _, i := range in.idx {
			switch l := next.lock(i); {
			case l.owner == "":
				next, changed = next.with(i, lockState{owner: in.owner, max: l.max}), true
			case l.owner != in.owner:
				return s, false
			}
		}
		return next, changed
	case KindMUnlock:
		return release(s, in)
	}
	i := in.idx[0]
	l, changed := applyUnknown(s.lock(i), opInput{kind: in.kind, owner: in.owner})
	if !changed {
		return s, false
	}
	return s.with(i, l), true
}

// release frees every name of in that in.owner holds; it says if there was one.
func release(s groupState, in groupInput) (groupState, bool) {
	next, changed := s, false
	for _, i := range in.idx {
		if l := next.lock(i); l.owner != "" && l.owner == in.owner {
			next, changed = next.with(i, lockState{max: l.max}), true
		}
	}
	return next, changed
}

func groupKnown(s groupState, in groupInput, out groupOutput) (bool, groupState) {
	switch in.kind {
	case KindMLock:
		if out.tokens == nil {
			return in.reserved || heldByAnother(s, in), s
		}
		return mlock(s, in, out.tokens)
	case KindMUnlock:
		held := 0
		for _, i := range in.idx {
			if l := s.lock(i); l.owner != "" && l.owner == in.owner {
				held++
			}
		}
		next, _ := release(s, in)
		return out.count == held, next
	}
	i := in.idx[0]
	l := s.lock(i)
	if in.kind == KindLock && out.token == 0 && in.reserved && l.owner == "" {
		return true, s
	}
	ok, next := applyKnown(l, opInput{kind: in.kind, owner: in.owner, final: in.final}, out.opOutput)
	return ok, s.with(i, next)
}

func heldByAnother(s groupState, in groupInput) bool {
	for _, i := range in.idx {
		if l := s.lock(i); l.owner != "" && l.owner != in.owner {
			return true
		}
	}
	return false
}

// mlock applies an MLOCK granted with tokens, one per name of in.idx.
func mlock(s groupState, in groupInput, tokens []int64) (bool, groupState) {
	next := s
	var seen []int64 // tokens of new grants and first sights: all different
	var last int64   // the last new grant's token: they increase in the order given
	for j, i := range in.idx {
		l, t := s.lock(i), tokens[j]
		switch {
		case l.owner != "" && l.owner != in.owner:
			return false, s
		case l.owner == "" || l.token == 0: // a new grant, or the first sight of one's token
			if t <= l.max || slices.Contains(seen, t) || (l.owner == "" && t <= last) {
				return false, s
			}
			if l.owner == "" {
				last = t
			}
			seen = append(seen, t)
			next = next.with(i, lockState{owner: in.owner, token: t, max: t})
		case t != l.token: // a re-grant keeps its token
			return false, s
		}
	}
	return true, next
}

var groupHashSeed = maphash.MakeSeed()

// groupModel is the porcupine model of one group of locks; its partitions are the groups.
func groupModel() porcupine.Model {
	return porcupine.Model{
		Partition: partitionByKey,
		Init:      func() any { return groupState{} },
		Step: func(state, input, output any) (bool, any) {
			return groupStep(state.(groupState), input.(groupInput), output.(groupOutput))
		},
		Equal:             func(a, b any) bool { return a.(groupState).equal(b.(groupState)) },
		Hash:              func(state any) uint64 { return state.(groupState).hash() },
		DescribeOperation: describeGroupOperation,
		DescribeState: func(state any) string {
			s := state.(groupState)
			parts := make([]string, len(s.locks))
			for i, l := range s.locks {
				switch {
				case l.owner == "":
					parts[i] = fmt.Sprintf("#%d free (max %d)", i, l.max)
				case l.token == 0:
					parts[i] = fmt.Sprintf("#%d %s:? (max %d)", i, l.owner, l.max)
				default:
					parts[i] = fmt.Sprintf("#%d %s:%d", i, l.owner, l.token)
				}
			}
			return strings.Join(parts, ", ")
		},
		DescribeOperationMetadata: describeMetadata,
	}
}

func describeGroupOperation(input, output any) string {
	in, out := input.(groupInput), output.(groupOutput)
	if !in.kind.multi() {
		return describeOperation(opInput{kind: in.kind, owner: in.owner, final: in.final}, out.opOutput)
	}
	res := "?"
	switch {
	case out.unknown:
	case in.kind == KindMUnlock:
		res = fmt.Sprint(out.count)
	case out.tokens == nil:
		res = "null"
	default:
		res = fmt.Sprint(out.tokens)
	}
	return fmt.Sprintf("%s%v(%s) -> %s", in.kind, in.idx, in.owner, res)
}

// GroupOptions tune CheckGroups. The zero value is usable.
type GroupOptions struct {
	// Timeout bounds the search of each group, as LinearizabilityOptions.Timeout does.
	Timeout time.Duration
	// VisualizationPath, if set, is where porcupine's HTML visualization of the illegal
	// groups is written when the check finds one.
	VisualizationPath string
	// RequireFinalReads: as LinearizabilityOptions.RequireFinalReads, for every name.
	RequireFinalReads bool
}

// CheckGroups checks that the ops, LOCK, UNLOCK, OWNER, MLOCK and MUNLOCK, are
// linearizable with respect to mutexes with fencing tokens of which MLOCK takes several at
// once, all or none, and MUNLOCK releases several at once: the names of one MLOCK move
// together, no name has two holders, reads see the current owners and, with final reads,
// every acknowledged grant and release is still there. Indeterminate ops may or may not
// have taken effect; a null reply may come from a name reserved for a waiting MLOCK (see
// groupState). Ops should not carry leases (PX) or lock-delays: the model has no clock.
//
// It returns what it checked, and nil when every group is linearizable; a
// *LinearizabilityError (matching ErrNotLinearizable and/or ErrUndecided) whose failures
// are named by group (its names joined by "+"); an ErrBadHistory error for a malformed
// history. ops is not modified.
func CheckGroups(ops []Op, opts GroupOptions) (GroupSummary, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	groups := groupsOf(ops)
	reserved := reservable(ops)
	var sum GroupSummary
	pops, err := operations(ops, func(op Op) string { return groups[op.names()[0]].key }, func(_ int, op Op, total int) (any, any) {
		g := groups[op.names()[0]]
		names := op.names()
		in := groupInput{kind: op.Kind, owner: op.Owner, final: op.Final, total: total, idx: make([]int, len(names))}
		for j, n := range names {
			in.idx[j], _ = slices.BinarySearch(g.names, n)
		}
		if op.Status == StatusOK && (op.Kind == KindLock && op.Token == 0 || op.Kind == KindMLock && op.Tokens == nil) {
			in.reserved = reserved(op)
			sum.Nulls++
			if in.reserved {
				sum.Reservable++
			}
		}
		return in, groupOutput{opOutput: lockOutput(op), tokens: op.Tokens, count: op.Count}
	})
	if err != nil {
		return GroupSummary{}, err
	}
	for i, op := range ops {
		if op.Kind == KindSetNX {
			return GroupSummary{}, fmt.Errorf("%w: op #%d %s: SET NX is not part of the group model", ErrBadHistory, i, op)
		}
	}
	if opts.RequireFinalReads {
		if err := checkFinalReads(ops); err != nil {
			return GroupSummary{}, err
		}
	}
	sum.Groups = countGroups(groups)
	return sum, checkModel(groupModel(), pops, timeout, opts.VisualizationPath)
}

// GroupSummary says what CheckGroups looked at.
type GroupSummary struct {
	Groups int // groups of names (the partitions checked)
	// Nulls counts the null replies to LOCK and MLOCK; Reservable, those of them that came
	// while an MLOCK ... WAIT naming one of their names was in flight, which the model
	// allows even on free names (see groupState).
	Nulls, Reservable int
}

func countGroups(groups map[string]*group) int {
	seen := make(map[*group]bool)
	for _, g := range groups {
		seen[g] = true
	}
	return len(seen)
}

// group is one connected component of names.
type group struct {
	key   string   // the names joined by "+"
	names []string // sorted
}

// groupsOf finds the groups of a history: the connected components of the relation "named
// by one MLOCK or MUNLOCK" (union-find). It maps every name to its group.
func groupsOf(ops []Op) map[string]*group {
	parent := make(map[string]string)
	var find func(string) string
	find = func(n string) string {
		p, ok := parent[n]
		if !ok {
			parent[n] = n
			return n
		}
		if p == n {
			return n
		}
		r := find(p)
		parent[n] = r
		return r
	}
	for _, op := range ops {
		names := op.names()
		for _, n := range names {
			if a, b := find(names[0]), find(n); a != b {
				parent[max(a, b)] = min(a, b)
			}
		}
	}
	byRoot := make(map[string]*group)
	out := make(map[string]*group, len(parent))
	for n := range parent {
		r := find(n)
		g := byRoot[r]
		if g == nil {
			g = &group{}
			byRoot[r] = g
		}
		g.names = append(g.names, n)
		out[n] = g
	}
	for _, g := range byRoot {
		slices.Sort(g.names)
		g.key = strings.Join(g.names, "+")
	}
	return out
}

// reservable returns a function that says whether some name of op may have been reserved
// for a waiting MLOCK while op was in flight: an MLOCK ... WAIT naming it, other than op,
// that was not failed, was called before op returned, and did not return before op was
// called (an indeterminate one may wait for ever). Any owner's: the model does not assume
// how the server treats the reserving owner's own LOCK. (An MLOCK ... WAIT is not kept
// out by its own reservations: what it waits for is held or reserved by others.)
func reservable(ops []Op) func(Op) bool {
	waiting := make(map[string][]Op) // name -> MLOCK ... WAIT naming it
	for _, x := range ops {
		if x.Kind == KindMLock && x.Wait && x.Status != StatusFailed {
			for _, n := range x.Names {
				waiting[n] = append(waiting[n], x)
			}
		}
	}
	return func(op Op) bool {
		for _, n := range op.names() {
			for _, x := range waiting[n] {
				self := x.Client == op.Client && x.Call == op.Call
				if !self && x.Call <= op.Return && (x.Status != StatusOK || x.Return >= op.Call) {
					return true
				}
			}
		}
		return false
	}
}
