package server

import (
	"errors"
	"math"
	"strings"
	"time"

	"github.com/lockd/lockd/lock"
)

// The key space: Redis's string-key commands on the same locks that LOCK,
// UNLOCK and RENEW change (a key is a lock, its value the owner, its TTL
// the lease). Each build func here parses one command's arguments as Redis
// does and returns the table's command (lock/keyspace.go has the
// semantics); Server.dispatch sends writes through the cluster and answers
// reads from the local replica. lockd stores what a lock can hold: names of
// 1 to MaxNameLen bytes, values (owners) of 1 to MaxOwnerLen bytes, leases
// of at most MaxTTL; where Redis would accept more, the command is refused
// with lockd's errors (docs/PROTOCOL.md lists the differences).

// readOf builds a read of one key: op with flags.
func readOf(op lock.Op, flags lock.Flags) func(*Server, [][]byte) (lock.Command, error) {
	return func(s *Server, args [][]byte) (lock.Command, error) {
		return lock.Command{Op: op, Name: string(args[1]), Flags: flags}, s.checkName(args[1])
	}
}

// keysArgs builds a command on the keys args[1:]: Name and X.Keys.
func (s *Server) keysArgs(op lock.Op, args [][]byte) (lock.Command, error) {
	cmd := lock.Command{Op: op, Name: string(args[1])}
	for _, a := range args[1:] {
		if err := s.checkName(a); err != nil {
			return cmd, err
		}
	}
	if len(args) > 2 {
		cmd.X = &lock.Extra{Keys: make([]string, 0, len(args)-2)}
		for _, a := range args[2:] {
			cmd.X.Keys = append(cmd.X.Keys, string(a))
		}
	}
	return cmd, nil
}

// delArgs: DEL key [key ...] and UNLINK key [key ...] → the number of keys
// that existed.
func (s *Server) delArgs(args [][]byte) (lock.Command, error) { return s.keysArgs(lock.OpDel, args) }

// existsArgs: EXISTS key [key ...] → how many of them exist, a key named
// twice counted twice.
func (s *Server) existsArgs(args [][]byte) (lock.Command, error) {
	return s.keysArgs(lock.OpExists, args)
}

// persistArgs: PERSIST key → 1 when it had a lease and has none now, else 0.
func (s *Server) persistArgs(args [][]byte) (lock.Command, error) {
	return lock.Command{Op: lock.OpPersist, Name: string(args[1])}, s.checkName(args[1])
}

// cmdMGet: MGET key [key ...] → the value of each key, or a null. Each key
// is read from the local replica on its own: unlike Redis's, an MGET may
// see a write that another key of it does not. It has no build func, so
// neither MULTI nor a script can run it.
func (s *Server) cmdMGet(c *client, r reply, args [][]byte) {
	for _, a := range args[1:] {
		if err := s.checkName(a); err != nil {
			r.err(err)
			return
		}
	}
	if err := s.catchUp(c); err != nil {
		r.err(err)
		return
	}
	t, elapsed := s.node.Table(), s.node.SinceApply().Milliseconds()
	r.array(len(args) - 1)
	for _, a := range args[1:] {
		r.value(t.Read(&lock.Command{Op: lock.OpGet, Name: string(a)}, elapsed))
	}
}

// setArgs: SET key value [NX | XX | IFEQ v | IFNE v] [GET]
// [EX s | PX ms | EXAT unix-s | PXAT unix-ms | KEEPTTL], options in any
// order and case. It replies OK when it set, a null when a condition
// failed; with GET, the old value (or a null) either way.
func (s *Server) setArgs(args [][]byte) (lock.Command, error) {
	return s.parseSet(args, time.Now().UnixMilli())
}

// setnxArgs: SETNX key value → 1 when it set, 0 when the key exists.
func (s *Server) setnxArgs(args [][]byte) (lock.Command, error) {
	cmd := lock.Command{Op: lock.OpSet, Flags: lock.FlagNX | lock.FlagInt}
	return cmd, s.nameOwner(&cmd, args)
}

// The option kinds of SET: at most one condition and one expiry.
const (
	setCondition = 1 << iota
	setExpiry
)

// parseSet parses SET's arguments at nowMS (Unix ms, for EXAT and PXAT) as
// Redis does: every option first (an unknown one, one without its value, a
// second condition or expiry of another kind: ERR syntax error; the same
// option again: the last one counts), then the expiry's number. A deadline
// at or before nowMS sets nothing and deletes the key (FlagExpireNow).
func (s *Server) parseSet(args [][]byte, nowMS int64) (lock.Command, error) {
	cmd := lock.Command{Op: lock.OpSet}
	if err := s.nameOwner(&cmd, args); err != nil {
		return cmd, err
	}
	var (
		kinds     int
		condition string // the condition's option, upper case
		expiry    string // the expiry's option, upper case
		expiryArg []byte
	)
	for i := 3; i < len(args); i++ {
		opt := strings.ToUpper(string(args[i]))
		hasArg := i+1 < len(args)
		kind := 0
		switch {
		case opt == "NX" || opt == "XX":
			kind = setCondition
		case (opt == "IFEQ" || opt == "IFNE") && hasArg:
			kind = setCondition
			cmd.Match = string(args[i+1])
			i++
		case (opt == "IFDEQ" || opt == "IFDNE") && hasArg:
			return cmd, errDigest
		case opt == "GET":
			cmd.Flags |= lock.FlagGet
			continue
		case opt == "KEEPTTL":
			kind = setExpiry
		case (opt == "EX" || opt == "PX" || opt == "EXAT" || opt == "PXAT") && hasArg:
			kind = setExpiry
			expiryArg = args[i+1]
			i++
		default:
			return cmd, errSyntax
		}
		prev := &condition
		if kind == setExpiry {
			prev = &expiry
		}
		if kinds&kind != 0 && *prev != opt {
			return cmd, errSyntax
		}
		kinds |= kind
		*prev = opt
	}
	switch condition {
	case "NX":
		cmd.Flags |= lock.FlagNX
	case "XX":
		cmd.Flags |= lock.FlagXX
	case "IFEQ":
		cmd.Flags |= lock.FlagIfEq
	case "IFNE":
		cmd.Flags |= lock.FlagIfNe
	}
	if len(cmd.Match) > s.cfg.MaxOwnerLen {
		return cmd, errInvalidOwner // no value lockd stores can equal it
	}
	switch expiry {
	case "":
		return cmd, nil
	case "KEEPTTL":
		cmd.Flags |= lock.FlagKeepTTL
		return cmd, nil
	case "EX", "PX":
		ttl, err := s.ttlArg("set", expiry, expiryArg)
		cmd.TTL = ttl
		return cmd, err
	}
	n, err := parseInt(expiryArg)
	if err != nil {
		return cmd, err
	}
	if expiry == "EXAT" {
		if n > math.MaxInt64/1000 {
			return cmd, expireError{cmd: "set"}
		}
		n *= 1000
	}
	if n <= 0 {
		return cmd, expireError{cmd: "set"}
	}
	return cmd, s.deadline(&cmd, "set", n, nowMS)
}

// deadline gives cmd the absolute deadline at (Unix ms, positive): at or
// before nowMS the key goes at once (FlagExpireNow), else At, which may be
// at most MaxTTL after nowMS.
func (s *Server) deadline(cmd *lock.Command, name string, at, nowMS int64) error {
	switch {
	case at <= nowMS:
		cmd.Flags |= lock.FlagExpireNow
	case at-nowMS > s.cfg.MaxTTL.Milliseconds():
		return expireError{cmd: name}
	default:
		cmd.At = at
	}
	return nil
}

// expireOf builds EXPIRE (unit 1000: seconds), PEXPIRE (1: ms), EXPIREAT
// and PEXPIREAT (absolute: Unix time): key time [NX | XX | GT | LT]. They
// reply 1 when the key's lease changed (or the key was deleted: a time at
// or before now), 0 when the key does not exist or a condition failed.
func expireOf(unit int64, absolute bool) func(*Server, [][]byte) (lock.Command, error) {
	return func(s *Server, args [][]byte) (lock.Command, error) {
		return s.parseExpire(args, unit, absolute, time.Now().UnixMilli())
	}
}

func (s *Server) parseExpire(args [][]byte, unit int64, absolute bool, nowMS int64) (lock.Command, error) {
	name := strings.ToLower(string(args[0]))
	cmd := lock.Command{Op: lock.OpExpire, Name: string(args[1])}
	if err := s.checkName(args[1]); err != nil {
		return cmd, err
	}
	for _, a := range args[3:] {
		switch strings.ToUpper(string(a)) {
		case "NX":
			cmd.Flags |= lock.FlagNX
		case "XX":
			cmd.Flags |= lock.FlagXX
		case "GT":
			cmd.Flags |= lock.FlagGT
		case "LT":
			cmd.Flags |= lock.FlagLT
		default:
			return cmd, errors.New("ERR Unsupported option " + clip(a))
		}
	}
	switch f := cmd.Flags; {
	case f&lock.FlagNX != 0 && f&(lock.FlagXX|lock.FlagGT|lock.FlagLT) != 0:
		return cmd, errExpireNXAndMore
	case f&lock.FlagGT != 0 && f&lock.FlagLT != 0:
		return cmd, errExpireGTAndLT
	}
	n, err := parseInt(args[2])
	if err != nil {
		return cmd, err
	}
	if n > math.MaxInt64/unit || n < math.MinInt64/unit {
		return cmd, expireError{cmd: name}
	}
	n *= unit
	if absolute {
		return cmd, s.deadline(&cmd, name, n, nowMS)
	}
	switch {
	case n <= 0:
		cmd.Flags |= lock.FlagExpireNow
	case n > s.cfg.MaxTTL.Milliseconds():
		return cmd, expireError{cmd: name}
	default:
		cmd.TTL = n
	}
	return cmd, nil
}

// delexArgs: DELEX key [IFEQ v | IFNE v] (Redis 8.4) → 1 when it deleted
// the key, 0 when the key does not exist or the condition failed. Without
// a condition it is DEL of one key. The digest conditions (IFDEQ, IFDNE)
// are refused.
func (s *Server) delexArgs(args [][]byte) (lock.Command, error) {
	cmd := lock.Command{Op: lock.OpDel, Name: string(args[1])}
	if err := s.checkName(args[1]); err != nil {
		return cmd, err
	}
	if len(args) == 2 {
		return cmd, nil
	}
	if len(args) != 4 {
		return cmd, errSyntax
	}
	switch strings.ToUpper(string(args[2])) {
	case "IFEQ":
		cmd.Flags = lock.FlagIfEq
	case "IFNE":
		cmd.Flags = lock.FlagIfNe
	case "IFDEQ", "IFDNE":
		return cmd, errDigest
	default:
		return cmd, errSyntax
	}
	cmd.Match = string(args[3])
	if len(cmd.Match) > s.cfg.MaxOwnerLen {
		return cmd, errInvalidOwner
	}
	return cmd, nil
}

// delifeqArgs: DELIFEQ key value (Valkey) → 1 when the key held value and
// is deleted, else 0.
func (s *Server) delifeqArgs(args [][]byte) (lock.Command, error) {
	return s.delexArgs([][]byte{args[0], args[1], []byte("IFEQ"), args[2]})
}
