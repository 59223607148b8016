package server

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/replication"
)

// cmdLock: LOCK name owner [PX ms | EX s] [WAIT ms]. With WAIT, a lock held
// by someone else is waited for, first come first served across the cluster,
// for up to ms; the connection's later commands wait behind it. A client
// that hangs up meanwhile has its request withdrawn through the log at once
// (see whileWatched).
func (s *Server) cmdLock(c *client, r reply, args [][]byte) {
	cmd, err := s.lockArgs(args)
	if err != nil {
		r.err(err)
		return
	}
	var v int64
	if cmd.Op != lock.OpLockWait {
		v, err = s.node.Execute(context.Background(), cmd)
	} else if s.whileWatched(c, func(ctx context.Context) { v, err = s.node.ExecuteWait(ctx, cmd) }) {
		return // no one to answer
	}
	answerLock(r, v, err)
}

// answerLock replies to LOCK: the token, or a null when not granted.
func answerLock(r reply, v int64, err error) {
	switch {
	case err != nil:
		r.err(err)
	case v <= 0:
		r.null()
	default:
		r.int(v)
	}
}

// answerInt replies to UNLOCK and RENEW: 1 or 0.
func answerInt(r reply, v int64, err error) {
	if err != nil {
		r.err(err)
		return
	}
	r.int(v)
}

// lockArgs parses LOCK's arguments into a command. Nothing is sent on error.
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

// cmdUnlock: UNLOCK name owner
func (s *Server) cmdUnlock(c *client, r reply, args [][]byte) {
	s.execInt(r, args, s.unlockArgs)
}

func (s *Server) unlockArgs(args [][]byte) (lock.Command, error) {
	cmd := lock.Command{Op: lock.OpUnlock}
	return cmd, s.nameOwner(&cmd, args)
}

// cmdRenew: RENEW name owner PX ms | EX s
func (s *Server) cmdRenew(c *client, r reply, args [][]byte) {
	s.execInt(r, args, s.renewArgs)
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

// execInt parses a write with parse and answers 1 or 0.
func (s *Server) execInt(r reply, args [][]byte, parse func([][]byte) (lock.Command, error)) {
	cmd, err := parse(args)
	if err != nil {
		r.err(err)
		return
	}
	v, err := s.node.Execute(context.Background(), cmd)
	answerInt(r, v, err)
}

// cmdOwner: OWNER name, from the local replica.
func (s *Server) cmdOwner(c *client, r reply, args [][]byte) {
	if err := s.checkName(args[1]); err != nil {
		r.err(err)
		return
	}
	if err := s.catchUp(); err != nil {
		r.err(err)
		return
	}
	info, ok := s.node.Table().Get(string(args[1]))
	if !ok {
		r.null()
		return
	}
	r.bulk(info.Owner)
}

// catchUp waits, for at most the read timeout, until the local replica is
// in recent contact with a leader and has applied what this node knows to
// be committed (see replication.Node.WaitApplied). When it cannot, the read
// is refused with -TRYAGAIN rather than answered from a replica that may
// miss acknowledged writes (a node cut off from the leader, a leader that
// has not yet committed in its term, a replica still replaying its log).
func (s *Server) catchUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReadTimeout)
	defer cancel()
	if err := s.node.WaitApplied(ctx); err != nil {
		if errors.Is(err, replication.ErrStale) {
			return errStaleRead
		}
		return errCatchingUp
	}
	return nil
}

// cmdLockInfo: LOCKINFO name → null or [owner, token, ttl_ms] (a map under
// RESP3), from the local replica. ttl_ms counts down between log entries by
// this node's clock; it is -1 for a lock without a lease.
func (s *Server) cmdLockInfo(c *client, r reply, args [][]byte) {
	if err := s.checkName(args[1]); err != nil {
		r.err(err)
		return
	}
	if err := s.catchUp(); err != nil {
		r.err(err)
		return
	}
	t := s.node.Table()
	info, ok := t.Get(string(args[1]))
	if !ok {
		r.null()
		return
	}
	ttl := int64(-1)
	if info.Deadline != 0 {
		_, _, now := t.Clock()
		ttl = max(info.Deadline-now-s.node.SinceApply().Milliseconds(), 0)
	}
	if r.resp3 {
		r.mapHeader(3)
		r.bulk("owner")
		r.bulk(info.Owner)
		r.bulk("token")
		r.int(int64(info.Token))
		r.bulk("ttl_ms")
		r.int(ttl)
		return
	}
	r.array(3)
	r.bulk(info.Owner)
	r.int(int64(info.Token))
	r.int(ttl)
}

// cmdDBSize: the number of held locks.
func (s *Server) cmdDBSize(c *client, r reply, args [][]byte) {
	if err := s.catchUp(); err != nil {
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
