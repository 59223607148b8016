package server

import (
	"context"
	"errors"

	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/resp"
)

// Transactions: MULTI, EXEC, DISCARD, WATCH and UNWATCH, with Redis's
// semantics. Between MULTI and EXEC a client's commands are built and
// queued (+QUEUED); EXEC sends them, with the versions WATCH saw, as one
// lock.OpTx: the table runs them in one step, in order, or none of them
// when a watched key changed since WATCH read it (EXEC answers a null
// array). The state lives on the client (client.tx, client.watched) and is
// touched by its own goroutine only.

// Bounds of one transaction, so that it fits one forwarded frame and one
// raft entry: at most maxTxCommands commands, maxTxBytes of arguments,
// maxWatched watched keys and maxWatchBytes of their names.
const (
	maxTxCommands = 1024
	maxTxBytes    = 128 << 10
	maxWatched    = 1024
	maxWatchBytes = 64 << 10
)

// txState is a transaction being queued, owned by its client's goroutine.
type txState struct {
	queued []queuedCmd
	bytes  int  // the queued commands' arguments
	failed bool // a command was refused while queueing: EXEC answers EXECABORT
}

// queuedCmd is one command of a transaction. UNWATCH inside MULTI is
// queued as in Redis: it answers OK in EXEC's reply and is not sent (EXEC
// forgets the watches anyway).
type queuedCmd struct {
	spec    *commandSpec
	cmd     lock.Command
	unwatch bool
}

// runsInMulti reports whether spec's command runs at once between MULTI and
// EXEC, as in Redis, instead of being queued.
func runsInMulti(spec *commandSpec) bool {
	switch spec.name {
	case "multi", "exec", "discard", "watch", "quit":
		return true
	}
	return false
}

// queue queues p in the client's transaction and answers +QUEUED, or
// answers why it cannot be queued and marks the transaction failed: an
// unknown command, a wrong arity or arguments, a command that is not a
// key-space or lock command (it has no build func), a transaction too big.
func (s *Server) queue(c *client, r reply, p prepared) {
	tx := c.tx
	size := 0
	for _, a := range p.args {
		size += len(a)
	}
	var err error
	switch {
	case p.err != nil:
		err = p.err
	case p.spec.name == "unwatch":
		tx.queued = append(tx.queued, queuedCmd{spec: p.spec, unwatch: true})
	case p.spec.build == nil:
		err = errNotInMulti
	case len(tx.queued) >= maxTxCommands || tx.bytes+size > maxTxBytes:
		err = errTxTooBig
	default:
		tx.queued = append(tx.queued, queuedCmd{spec: p.spec, cmd: p.cmd})
		tx.bytes += size
	}
	if err != nil {
		tx.failed = true
		r.err(err)
		return
	}
	r.status("QUEUED")
}

// cmdMulti: MULTI starts a transaction.
func (s *Server) cmdMulti(c *client, r reply, args [][]byte) {
	if c.tx != nil {
		r.err(errNestedMulti)
		return
	}
	c.tx = &txState{}
	r.ok()
}

// cmdDiscard: DISCARD drops the transaction and the watches.
func (s *Server) cmdDiscard(c *client, r reply, args [][]byte) {
	if c.tx == nil {
		r.err(errDiscardNoMulti)
		return
	}
	c.tx, c.watched = nil, nil
	r.ok()
}

// cmdExec: EXEC runs the transaction and answers the array of its
// commands' replies; a null array when a watched key changed (nothing ran);
// -EXECABORT when a command was refused while queueing. A command the
// user's ACL rules no longer allow (they changed since it was queued) is
// not sent and answers -NOPERM in its place, as in Redis. Either way the
// transaction and the watches are over.
func (s *Server) cmdExec(c *client, r reply, args [][]byte) {
	tx, watched := c.tx, c.watched
	if tx == nil {
		r.err(errExecNoMulti)
		return
	}
	c.tx, c.watched = nil, nil
	if tx.failed {
		r.err(errExecAbort)
		return
	}
	u, ok := s.user(c.user)
	if !ok {
		c.quit = true
		c.conn.Close()
		r.err(errUserGone)
		return
	}
	denied := make([]error, len(tx.queued))
	sub := make([]lock.Command, 0, len(tx.queued))
	for i, q := range tx.queued {
		if q.unwatch {
			continue
		}
		if !u.Unrestricted() {
			denied[i] = permitQueued(u, q.spec, &q.cmd)
		}
		if denied[i] == nil {
			sub = append(sub, q.cmd)
		}
	}
	replies := resp.ArrayValue()
	if len(sub) > 0 || len(watched) > 0 {
		res, err := s.node.Do(context.Background(), lock.Command{Op: lock.OpTx, X: &lock.Extra{Sub: sub, Checks: watched}})
		switch {
		case err != nil:
			r.err(err)
			return
		case res.Reply == nil:
			r.err(errors.New("ERR transaction got no reply"))
			return
		}
		replies = *res.Reply
	}
	switch {
	case replies.Kind == resp.Nil:
		r.value(resp.Value{Kind: resp.NullArray})
		return
	case replies.Kind != resp.Array || len(replies.Array) != len(sub):
		r.value(replies) // an error
		return
	}
	r.array(len(tx.queued))
	r.res = nil // a queued command's error is not EXEC's
	next := replies.Array
	for i, q := range tx.queued {
		switch {
		case q.unwatch:
			r.ok()
			continue
		case denied[i] != nil:
			r.err(denied[i])
			continue
		}
		render(r, q.spec, next[0])
		next = next[1:]
	}
}

// cmdWatch: WATCH key [key ...] records each key's version on the local
// replica (0 when it does not exist), which EXEC checks. A key watched
// again keeps the version first seen.
func (s *Server) cmdWatch(c *client, r reply, args [][]byte) {
	if c.tx != nil {
		r.err(errWatchInMulti)
		return
	}
	seen := make(map[string]bool, len(c.watched)+len(args))
	bytes := 0
	for _, w := range c.watched {
		seen[w.Name] = true
		bytes += len(w.Name)
	}
	var names []string
	for _, a := range args[1:] {
		if err := s.checkName(a); err != nil {
			r.err(err)
			return
		}
		if !seen[string(a)] {
			seen[string(a)] = true
			names = append(names, string(a))
			bytes += len(a)
		}
	}
	if len(c.watched)+len(names) > maxWatched || bytes > maxWatchBytes {
		r.err(errWatchTooMany)
		return
	}
	if err := s.catchUp(c); err != nil {
		r.err(err)
		return
	}
	t := s.node.Table()
	for _, name := range names {
		info, _ := t.Get(name)
		c.watched = append(c.watched, lock.Check{Name: name, Version: info.Version})
	}
	r.ok()
}

// cmdUnwatch: UNWATCH forgets the watches.
func (s *Server) cmdUnwatch(c *client, r reply, args [][]byte) {
	c.watched = nil
	r.ok()
}
