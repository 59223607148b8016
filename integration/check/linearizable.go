package check

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Sentinels matched with errors.Is against the errors the checkers return.
var (
	// ErrNotLinearizable: some lock's history has no linearization (a proven bug).
	ErrNotLinearizable = errors.New("check: history is not linearizable")
	// ErrUndecided: the linearizability search ran out of time (no verdict; not a bug).
	ErrUndecided = errors.New("check: linearizability undecided within the time limit")
	// ErrBadHistory: the history is malformed or lacks what the check was asked to prove.
	ErrBadHistory = errors.New("check: bad history")
)

// DefaultTimeout bounds a linearizability search when LinearizabilityOptions.Timeout is 0.
const DefaultTimeout = time.Minute

// LinearizabilityOptions tune CheckLinearizable. The zero value is usable.
type LinearizabilityOptions struct {
	// Timeout bounds the search of each lock; locks are searched in parallel
	// (DefaultTimeout if <= 0). When a lock is
	// found illegal, a second, verbose search of the illegal locks (for the report and the
	// visualization) gets the same bound, so the call takes at most twice Timeout.
	Timeout time.Duration
	// VisualizationPath, if set, is where porcupine's HTML visualization of the illegal
	// locks is written when the check finds one.
	VisualizationPath string
	// RequireFinalReads makes a history without a successful final read (History.FinalReads)
	// of every lock it mentions an ErrBadHistory: set it when the check must prove durability.
	RequireFinalReads bool
}

// LockFailure describes one lock (or group, CheckGroups) whose history has no linearization.
type LockFailure struct {
	Name  string // the lock's name; for CheckGroups, the group's names joined by "+"
	Total int    // ops of this lock that were checked (indeterminate reads are dropped)
	// Linearized is the longest prefix of a linearization the search found, in order.
	Linearized []Op
	// Stuck are the ops that could be linearized next after Linearized (called before any
	// remaining op returned); none of them is legal in the state Linearized leads to.
	Stuck []Op
}

// LinearizabilityError is the error CheckLinearizable returns for a failed or undecided
// check. It matches ErrNotLinearizable if Illegal is not empty, and ErrUndecided if
// Undecided is not empty.
type LinearizabilityError struct {
	Illegal   []LockFailure // locks proven not linearizable, by name
	Undecided []string      // locks whose search ran out of time, sorted
	Timeout   time.Duration // the bound that was used
	// Visualization is the HTML file written (empty if none); VisualizationErr says why
	// writing it failed.
	Visualization    string
	VisualizationErr error
}

func (e *LinearizabilityError) Unwrap() []error {
	var errs []error
	if len(e.Illegal) > 0 {
		errs = append(errs, ErrNotLinearizable)
	}
	if len(e.Undecided) > 0 {
		errs = append(errs, ErrUndecided)
	}
	return errs
}

const maxOpsInMessage = 6

func (e *LinearizabilityError) Error() string {
	var b strings.Builder
	for _, f := range e.Illegal {
		fmt.Fprintf(&b, "check: lock %q is not linearizable: %d of its %d ops linearize", f.Name, len(f.Linearized), f.Total)
		if n := len(f.Linearized); n > 0 {
			fmt.Fprintf(&b, "; the linearization ends with [%s]", joinOps(f.Linearized[max(0, n-3):]))
		}
		fmt.Fprintf(&b, "; then none of these can come next: [%s]\n", joinOps(f.Stuck))
	}
	if len(e.Undecided) > 0 {
		fmt.Fprintf(&b, "check: linearizability of locks %q undecided within %v "+
			"(the search grows with indeterminate ops per lock: rotate lock names or shorten the run)\n", e.Undecided, e.Timeout)
	}
	switch {
	case e.Visualization != "":
		fmt.Fprintf(&b, "check: visualization in %s\n", e.Visualization)
	case e.VisualizationErr != nil:
		fmt.Fprintf(&b, "check: visualization not written: %v\n", e.VisualizationErr)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func joinOps(ops []Op) string {
	s := make([]string, 0, min(len(ops), maxOpsInMessage)+1)
	for i, op := range ops {
		if i == maxOpsInMessage {
			s = append(s, fmt.Sprintf("... %d more", len(ops)-i))
			break
		}
		s = append(s, op.String())
	}
	return strings.Join(s, "; ")
}

// CheckLinearizable checks that, for every lock name, the ops on it are linearizable with
// respect to a mutex with fencing tokens (the model in model.go): no two holders at once,
// a new grant beats every token seen on the lock, a re-grant repeats the token, reads see
// the current owner (no stale reads), and, with final reads, every acknowledged grant and
// release is still there. Indeterminate ops may or may not have taken effect. A history of
// read/write lock and semaphore ops is checked the same way against their model
// (sharedmodel.go): never a writer with a reader or a second writer, never more than limit
// holders, rising tokens, INFO replies that show the current holders.
//
// It returns nil when every lock is linearizable; a *LinearizabilityError (matching
// ErrNotLinearizable and/or ErrUndecided) otherwise; an ErrBadHistory error for a malformed
// history. ops is not modified.
func CheckLinearizable(ops []Op, opts LinearizabilityOptions) error {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	pops, err := toOperations(ops)
	if err != nil {
		return err
	}
	if opts.RequireFinalReads {
		if err := checkFinalReads(ops); err != nil {
			return err
		}
	}
	model, err := modelOf(ops)
	if err != nil {
		return err
	}
	return checkModel(model, pops, timeout, opts.VisualizationPath)
}

// checkModel checks each partition of pops (partitionByKey) against model, in parallel,
// each bounded by timeout, and explains the illegal ones (see LinearizabilityError).
func checkModel(model porcupine.Model, pops []porcupine.Operation, timeout time.Duration, visualization string) error {
	parts := model.Partition(pops)
	if len(parts) == 0 {
		return nil
	}

	// Fast pass: every partition on its own goroutine, not verbose, each bounded by timeout.
	single := model
	single.Partition = nil
	results := make([]porcupine.CheckResult, len(parts))
	var wg sync.WaitGroup
	for i, part := range parts {
		wg.Go(func() { results[i] = porcupine.CheckOperationsTimeout(single, part, timeout) })
	}
	wg.Wait()

	lerr := &LinearizabilityError{Timeout: timeout}
	var illegal [][]porcupine.Operation
	for i, r := range results {
		name := parts[i][0].Metadata.(opMeta).key
		switch r {
		case porcupine.Illegal:
			illegal = append(illegal, parts[i])
		case porcupine.Unknown:
			lerr.Undecided = append(lerr.Undecided, name)
		}
	}
	if len(illegal) == 0 && len(lerr.Undecided) == 0 {
		return nil
	}
	if len(illegal) > 0 {
		explain(lerr, model, illegal, timeout, visualization)
	}
	return lerr
}

// modelOf returns the model of a history's namespace: the lock model for LOCK, UNLOCK,
// OWNER and SET NX; the read/write lock and semaphore model for theirs. A history of both
// is refused: they are different namespaces, and one name may be in both.
func modelOf(ops []Op) (porcupine.Model, error) {
	i := slices.IndexFunc(ops, func(op Op) bool { return op.Kind.shared() })
	if i < 0 {
		return lockModel(), nil
	}
	if j := slices.IndexFunc(ops, func(op Op) bool { return !op.Kind.shared() }); j >= 0 {
		return porcupine.Model{}, fmt.Errorf("%w: op #%d %s and op #%d %s are of different namespaces: check them apart",
			ErrBadHistory, i, ops[i], j, ops[j])
	}
	return sharedModel(), nil
}

// explain reruns the illegal locks verbosely to name the ops involved and to draw them.
func explain(lerr *LinearizabilityError, model porcupine.Model, illegal [][]porcupine.Operation, timeout time.Duration, path string) {
	var all []porcupine.Operation
	for _, p := range illegal {
		all = append(all, p...)
	}
	_, info := porcupine.CheckOperationsVerbose(model, all, timeout)
	partials := info.PartialLinearizations() // same partition order: both sort by name
	for i, part := range illegal {
		var longest []int
		if i < len(partials) {
			for _, l := range partials[i] {
				if len(l) > len(longest) {
					longest = l
				}
			}
		}
		lerr.Illegal = append(lerr.Illegal, failure(part, longest))
	}
	if path != "" {
		if err := porcupine.VisualizePath(model, info, path); err != nil {
			lerr.VisualizationErr = err
		} else {
			lerr.Visualization = path
		}
	}
}

func failure(part []porcupine.Operation, longest []int) LockFailure {
	f := LockFailure{Name: part[0].Metadata.(opMeta).key, Total: len(part)}
	in := make([]bool, len(part))
	for _, id := range longest {
		in[id] = true
		f.Linearized = append(f.Linearized, part[id].Metadata.(opMeta).op)
	}
	minRet := int64(math.MaxInt64)
	for id, op := range part {
		if !in[id] {
			minRet = min(minRet, op.Return)
		}
	}
	for id, op := range part {
		if !in[id] && op.Call <= minRet {
			f.Stuck = append(f.Stuck, op.Metadata.(opMeta).op)
		}
	}
	// Completed ops first: an indeterminate op is rarely the culprit.
	slices.SortStableFunc(f.Stuck, func(a, b Op) int {
		if (a.Status == StatusOK) != (b.Status == StatusOK) {
			if a.Status == StatusOK {
				return -1
			}
			return 1
		}
		return 0
	})
	return f
}

// checkFinalReads requires a successful final read of every lock the history mentions.
func checkFinalReads(ops []Op) error {
	names := make(map[string]bool) // name -> has a successful final read
	for _, op := range ops {
		for _, n := range op.names() {
			names[n] = names[n] || (op.Final && op.Kind.reads() && op.Status == StatusOK)
		}
	}
	var missing []string
	for n, ok := range names {
		if !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return fmt.Errorf("%w: no successful final read of locks %q: durability not proven", ErrBadHistory, missing)
}
