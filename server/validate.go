package server

import (
	"errors"

	"github.com/lockd/lockd/lock"
)

// validCommand checks a parsed command against this node's limits, as
// argument parsing does for its own clients. The leader runs it on commands
// that followers forward (replication.Config.Validate), so a peer cannot
// store what a client could not.
func (s *Server) validCommand(c *lock.Command) error {
	if len(c.Name) == 0 || len(c.Name) > s.cfg.MaxNameLen {
		return errInvalidName
	}
	if len(c.Owner) == 0 || len(c.Owner) > s.cfg.MaxOwnerLen {
		return errInvalidOwner
	}
	maxMS := s.cfg.MaxTTL.Milliseconds()
	switch {
	case c.TTL < 0 || c.TTL > maxMS:
		return expireError{cmd: c.Op.String()}
	case c.Op == lock.OpRenew && c.TTL == 0:
		return expireError{cmd: "renew"}
	case c.Op == lock.OpLockWait && (c.Wait <= 0 || c.Wait > maxMS):
		return errInvalidWait
	case c.Op != lock.OpLockWait && c.Wait != 0, c.Op != lock.OpCancel && c.Target != 0:
		return errors.New("ERR malformed command")
	}
	return nil
}
