package server

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lockd/lockd/acl"
	"github.com/lockd/lockd/lock"
)

// ACL users: who a connection is (client.user), what it may run and which
// keys (lock names) it may touch. The users are cluster state, in the
// replicated table (lock.Table.Users); the default user, until an ACL
// SETUSER default replicates one, is this node's own: on, all keys, all
// commands, with --requirepass as its password (nopass without one). Every
// command is checked here before it is built or queued (Server.permit):
// a denial answers -NOPERM in Redis's words and changes nothing. EXEC
// checks its queued commands again, and a script's redis.call checks each
// command it calls (scriptCaller.Call).

//lint:file-ignore ST1005 the texts are Redis's, word for word

var (
	errNoPermKey = errors.New("NOPERM No permissions to access a key")
	errUserGone  = errors.New("NOPERM this connection's user was deleted")
)

// noPermCmdError is the reply to a command the user may not run.
type noPermCmdError struct{ user, cmd string }

func (e noPermCmdError) Error() string {
	return fmt.Sprintf("NOPERM User %s has no permissions to run the '%s' command", e.user, e.cmd)
}

// categoryOfFlag are the categories a command flag puts a command in, as
// Redis derives them; a command without "fast" is @slow.
var categoryOfFlag = map[string]acl.Category{
	"write":    acl.CatWrite,
	"readonly": acl.CatRead,
	"admin":    acl.CatAdmin | acl.CatDangerous,
	"fast":     acl.CatFast,
	"pubsub":   acl.CatPubsub,
}

// categoryOfName are the categories Redis gives commands by what they are
// rather than by their flags, and @lock.
var categoryOfName = map[acl.Category][]string{
	acl.CatKeyspace: {"del", "unlink", "exists", "expire", "pexpire", "expireat", "pexpireat", "ttl", "pttl",
		"expiretime", "pexpiretime", "persist", "type", "scan", "keys", "dbsize", "delex", "delifeq"},
	acl.CatLock: {"lock", "unlock", "renew", "owner", "lockinfo",
		"rwlock", "rwunlock", "rwrenew", "rwinfo", "semlock", "semunlock", "semrenew", "seminfo"},
	acl.CatConnection:  {"ping", "echo", "quit", "select", "auth", "hello", "client", "command"},
	acl.CatTransaction: {"multi", "exec", "discard", "watch", "unwatch"},
	acl.CatScripting:   {"eval", "evalsha", "eval_ro", "evalsha_ro", "script"},
	acl.CatDangerous:   {"info", "role", "keys"},
}

// categoriesOf returns the categories of sp's command.
func categoriesOf(sp *commandSpec) acl.Category {
	var cats acl.Category
	for _, f := range sp.flags {
		cats |= categoryOfFlag[f]
	}
	if cats&acl.CatFast == 0 {
		cats |= acl.CatSlow
	}
	for cat, names := range categoryOfName {
		if slices.Contains(names, sp.name) {
			cats |= cat
		}
	}
	if cats&acl.CatScripting != 0 {
		cats &^= acl.CatRead // as Redis: EVAL_RO is not @read
	}
	return cats
}

// subcommandCategories are the categories of ACL's subcommands, as in
// Redis: WHOAMI and CAT are for anyone, the rest are @admin.
func subcommandCategories(sp *commandSpec, sub string) acl.Category {
	if sp.name != "acl" {
		return sp.cats
	}
	if sub == "whoami" || sub == "cat" {
		return acl.CatSlow
	}
	return acl.CatAdmin | acl.CatDangerous | acl.CatSlow
}

// hasSubcommands lists the commands whose first argument names a
// subcommand: a denial names the command as name|subcommand.
var hasSubcommands = map[string]bool{"acl": true, "client": true, "script": true, "leader": true}

// knownCommand reports whether lockd has the command cmd (lower case), for
// ACL SETUSER's +command and -command.
func knownCommand(cmd string) bool { return commandTable[upper(cmd)] != nil }

// user returns the user name as this node enforces it: the replicated
// one, or for "default", until one is replicated, this node's own.
func (s *Server) user(name string) (*acl.User, bool) {
	if s.node == nil { // protected mode's unit test: only the local default
		return s.localDefault, name == acl.DefaultName
	}
	if u, ok := s.node.Table().Users().Get(name); ok {
		return u, true
	}
	if name == acl.DefaultName {
		return s.localDefault, true
	}
	return nil, false
}

// defaultOpen reports whether the default user is on and takes no
// password: a new connection is then authenticated as it, and protected
// mode applies.
func (s *Server) defaultOpen() bool {
	u, _ := s.user(acl.DefaultName)
	return u.On && u.NoPass
}

// setUser makes name the user of c, which is now authenticated.
func (c *client) setUser(name string) {
	c.mu.Lock()
	c.user = name
	c.mu.Unlock()
	c.authed = true
}

// permit checks that c's user may run spec's command with args and touch
// its keys. A connection whose user was deleted is closed. Commands that
// need no authentication (AUTH, HELLO, QUIT) are always permitted, as in
// Redis.
func (s *Server) permit(c *client, spec *commandSpec, args [][]byte) error {
	if spec.noAuth {
		return nil
	}
	u, ok := s.user(c.user)
	if !ok {
		c.quit = true
		c.conn.Close()
		return errUserGone
	}
	if u.Unrestricted() {
		return nil
	}
	return permitted(u, spec, args)
}

// permitted checks that u may run spec's command with args and touch its
// keys.
func permitted(u *acl.User, spec *commandSpec, args [][]byte) error {
	sub := ""
	if len(args) > 1 {
		sub = strings.ToLower(string(args[1]))
	}
	if !u.CanRun(spec.name, sub, subcommandCategories(spec, sub)) {
		name := spec.name
		if hasSubcommands[spec.name] && sub != "" {
			name += "|" + sub
		}
		return noPermCmdError{user: u.Name, cmd: name}
	}
	need := keyNeed(spec, args)
	for _, k := range keyArgs(spec, args) {
		if !u.CanKey(string(k), need) {
			return errNoPermKey
		}
	}
	return nil
}

// keyArgs are the keys (lock names) among args: those the spec's key
// positions give, or EVAL's numkeys keys (none when numkeys is not valid:
// the command fails anyway).
func keyArgs(spec *commandSpec, args [][]byte) [][]byte {
	if spec.cats&acl.CatScripting != 0 && len(args) >= 3 && spec.name != "script" {
		n, err := parseInt(args[2])
		if err != nil || n < 0 || n > int64(len(args)-3) {
			return nil
		}
		return args[3 : 3+n]
	}
	if spec.key == 0 || spec.key >= len(args) {
		return nil
	}
	last := spec.key
	switch {
	case spec.lastKey == -1:
		last = len(args) - 1
	case spec.lastKey > 0:
		last = min(spec.lastKey, len(args)-1)
	}
	return args[spec.key : last+1]
}

// keyNeed is the access spec's command with args needs to its keys, as
// Redis's key specs say: read for readonly commands, read and write for
// EVAL and SET ... GET, write for other writes, and none (any pattern) for
// EXISTS, TYPE and WATCH, which look at a key but not at its value.
func keyNeed(spec *commandSpec, args [][]byte) acl.Perm {
	switch spec.name {
	case "exists", "type", "watch":
		return 0
	case "eval", "evalsha":
		return acl.PermRW
	case "set":
		for _, a := range args[min(3, len(args)):] {
			if strings.EqualFold(string(a), "GET") {
				return acl.PermRW
			}
		}
	}
	if slices.Contains(spec.flags, "readonly") {
		return acl.PermRead
	}
	return acl.PermWrite
}

// permitQueued checks a command EXEC is about to send again, against u as
// it is now: Redis's reply when it is no longer allowed.
func permitQueued(u *acl.User, spec *commandSpec, cmd *lock.Command) error {
	const changed = "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: "
	if !u.CanRun(spec.name, strings.ToLower(cmd.Name), spec.cats) { // args[1] of every queued command is its name
		return errors.New(changed + "no permission to execute the command or subcommand")
	}
	if spec.key == 0 {
		return nil // PUBLISH: its name is a channel
	}
	need := keyNeed(spec, nil)
	if cmd.Flags&lock.FlagGet != 0 {
		need = acl.PermRW
	}
	for _, k := range commandNames(cmd) {
		if !u.CanKey(k, need) {
			return errors.New(changed + "no permission to touch the specified keys")
		}
	}
	return nil
}

// watchUsers closes the connections of users that were deleted, whenever
// the users change, until Close (stopPoll).
func (s *Server) watchUsers() {
	defer s.serving.Done()
	t := s.node.Table()
	for {
		changed := t.UsersChanged()
		users := t.Users()
		s.mu.Lock()
		for _, c := range s.clients {
			c.mu.Lock()
			gone := c.user != "" && c.user != acl.DefaultName && !users.Has(c.user)
			c.mu.Unlock()
			if gone {
				c.conn.NetConn().Close()
			}
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-s.stopPoll:
			return
		}
	}
}

// closeUser closes the connections authenticated as the user name, which
// ACL DELUSER deleted (the applier calls it through deliver, in log order:
// a user made again right after keeps none of the old connections). The
// connections are closed on a goroutine of its own, which ends once they
// are: closing a TLS connection may wait to send its close alert.
func (s *Server) closeUser(name string) {
	s.mu.Lock()
	var ncs []*clientConn
	for _, c := range s.clients {
		c.mu.Lock()
		if c.user == name {
			ncs = append(ncs, c.nc)
		}
		c.mu.Unlock()
	}
	s.mu.Unlock()
	if len(ncs) > 0 {
		go func() {
			for _, nc := range ncs {
				nc.Close()
			}
		}()
	}
}
