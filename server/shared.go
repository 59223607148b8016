package server

import (
	"fmt"
	"strings"

	"github.com/lockd/lockd/lock"
)

// Read/write locks and semaphores: RWLOCK, RWUNLOCK, RWRENEW, RWINFO,
// SEMLOCK, SEMUNLOCK, SEMRENEW, SEMINFO (lock/shared.go holds their
// state). Their names are in a namespace of their own, apart from the key
// space; ACL key patterns apply to them all the same. A lock with WAIT
// queues through the path LOCK ... WAIT takes (Server.lockWait).

// errInvalidLimit is the reply to a semaphore limit outside 1..MaxSemLimit.
var errInvalidLimit = fmt.Errorf("ERR invalid semaphore limit: want an integer 1..%d", lock.MaxSemLimit)

// sharedWaitError is the reply to a negative WAIT, or one past --max-ttl.
type sharedWaitError struct{ cmd string }

func (e sharedWaitError) Error() string {
	return fmt.Sprintf("ERR invalid wait time in '%s' command", e.cmd)
}

// rwlockArgs: RWLOCK name owner READ|WRITE [PX ms | EX s] [WAIT ms].
func (s *Server) rwlockArgs(args [][]byte) (lock.Command, error) {
	cmd := lock.Command{Op: lock.OpRWLock}
	if err := s.nameOwner(&cmd, args); err != nil {
		return cmd, err
	}
	switch strings.ToUpper(string(args[3])) {
	case "READ":
		cmd.Mode = lock.ModeRead
	case "WRITE":
		cmd.Mode = lock.ModeWrite
	default:
		return cmd, errSyntax
	}
	return cmd, s.sharedOptions(&cmd, "rwlock", args[4:])
}

// semlockArgs: SEMLOCK name owner limit [PX ms | EX s] [WAIT ms].
func (s *Server) semlockArgs(args [][]byte) (lock.Command, error) {
	cmd := lock.Command{Op: lock.OpSemLock, Mode: lock.ModeSem}
	if err := s.nameOwner(&cmd, args); err != nil {
		return cmd, err
	}
	limit, err := parseInt(args[3])
	if err != nil {
		return cmd, err
	}
	if limit < 1 || limit > lock.MaxSemLimit {
		return cmd, errInvalidLimit
	}
	cmd.Limit = limit
	return cmd, s.sharedOptions(&cmd, "semlock", args[4:])
}

// sharedOptions parses the options of RWLOCK and SEMLOCK, opts, into cmd:
// PX ms or EX s and WAIT ms, in any order and case, each at most once.
func (s *Server) sharedOptions(cmd *lock.Command, name string, opts [][]byte) error {
	var haveTTL, haveWait bool
	for i := 0; i < len(opts); i += 2 {
		opt := strings.ToUpper(string(opts[i]))
		if i+1 >= len(opts) {
			return errSyntax
		}
		switch {
		case (opt == "PX" || opt == "EX") && !haveTTL:
			ttl, err := s.ttlArg(name, opt, opts[i+1])
			if err != nil {
				return err
			}
			cmd.TTL, haveTTL = ttl, true
		case opt == "WAIT" && !haveWait:
			wait, err := parseInt(opts[i+1])
			if err != nil {
				return err
			}
			if wait < 0 || wait > s.cfg.MaxTTL.Milliseconds() {
				return sharedWaitError{cmd: name}
			}
			cmd.Wait, haveWait = wait, true
		default:
			return errSyntax
		}
	}
	return nil
}

// sharedUnlockArgs builds RWUNLOCK (sem false) or SEMUNLOCK name owner.
func sharedUnlockArgs(sem bool) func(s *Server, args [][]byte) (lock.Command, error) {
	return func(s *Server, args [][]byte) (lock.Command, error) {
		cmd := lock.Command{Op: lock.OpSharedUnlock, Mode: kindMode(sem)}
		return cmd, s.nameOwner(&cmd, args)
	}
}

// sharedRenewArgs builds RWRENEW (sem false) or SEMRENEW name owner PX ms
// (or EX s).
func sharedRenewArgs(sem bool) func(s *Server, args [][]byte) (lock.Command, error) {
	return func(s *Server, args [][]byte) (lock.Command, error) {
		cmd := lock.Command{Op: lock.OpSharedRenew, Mode: kindMode(sem)}
		if err := s.nameOwner(&cmd, args); err != nil {
			return cmd, err
		}
		opt := strings.ToUpper(string(args[3]))
		if opt != "PX" && opt != "EX" {
			return cmd, errSyntax
		}
		name := "rwrenew"
		if sem {
			name = "semrenew"
		}
		ttl, err := s.ttlArg(name, opt, args[4])
		cmd.TTL = ttl
		return cmd, err
	}
}

// kindMode is the Mode that names a read/write lock (sem false) or a
// semaphore to OpSharedUnlock and OpSharedRenew.
func kindMode(sem bool) lock.Mode {
	if sem {
		return lock.ModeSem
	}
	return lock.ModeEither
}

// sharedInfo runs RWINFO (sem false) or SEMINFO name from this node's
// replica, caught up as every read is (see catchUp).
func sharedInfo(sem bool) func(s *Server, c *client, r reply, args [][]byte) {
	return func(s *Server, c *client, r reply, args [][]byte) {
		if err := s.checkName(args[1]); err != nil {
			r.err(err)
			return
		}
		if err := s.catchUp(c); err != nil {
			r.err(err)
			return
		}
		r.value(s.node.Table().SharedInfo(string(args[1]), sem, s.node.SinceApply().Milliseconds()))
	}
}

// validShared checks a shared command as validOne checks the others: what
// its parser would have made, and nothing else.
func (s *Server) validShared(c *lock.Command) error {
	if err := s.validName(c.Name); err != nil {
		return err
	}
	if err := s.validOwner(c.Owner); err != nil {
		return err
	}
	maxMS := s.cfg.MaxTTL.Milliseconds()
	switch {
	case c.Target != 0, c.Flags != 0, c.Match != "", c.At != 0, c.X != nil:
		return errMalformed
	case c.TTL < 0 || c.TTL > maxMS, c.Op == lock.OpSharedRenew && c.TTL == 0:
		return expireError{cmd: c.Op.String()}
	case c.Wait < 0 || c.Wait > maxMS:
		return sharedWaitError{cmd: strings.ToLower(c.Op.String())}
	}
	return nil
}
