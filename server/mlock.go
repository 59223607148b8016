package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lockd/lockd/lock"
)

// MLOCK and MUNLOCK, and the options LOCK and MLOCK share. See lock's
// multilock.go and lockdelay.go for what the table does with them.

var (
	errInvalidDelay = errors.New("ERR invalid delay time in 'lock' command")
	errNumNames     = fmt.Errorf("ERR numnames must be between 1 and %d", lock.MaxMultiNames)
	errNamesCount   = errors.New("ERR numnames does not match the number of names given")
	errRepeatedName = errors.New("ERR a name is given twice")
)

// lockOptions parses LOCK's and MLOCK's options (holdOptions, with DELAY);
// without DELAY the lock-delay is this node's Config.LockDelay.
func (s *Server) lockOptions(cmd *lock.Command, opts [][]byte) error {
	cmd.Delay = s.cfg.LockDelay.Milliseconds()
	return s.holdOptions(cmd, "lock", opts, true)
}

// holdOptions parses the options of the command name that takes a hold
// (LOCK, MLOCK, RWLOCK, SEMLOCK), opts, into cmd, in any order and case,
// each at most once: PX ms or EX s (the lease), WAIT ms (0: do not wait)
// and, when delay, DELAY ms (the lock-delay, 0..lock.MaxDelay).
func (s *Server) holdOptions(cmd *lock.Command, name string, opts [][]byte, delay bool) error {
	var haveTTL, haveWait, haveDelay bool
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
				return waitError{cmd: name}
			}
			cmd.Wait, haveWait = wait, true
		case opt == "DELAY" && delay && !haveDelay:
			d, err := parseInt(opts[i+1])
			if err != nil {
				return err
			}
			if d < 0 || d > lock.MaxDelay {
				return errInvalidDelay
			}
			cmd.Delay, haveDelay = d, true
		default:
			return errSyntax
		}
	}
	return nil
}

// multiNames parses "numnames name [name ...]" at the front of args (after
// the command's name) and returns the names and the arguments after them.
func (s *Server) multiNames(args [][]byte) ([]string, [][]byte, error) {
	n, err := parseInt(args[1])
	switch {
	case err != nil:
		return nil, nil, err
	case n < 1 || n > lock.MaxMultiNames:
		return nil, nil, errNumNames
	case n > int64(len(args)-3): // the owner follows the names
		return nil, nil, errNamesCount
	}
	names := make([]string, n)
	for i := range names {
		if err := s.checkName(args[2+i]); err != nil {
			return nil, nil, err
		}
		names[i] = string(args[2+i])
		if slices.Contains(names[:i], names[i]) {
			return nil, nil, errRepeatedName
		}
	}
	return names, args[2+n:], nil
}

// multiCommand makes the table's command of op for names and owner.
func (s *Server) multiCommand(op lock.Op, names []string, owner []byte) (lock.Command, error) {
	if len(owner) == 0 || len(owner) > s.cfg.MaxOwnerLen {
		return lock.Command{}, errInvalidOwner
	}
	cmd := lock.Command{Op: op, Name: names[0], Owner: string(owner)}
	if len(names) > 1 {
		cmd.X = &lock.Extra{Keys: names[1:]}
	}
	return cmd, nil
}

// mlockArgs: MLOCK numnames name [name ...] owner [PX ms | EX s] [WAIT ms]
// [DELAY ms].
func (s *Server) mlockArgs(args [][]byte) (lock.Command, error) {
	names, rest, err := s.multiNames(args)
	if err != nil {
		return lock.Command{}, err
	}
	cmd, err := s.multiCommand(lock.OpMultiLock, names, rest[0])
	if err != nil {
		return cmd, err
	}
	return cmd, s.lockOptions(&cmd, rest[1:])
}

// munlockArgs: MUNLOCK numnames name [name ...] owner.
func (s *Server) munlockArgs(args [][]byte) (lock.Command, error) {
	names, rest, err := s.multiNames(args)
	if err != nil {
		return lock.Command{}, err
	}
	if len(rest) != 1 {
		return lock.Command{}, errNamesCount
	}
	return s.multiCommand(lock.OpMultiUnlock, names, rest[0])
}

// multiKeys are MLOCK's and MUNLOCK's names, for ACL checks: none when
// numnames is not valid (the command fails anyway).
func multiKeys(args [][]byte) [][]byte {
	if len(args) < 2 {
		return nil
	}
	n, err := parseInt(args[1])
	if err != nil || n < 1 || n > int64(len(args)-2) {
		return nil
	}
	return args[2 : 2+n]
}

// cmdMLock runs MLOCK: the array of tokens, or a null; with WAIT it waits
// as LOCK ... WAIT does (see lockWait). It is not a build command, so
// MULTI, scripts and the pipeline's batching refuse or skip it.
func (s *Server) cmdMLock(c *client, r reply, args [][]byte) {
	cmd, err := s.mlockArgs(args)
	if err != nil {
		r.err(err)
		return
	}
	spec := commandTable["MLOCK"]
	if cmd.Wait == 0 {
		res, err := s.node.Do(context.Background(), cmd)
		s.answer(r, spec, &cmd, res, err)
		return
	}
	var res lock.Result
	if s.whileWatched(c, func(ctx context.Context) { res, err = s.node.DoWait(ctx, cmd) }) {
		return // no one to answer
	}
	s.answer(r, spec, &cmd, res, err)
}

// cmdMUnlock runs MUNLOCK: how many of the names the owner held and
// released.
func (s *Server) cmdMUnlock(c *client, r reply, args [][]byte) {
	cmd, err := s.munlockArgs(args)
	if err != nil {
		r.err(err)
		return
	}
	res, err := s.node.Do(context.Background(), cmd)
	s.answer(r, commandTable["MUNLOCK"], &cmd, res, err)
}

// validMulti checks a forwarded OpMultiLock or OpMultiUnlock as
// mlockArgs and munlockArgs check a client's.
func (s *Server) validMulti(c *lock.Command) error {
	names := []string{c.Name}
	if c.X != nil {
		if c.X.Sub != nil || c.X.Checks != nil || !isZero(c.X.Reply) || c.X.Script != "" || c.X.SHA != "" || c.X.Args != nil || len(c.X.Keys) == 0 {
			return errMalformed
		}
		names = append(names, c.X.Keys...)
	}
	if len(names) > lock.MaxMultiNames {
		return errNumNames
	}
	for i, n := range names {
		if err := s.validName(n); err != nil {
			return err
		}
		if slices.Contains(names[:i], n) {
			return errRepeatedName
		}
	}
	maxMS := s.cfg.MaxTTL.Milliseconds()
	switch {
	case c.Target != 0 || c.Flags != 0 || c.Match != "" || c.At != 0:
		return errMalformed
	case c.Op == lock.OpMultiUnlock && (c.TTL != 0 || c.Wait != 0 || c.Delay != 0):
		return errMalformed
	case c.TTL < 0 || c.TTL > maxMS:
		return expireError{cmd: "mlock"}
	case c.Wait < 0 || c.Wait > maxMS:
		return errInvalidWait
	case c.Delay < 0 || c.Delay > lock.MaxDelay:
		return errInvalidDelay
	}
	return s.validOwner(c.Owner)
}
