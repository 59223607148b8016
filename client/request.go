package client

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// request is used by one goroutine, for one call. It is what one call of
// TryLock, Lock (or another kind's) takes: one name, with k's command; or,
// for TryLockAll and LockAll (multi), up to maxNames LOCK names at once
// with MLOCK.
type request struct {
	c     *Client
	k     kind
	names []string // as given; the tokens come back in this order
	multi bool
	ttl   time.Duration
	slots []*slot // slots[i] is names[i]'s, once takeSlots has it
}

// maxNames is the most names of one MLOCK or MUNLOCK.
const maxNames = 64

// single is the request of TryLock, Lock and their kinds.
func (c *Client) single(k kind, name string, ttl time.Duration) *request {
	return &request{c: c, k: k, names: []string{name}, ttl: ttl}
}

// check rejects r's bad arguments before anything is taken or sent.
func (r *request) check() error {
	if err := checkTTL(r.ttl); err != nil {
		return err
	}
	if r.k.delay && r.c.delaySet {
		if _, err := r.c.delayMS(); err != nil {
			return err
		}
	}
	if r.multi {
		return checkNames(r.names)
	}
	return nil
}

// checkNames: 1..maxNames names, none twice.
func checkNames(names []string) error {
	if len(names) == 0 || len(names) > maxNames {
		return fmt.Errorf("%w: %d names, want 1..%d", ErrInvalidNames, len(names), maxNames)
	}
	for i, n := range names {
		if slices.Contains(names[:i], n) {
			return fmt.Errorf("%w: %q given twice", ErrInvalidNames, n)
		}
	}
	return nil
}

// takeSlots takes the Client's slot of every name, as takeSlot does, in the
// order of their slot keys: two requests of one Client that share names
// then never hold one slot each while waiting for the other's. On failure
// it holds none.
func (r *request) takeSlots(ctx context.Context, wait bool) error {
	r.slots = make([]*slot, len(r.names))
	order := make([]int, len(r.names))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return strings.Compare(r.k.slotKey(r.names[a]), r.k.slotKey(r.names[b]))
	})
	for _, i := range order {
		s, err := r.c.takeSlot(ctx, r.k.slotKey(r.names[i]), wait)
		if err != nil {
			r.dropSlots()
			return err
		}
		r.slots[i] = s
	}
	return nil
}

// dropSlots frees the slots takeSlots took.
func (r *request) dropSlots() {
	for i, s := range r.slots {
		if s != nil {
			r.c.dropSlot(r.k.slotKey(r.names[i]), s)
			r.slots[i] = nil
		}
	}
}

// send sends r's command once, with WAIT wait unless 0: k's lock command
// name owner ... or MLOCK numnames name ... owner, then [PX ttl] [WAIT
// wait] [DELAY ms]. It returns a token per name, or redis.Nil.
func (r *request) send(ctx context.Context, wait time.Duration) ([]int64, error) {
	var args []any
	if r.multi {
		args = append(make([]any, 0, len(r.names)+9), "MLOCK", len(r.names))
		for _, n := range r.names {
			args = append(args, n)
		}
		args = append(args, r.c.owner)
	} else {
		args = r.k.lockArgs(r.names[0], r.c.owner)
	}
	if r.ttl > 0 {
		args = append(args, "PX", r.ttl.Milliseconds())
	}
	if wait > 0 {
		args = append(args, "WAIT", wait.Milliseconds())
	}
	if r.k.delay && r.c.delaySet {
		ms, _ := r.c.delayMS() // checked by check
		args = append(args, "DELAY", ms)
	}
	cmd := r.c.rdb.Do(ctx, args...)
	if !r.multi {
		t, err := cmd.Int64()
		if err != nil {
			return nil, err
		}
		return []int64{t}, nil
	}
	tokens, err := cmd.Int64Slice()
	if err == nil && len(tokens) != len(r.names) {
		return nil, fmt.Errorf("MLOCK replied %d tokens for %d names", len(tokens), len(r.names))
	}
	return tokens, err
}

// grant returns a Lock per name, holding its slot, for the tokens of a
// command sent at sent; each renews on its own.
func (r *request) grant(tokens []int64, sent time.Time) []*Lock {
	locks := make([]*Lock, len(r.names))
	for i, n := range r.names {
		locks[i] = r.c.newLock(r.k, n, r.ttl, tokens[i], sent, r.slots[i])
	}
	return locks
}

// abandon ends a failed request: when unsure, a command may have been
// granted without the reply reaching us, so it sends a best-effort UNLOCK
// (MUNLOCK for multi; safe while this Client's slots for the names are
// held: no Lock of ours has them); then it frees the slots. It returns
// ctx.Err() once ctx has ended, else err.
func (r *request) abandon(ctx context.Context, err error, unsure bool) error {
	if unsure {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		r.c.rdb.Do(uctx, r.unlockArgs()...) // best effort; a lease ends on its own
		cancel()
	}
	r.dropSlots()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if r.multi {
		return wrapErr("MLOCK", strings.Join(r.names, " "), err)
	}
	return wrapErr(r.k.lock, r.names[0], err)
}

// unlockArgs releases every name of r: k's unlock command, or MUNLOCK.
func (r *request) unlockArgs() []any {
	if !r.multi {
		return []any{r.k.unlock, r.names[0], r.c.owner}
	}
	return munlockArgs(r.names, r.c.owner)
}

// munlockArgs is MUNLOCK numnames name ... owner.
func munlockArgs(names []string, owner string) []any {
	args := append(make([]any, 0, len(names)+3), "MUNLOCK", len(names))
	for _, n := range names {
		args = append(args, n)
	}
	return append(args, owner)
}
