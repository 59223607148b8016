package server

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/replication"
	"github.com/lockd/lockd/resp"
)

// lockWait runs LOCK ... WAIT (or RWLOCK, SEMLOCK ... WAIT), cmd: a lock held by someone else is
// waited for, first come first served across the cluster, for up to its
// WAIT; the connection's later commands wait behind it. A client that hangs
// up meanwhile has its request withdrawn through the log at once (see
// whileWatched).
func (s *Server) lockWait(c *client, r reply, spec *commandSpec, cmd lock.Command) {
	var res lock.Result
	var err error
	if s.whileWatched(c, func(ctx context.Context) { res, err = s.node.DoWait(ctx, cmd) }) {
		return // no one to answer
	}
	s.answer(r, spec, &cmd, res, err)
}

// lockReply is the reply to a lock command whose result is v: LOCK's
// token, or a null when not granted; UNLOCK's and RENEW's 1 or 0 (and the
// same for RWLOCK, SEMLOCK and their kin).
func lockReply(op lock.Op, v int64) resp.Value {
	if (op == lock.OpLock || op == lock.OpLockWait || op == lock.OpRWLock || op == lock.OpSemLock) && v <= 0 {
		return resp.NilValue()
	}
	return resp.IntValue(v)
}

// lockArgs: LOCK name owner [PX ms | EX s] [WAIT ms] → the token, or a null
// when the lock is held by another owner (after waiting up to WAIT ms).
func (s *Server) lockArgs(args [][]byte) (lock.Command, error) {
	cmd := lock.Command{Op: lock.OpLock}
	if err := s.nameOwner(&cmd, args); err != nil {
		return cmd, err
	}
	var haveTTL, haveWait bool
	for i := 3; i < len(args); i += 2 {
		opt := strings.ToUpper(string(args[i]))
		if i+1 >= len(args) {
			return cmd, errSyntax
		}
		switch {
		case (opt == "PX" || opt == "EX") && !haveTTL && !haveWait:
			ttl, err := s.ttlArg("lock", opt, args[i+1])
			if err != nil {
				return cmd, err
			}
			cmd.TTL, haveTTL = ttl, true
		case opt == "WAIT" && !haveWait:
			wait, err := parseInt(args[i+1])
			if err != nil {
				return cmd, err
			}
			if wait < 0 || wait > s.cfg.MaxTTL.Milliseconds() {
				return cmd, errInvalidWait
			}
			haveWait = true
			if wait > 0 {
				cmd.Op, cmd.Wait = lock.OpLockWait, wait
			}
		default:
			return cmd, errSyntax
		}
	}
	return cmd, nil
}

func (s *Server) unlockArgs(args [][]byte) (lock.Command, error) {
	cmd := lock.Command{Op: lock.OpUnlock}
	return cmd, s.nameOwner(&cmd, args)
}

func (s *Server) renewArgs(args [][]byte) (lock.Command, error) {
	cmd := lock.Command{Op: lock.OpRenew}
	if err := s.nameOwner(&cmd, args); err != nil {
		return cmd, err
	}
	opt := strings.ToUpper(string(args[3]))
	if opt != "PX" && opt != "EX" {
		return cmd, errSyntax
	}
	ttl, err := s.ttlArg("renew", opt, args[4])
	cmd.TTL = ttl
	return cmd, err
}

// renderLockInfo writes LOCKINFO's [owner, token, ttl_ms] as a map under
// RESP3. ttl_ms counts down between log entries by this node's clock; it is
// -1 for a lock without a lease.
func renderLockInfo(r reply, v resp.Value) {
	if !r.resp3 || v.Kind != resp.Array || len(v.Array) != 3 {
		r.value(v)
		return
	}
	r.mapHeader(3)
	for i, key := range []string{"owner", "token", "ttl_ms"} {
		r.bulk(key)
		r.value(v.Array[i])
	}
}

// catchUp waits, for at most the read timeout, until the local replica is
// in recent contact with a leader and has applied what this node knows to
// be committed (see replication.Node.WaitApplied). When it cannot, the read
// is refused with -TRYAGAIN rather than answered from a replica that may
// miss acknowledged writes (a node cut off from the leader, a leader that
// has not yet committed in its term, a replica still replaying its log).
// A client in linearizable mode (CLIENT READS LINEARIZABLE) waits instead
// until the replica reflects every write committed anywhere before the read
// (replication.Node.ReadBarrier); one that cannot be confirmed is refused
// with -TRYAGAIN too.
func (s *Server) catchUp(c *client) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReadTimeout)
	defer cancel()
	wait := s.node.WaitApplied
	if c.linearizable {
		wait = s.node.ReadBarrier
	}
	if err := wait(ctx); err != nil {
		switch {
		case errors.Is(err, replication.ErrStale) && c.linearizable:
			return errUnconfirmedRead
		case errors.Is(err, replication.ErrStale):
			return errStaleRead
		}
		return errCatchingUp
	}
	return nil
}

// cmdDBSize: the number of held locks.
func (s *Server) cmdDBSize(c *client, r reply, args [][]byte) {
	if err := s.catchUp(c); err != nil {
		r.err(err)
		return
	}
	r.int(int64(s.node.Table().Len()))
}

func (s *Server) nameOwner(cmd *lock.Command, args [][]byte) error {
	if err := s.checkName(args[1]); err != nil {
		return err
	}
	if len(args[2]) == 0 || len(args[2]) > s.cfg.MaxOwnerLen {
		return errInvalidOwner
	}
	cmd.Name, cmd.Owner = string(args[1]), string(args[2])
	return nil
}

func (s *Server) checkName(name []byte) error {
	if len(name) == 0 || len(name) > s.cfg.MaxNameLen {
		return errInvalidName
	}
	return nil
}

// ttlArg parses the value of PX (ms) or EX (s) into milliseconds.
func (s *Server) ttlArg(cmd, opt string, arg []byte) (int64, error) {
	n, err := parseInt(arg)
	if err != nil {
		return 0, err
	}
	if opt == "EX" {
		if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
			return 0, expireError{cmd: cmd}
		}
		n *= 1000
	}
	if n <= 0 || n > s.cfg.MaxTTL.Milliseconds() {
		return 0, expireError{cmd: cmd}
	}
	return n, nil
}

// parseInt parses a decimal integer as Redis does: an optional minus, no
// plus, no leading zeros, no spaces.
func parseInt(b []byte) (int64, error) {
	digits := b
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || (digits[0] == '0' && len(b) > 1) || digits[0] < '0' || digits[0] > '9' {
		return 0, errNotInteger
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, errNotInteger
	}
	return n, nil
}
