package server

import (
	"fmt"
	"time"

	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/resp"
)

// atSlack is how far past now plus MaxTTL an absolute deadline (EXAT,
// PXAT, EXPIREAT) may lie when the leader checks a forwarded command: the
// node that parsed it checked it against its own clock, which may be ahead
// of the leader's. A refused forwarded command is dropped, and its client
// waits for a timeout.
const atSlack = time.Minute

// maxKeys bounds the keys one command names (DEL, EXISTS), as the wire
// limit on arguments does for a client's.
const maxKeys = 1024

// validCommand checks a parsed command against this node's limits, as
// argument parsing does for its own clients: every key named, every value,
// every lease, the options each operation takes, and each command of a
// transaction. The leader runs it on commands that followers forward
// (replication.Config.Validate), so a peer cannot store what a client could
// not.
func (s *Server) validCommand(c *lock.Command) error {
	switch c.Op {
	case lock.OpScript, lock.OpScriptLoad, lock.OpScriptFlush, lock.OpEffects:
		return s.validScript(c)
	case lock.OpTx:
		return s.validTx(c)
	case lock.OpACLSetUser, lock.OpACLDelUser:
		return s.validACL(c)
	}
	return s.validOne(c)
}

// The options each key-space operation takes.
var opFlags = map[lock.Op]lock.Flags{
	lock.OpSet: lock.FlagNX | lock.FlagXX | lock.FlagGet | lock.FlagKeepTTL | lock.FlagIfEq | lock.FlagIfNe |
		lock.FlagExpireNow | lock.FlagInt,
	lock.OpDel:      lock.FlagIfEq | lock.FlagIfNe | lock.FlagInt,
	lock.OpExpire:   lock.FlagNX | lock.FlagXX | lock.FlagGT | lock.FlagLT | lock.FlagIfEq | lock.FlagExpireNow,
	lock.OpPTTL:     lock.FlagSeconds,
	lock.OpExpireAt: lock.FlagSeconds,
}

// validOne checks a command that is not a transaction: a client's, or one
// of a transaction's.
func (s *Server) validOne(c *lock.Command) error {
	if c.Op == lock.OpPublish {
		return s.validPublish(c)
	}
	if c.Op >= lock.OpRWLock && c.Op <= lock.OpSharedRenew {
		return s.validShared(c)
	}
	if err := s.validName(c.Name); err != nil {
		return err
	}
	maxMS := s.cfg.MaxTTL.Milliseconds()
	f := c.Flags
	switch {
	case c.Op != lock.OpLockWait && c.Wait != 0, c.Op != lock.OpCancel && c.Target != 0:
		return errMalformed
	case f&^opFlags[c.Op] != 0, f&lock.FlagNX != 0 && f&lock.FlagXX != 0, f&lock.FlagGT != 0 && f&lock.FlagLT != 0:
		return errMalformed
	case c.Match != "" && f&(lock.FlagIfEq|lock.FlagIfNe) == 0:
		return errMalformed
	case len(c.Match) > s.cfg.MaxOwnerLen:
		return errInvalidOwner
	case c.TTL < 0 || c.TTL > maxMS:
		return expireError{cmd: c.Op.String()}
	case c.At < 0 || c.At > time.Now().Add(s.cfg.MaxTTL+atSlack).UnixMilli():
		return expireError{cmd: c.Op.String()}
	}
	if err := s.validExtra(c); err != nil {
		return err
	}
	switch c.Op {
	case lock.OpLock, lock.OpUnlock, lock.OpCancel:
		return s.validOwner(c.Owner)
	case lock.OpRenew:
		if c.TTL == 0 {
			return expireError{cmd: "renew"}
		}
		return s.validOwner(c.Owner)
	case lock.OpLockWait:
		if c.Wait <= 0 || c.Wait > maxMS {
			return errInvalidWait
		}
		return s.validOwner(c.Owner)
	case lock.OpSet:
		conditions := f & (lock.FlagNX | lock.FlagXX | lock.FlagIfEq | lock.FlagIfNe)
		expiries := b2i(c.TTL != 0) + b2i(c.At != 0) + b2i(f&lock.FlagKeepTTL != 0) + b2i(f&lock.FlagExpireNow != 0)
		if conditions&(conditions-1) != 0 || expiries > 1 {
			return errMalformed
		}
		return s.validOwner(c.Owner)
	case lock.OpExpire:
		switch {
		case f&lock.FlagNX != 0 && f&(lock.FlagGT|lock.FlagLT) != 0:
			return errMalformed
		case b2i(c.TTL != 0)+b2i(c.At != 0)+b2i(f&lock.FlagExpireNow != 0) != 1:
			return errMalformed
		}
	case lock.OpDel:
		if f&lock.FlagIfEq != 0 && f&lock.FlagIfNe != 0 {
			return errMalformed
		}
	case lock.OpPersist, lock.OpGet, lock.OpExists, lock.OpPTTL, lock.OpType, lock.OpExpireAt, lock.OpLockInfo:
	default:
		return fmt.Errorf("ERR %v is not a client command", c.Op)
	}
	if c.Owner != "" || (c.Op != lock.OpExpire && (c.TTL != 0 || c.At != 0)) {
		return errMalformed
	}
	return nil
}

// validExtra checks c.X: only DEL (without a condition) and EXISTS name
// more keys, at most maxKeys in all.
func (s *Server) validExtra(c *lock.Command) error {
	x := c.X
	if x == nil {
		return nil
	}
	multiKey := c.Op == lock.OpExists || (c.Op == lock.OpDel && c.Flags == 0)
	if !multiKey || x.Sub != nil || x.Checks != nil || !isZero(x.Reply) || x.Script != "" || x.SHA != "" || x.Args != nil {
		return errMalformed
	}
	if len(x.Keys) >= maxKeys {
		return errMalformed
	}
	for _, k := range x.Keys {
		if err := s.validName(k); err != nil {
			return err
		}
	}
	return nil
}

// validTx checks a transaction: at most maxTxCommands commands, each a
// valid client command of the key space or a lock command, with no ID of
// its own; at most maxWatched checks, of valid names.
func (s *Server) validTx(c *lock.Command) error {
	if c.Name != "" || c.Owner != "" || c.TTL != 0 || c.Flags != 0 || c.Match != "" || c.At != 0 || c.Wait != 0 || c.Target != 0 {
		return errMalformed
	}
	x := c.X
	if x == nil {
		return nil
	}
	if x.Keys != nil || !isZero(x.Reply) || x.Script != "" || x.SHA != "" || x.Args != nil {
		return errMalformed
	}
	if len(x.Sub) > maxTxCommands {
		return fmt.Errorf("ERR a transaction of more than %d commands", maxTxCommands)
	}
	if len(x.Checks) > maxWatched {
		return errWatchTooMany
	}
	for _, k := range x.Checks {
		if err := s.validName(k.Name); err != nil {
			return err
		}
	}
	for i := range x.Sub {
		sub := &x.Sub[i]
		switch {
		case sub.ID != 0:
			return errMalformed
		case sub.Op == lock.OpCancel || sub.Op == lock.OpTick:
			return fmt.Errorf("ERR %v is not allowed in a transaction", sub.Op)
		}
		if err := s.validOne(sub); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) validName(name string) error {
	if len(name) == 0 || len(name) > s.cfg.MaxNameLen {
		return errInvalidName
	}
	return nil
}

func (s *Server) validOwner(owner string) error {
	if len(owner) == 0 || len(owner) > s.cfg.MaxOwnerLen {
		return errInvalidOwner
	}
	return nil
}

// isZero reports whether v is the zero Value, which a command's Extra.Reply
// is unless it carries a script's reply.
func isZero(v resp.Value) bool {
	return v.Kind == resp.Nil && v.Int == 0 && v.Str == "" && v.Array == nil
}

// validPublish checks a PUBLISH: a channel (any bytes, empty too) of at
// most MaxChannelLen bytes and a message no larger than one argument may be.
func (s *Server) validPublish(c *lock.Command) error {
	switch {
	case len(c.Name) > s.cfg.MaxChannelLen:
		return errChannelLen
	case len(c.Owner) > s.cfg.WireLimits.MaxBulk:
		return errMalformed
	case c.TTL != 0 || c.Wait != 0 || c.Target != 0 || c.Flags != 0 || c.Match != "" || c.At != 0 || c.X != nil:
		return errMalformed
	}
	return nil
}
