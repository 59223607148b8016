package replication

import (
	"context"
	"errors"
	"time"

	"github.com/lockd/lockd/lock"
)

// Errors of Execute, ExecuteAll and ExecuteWait. Compare with errors.Is.
// Each says whether the command may have taken effect: ErrNoLeader and
// ErrClosed only when it certainly did not, because it was never sent;
// once it may have reached a leader the error is ErrTimeout or
// ErrClosedUnknown.
var (
	// ErrNoLeader: no leader was known for the whole request timeout (or
	// until ctx ended); the command was never sent and did not take effect.
	ErrNoLeader = errors.New("no leader")
	// ErrTimeout: the command was sent to a leader but this node did not
	// learn its result in time; it may or may not take effect.
	ErrTimeout = errors.New("request timed out; outcome unknown")
	// ErrClosed: the node shut down before the command was sent; it did not
	// take effect.
	ErrClosed = errors.New("node closed")
	// ErrClosedUnknown: the node shut down after the command was sent; it
	// may or may not take effect.
	ErrClosedUnknown = errors.New("node closed; outcome unknown")
	// ErrIDConflict: the table remembered the request's id for a different
	// command (lock.Conflict); nothing was done. lockd never reuses an id,
	// so this points at a bug or a forged frame.
	ErrIDConflict = errors.New("request id reused by a different command; not applied")
)

// outcome turns a result into await's return values.
func outcome(r lock.Result) (lock.Result, error) {
	if r.Value == lock.Conflict {
		return lock.Result{}, ErrIDConflict
	}
	return r, nil
}

// resendAfter is how long Execute waits for a result before sending the same
// request again to the (same or new) leader.
const resendAfter = time.Second

// Execute has the cluster apply cmd and returns its result (see lock.Result)
// once this node has applied it, so a read on this node that follows sees it.
// It gives cmd a cluster-unique ID; the command is sent to the leader again
// after a leader change or resendAfter without an answer, and acts once
// however often it arrives. Execute returns by ctx's deadline or the node's
// request timeout (plus up to one TickInterval: see deadline), whichever is
// first. For an OpLockWait it returns as soon
// as the command is applied: lock.Queued when it joined a queue (use
// ExecuteWait to wait for the turn).
func (n *Node) Execute(ctx context.Context, cmd lock.Command) (int64, error) {
	r, err := n.Do(ctx, cmd)
	return r.Value, err
}

// Do is Execute for any command: it returns the whole result, with the
// reply of a key-space command. A script request (lock.OpScript) is run by
// the leader, and its effects are what this node applies; when the keys it
// touched changed before its effects reached the log (lock.Retry), Do sends
// it again.
func (n *Node) Do(ctx context.Context, cmd lock.Command) (lock.Result, error) {
	if err := n.failed(); err != nil {
		return lock.Result{}, err
	}
	id, err := n.newID()
	if err != nil {
		return lock.Result{}, err
	}
	cmd.ID = id
	result := n.pending.register(cmd.ID)
	defer n.pending.cancel(cmd.ID)
	return n.await(ctx, n.deadline(ctx), cmd, result, 0)
}

// ExecuteAll executes cmds together, as a client's pipeline: all are sent
// to the leader at once and in order, so they share its next entries instead
// of waiting for one commit each, and their results come back in order.
// Each acts as Execute's would; none may be an OpLockWait. Commands on the
// same lock should not share a call: a resend after a leader change may
// reorder commands that were sent together.
func (n *Node) ExecuteAll(ctx context.Context, cmds []lock.Command) ([]lock.Result, []error) {
	vs, errs := make([]lock.Result, len(cmds)), make([]error, len(cmds))
	if err := n.failed(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return vs, errs
	}
	deadline := n.deadline(ctx)
	results := make([]<-chan lock.Result, len(cmds))
	for i := range cmds {
		id, err := n.newID()
		if err != nil {
			for j := range errs {
				errs[j] = err
			}
			for _, c := range cmds[:i] {
				n.pending.cancel(c.ID)
			}
			return vs, errs
		}
		cmds[i].ID = id
		results[i] = n.pending.register(cmds[i].ID)
	}
	lead := n.pub.leader.Load()
	if lead != 0 {
		for _, c := range cmds {
			n.route(lead, c)
		}
	}
	for i, c := range cmds {
		vs[i], errs[i] = n.await(ctx, deadline, c, results[i], lead)
		n.pending.cancel(c.ID)
	}
	return vs, errs
}

// deadline is when a request must have its answer. exact is set when ctx's
// deadline, earlier than the request timeout, is the binding one: await
// then keeps a timer for it. The node's own request timeout is checked at
// each raft tick instead, so that the hot path of every write needs no
// timer of its own; it may end up to one TickInterval late.
type deadline struct {
	at    time.Time
	exact bool
}

// deadline is the deadline of a request made now: the request timeout from
// now, or ctx's deadline if that is earlier.
func (n *Node) deadline(ctx context.Context) deadline {
	at := time.Now().Add(n.cfg.RequestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(at) {
		return deadline{at: d, exact: true}
	}
	return deadline{at: at}
}

// ExecuteWait runs an OpLockWait: it returns the token once the lock is this
// request's, or 0 when cmd.Wait ms pass first. When the wait runs out here,
// or ctx ends while the request is queued, it asks the cluster to cancel the
// request and answers with whatever applied first, the grant or the cancel,
// so a caller never misses a lock granted to it; a request withdrawn because
// ctx ended is answered 0 and ctx's error. The cancel has a request timeout
// of its own, whatever ctx says. Until the request's first result (queued or
// final) ctx's deadline bounds the wait but its cancellation does not end
// it: only a request known to be queued can be cancelled. A leader change
// does not lose the queued request: the queue is in the replicated table.
func (n *Node) ExecuteWait(ctx context.Context, cmd lock.Command) (int64, error) {
	r, err := n.DoWait(ctx, cmd)
	return r.Value, err
}

// DoWait is ExecuteWait for any waiting command (an OpLockWait, or an
// OpRWLock or OpSemLock with a Wait): it returns the whole first result
// that is not Queued, with the reply that refuses a command (a shared
// command's error), or the final result of a queued one.
func (n *Node) DoWait(ctx context.Context, cmd lock.Command) (lock.Result, error) {
	if err := n.failed(); err != nil {
		return lock.Result{}, err
	}
	id, err := n.newID()
	if err != nil {
		return lock.Result{}, err
	}
	cmd.ID = id
	result := n.pending.register(cmd.ID)
	defer n.pending.cancel(cmd.ID)
	r, err := n.await(context.WithoutCancel(ctx), n.deadline(ctx), cmd, result, 0)
	if err != nil || r.Value != lock.Queued {
		return r, err
	}
	turn := time.NewTimer(time.Duration(cmd.Wait) * time.Millisecond)
	defer turn.Stop()
	withdrawn := false
	for queued := true; queued; {
		select {
		case r := <-result:
			if r.Value != lock.Queued {
				return r, nil
			}
		case <-turn.C:
			queued = false
		case <-ctx.Done():
			queued, withdrawn = false, true
		case <-n.stopc:
			return lock.Result{}, ErrClosedUnknown
		case <-n.haltc:
			return lock.Result{}, ErrClosedUnknown
		}
	}
	cancel := lock.Command{Op: lock.OpCancel, Name: cmd.Name, Owner: cmd.Owner, Target: cmd.ID}
	if _, err := n.Execute(context.WithoutCancel(ctx), cancel); err != nil {
		return lock.Result{}, sentBefore(err) // the request may still be granted
	}
	// The cancel is applied here, so the request's final result was too.
	late := time.NewTimer(n.cfg.RequestTimeout)
	defer late.Stop()
	for {
		select {
		case r := <-result:
			switch {
			case r.Value == lock.Queued:
			case r.Value == 0 && withdrawn:
				return lock.Result{}, ctx.Err()
			default:
				return r, nil
			}
		case <-late.C:
			return lock.Result{}, ErrTimeout
		case <-n.stopc:
			return lock.Result{}, ErrClosedUnknown
		case <-n.haltc:
			return lock.Result{}, ErrClosedUnknown
		}
	}
}

// sentBefore is a request's error when a command sent after it (its cancel)
// failed with err: the request itself was sent, so its outcome is unknown.
func sentBefore(err error) error {
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrClosedUnknown) {
		return ErrClosedUnknown
	}
	return ErrTimeout
}

// await sends cmd to the leader until this node has applied it, and
// returns its first result, or an error at the deadline. sentTo is the
// leader cmd was already sent to, 0 if none. It is the hot path of every
// write: it waits on the node's tick (see published.ticked) to resend and
// to check its deadline, and needs a timer only for an exact deadline.
func (n *Node) await(ctx context.Context, dl deadline, cmd lock.Command, result <-chan lock.Result, sentTo uint64) (lock.Result, error) {
	var timeout <-chan time.Time
	if dl.exact {
		t := time.NewTimer(time.Until(dl.at))
		defer t.Stop()
		timeout = t.C
	}
	sent := sentTo != 0
	resendAt := time.Now().Add(resendAfter)
	for {
		// The deadline is looked at before every wait, not only after a
		// tick: ExecuteAll awaits its commands one after another against
		// one deadline, and each would otherwise wait a tick past it.
		now := time.Now()
		if !now.Before(dl.at) {
			select {
			case r := <-result: // came with the deadline: still in time
				if r.Value != lock.Retry {
					return outcome(r)
				}
			default:
			}
			return lock.Result{}, n.expired(sent)
		}
		if !now.Before(resendAt) {
			sentTo = 0 // no answer yet: send again
		}
		changed, tick := n.pub.leaderChanged(), n.pub.ticked()
		if lead := n.pub.leader.Load(); lead != 0 && lead != sentTo {
			n.route(lead, cmd)
			sent, sentTo = true, lead
			resendAt = now.Add(resendAfter)
		}
		select {
		case r := <-result:
			if r.Value == lock.Retry {
				result = n.pending.register(cmd.ID) // Retry is not remembered: a new result will come
				sentTo = 0
				continue
			}
			return outcome(r)
		case <-changed:
			sentTo = 0 // send again to whoever leads now
		case <-tick:
		case <-timeout:
		case <-ctx.Done():
			return lock.Result{}, n.expired(sent)
		case <-n.stopc:
			return lock.Result{}, closed(sent)
		case <-n.haltc:
			return lock.Result{}, closed(sent)
		}
	}
}

// closed is await's error when the node stops.
func closed(sent bool) error {
	if sent {
		return ErrClosedUnknown
	}
	return ErrClosed
}

// expired is await's error when its time runs out.
func (n *Node) expired(sent bool) error {
	if sent {
		return ErrTimeout
	}
	return ErrNoLeader
}

// route hands cmd to the local proposer or forwards it to the leader.
func (n *Node) route(lead uint64, cmd lock.Command) {
	if lead == n.cfg.ID {
		n.submit(cmd)
		return
	}
	n.tr.Forward(lead, cmd)
}

// newID returns a request ID unique across the cluster and across restarts
// (see idSource). When the reservation of more ids cannot be written, the
// node's storage failed: it stops.
func (n *Node) newID() (uint64, error) {
	id, err := n.ids.next()
	if err != nil {
		n.stopOnError(err)
		return 0, n.failed()
	}
	return id, nil
}
