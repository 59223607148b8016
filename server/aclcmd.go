package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/lockd/lockd/acl"
	"github.com/lockd/lockd/lock"
)

// maxACLArgs bounds the rules of one ACL SETUSER and the names of one ACL
// DELUSER, so that one fits a raft entry whatever the wire allows.
const maxACLArgs = 1024

// aclArity is, for each ACL subcommand, how many arguments it takes after
// its name: at least, at most.
var aclArity = map[string][2]int{
	"setuser": {1, maxACLArgs + 1}, "deluser": {1, maxACLArgs}, "list": {0, 0}, "users": {0, 0},
	"getuser": {1, 1}, "whoami": {0, 0}, "cat": {0, 1}, "help": {0, 0},
}

// cmdACL: ACL SETUSER | DELUSER | LIST | USERS | GETUSER | WHOAMI | CAT |
// HELP. SETUSER and DELUSER go through the raft log (lock.OpACLSetUser,
// lock.OpACLDelUser); the rest read this node's replica. Not supported:
// LOAD, SAVE, LOG, DRYRUN, GENPASS.
func (s *Server) cmdACL(c *client, r reply, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	a, ok := aclArity[sub]
	switch {
	case !ok && slices.Contains([]string{"load", "save", "log", "dryrun", "genpass"}, sub):
		r.err(fmt.Errorf("ERR ACL %s is not supported by lockd: users are cluster state (see docs/security.md)", strings.ToUpper(sub)))
		return
	case !ok:
		r.err(unknownSubcommandError{cmd: "acl", sub: string(args[1])})
		return
	case len(args)-2 < a[0] || len(args)-2 > a[1]:
		r.err(arityError{cmd: "acl|" + sub})
		return
	}
	rest := strs(args[2:])
	switch sub {
	case "setuser":
		s.aclSetUser(r, rest[0], rest[1:])
	case "deluser":
		cmd := lock.Command{Op: lock.OpACLDelUser, Name: rest[0], X: &lock.Extra{Args: rest[1:]}}
		res, err := s.node.Do(context.Background(), cmd)
		s.answerReply(r, res, err)
	case "list":
		users := s.users()
		r.array(len(users))
		for _, u := range users {
			r.bulk(acl.Describe(u))
		}
	case "users":
		users := s.users()
		r.array(len(users))
		for _, u := range users {
			r.bulk(u.Name)
		}
	case "getuser":
		s.aclGetUser(r, rest[0])
	case "whoami":
		r.bulk(c.user)
	case "cat":
		s.aclCat(r, rest)
	case "help":
		lines := []string{
			"ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"CAT [<category>]", "DELUSER <username> [<username> ...]", "GETUSER <username>", "LIST",
			"SETUSER <username> <attribute> [<attribute> ...]", "USERS", "WHOAMI", "HELP",
		}
		r.array(len(lines))
		for _, l := range lines {
			r.status(l)
		}
	}
}

// aclSetUser checks the rules against the user as this node has it (so
// that a mistake is answered in Redis's words with the rule as given),
// hashes the clear passwords and proposes the change. The default user,
// until one is replicated, starts from this node's (its --requirepass).
func (s *Server) aclSetUser(r reply, name string, rules []string) {
	if err := acl.ValidName(name); err != nil {
		r.err(err)
		return
	}
	base, ok := s.user(name)
	if !ok {
		base, _ = acl.Apply(&acl.User{Name: name}, []string{s.cfg.ACLPubsubDefault}, nil)
	}
	if _, err := acl.Apply(base, rules, knownCommand); err != nil {
		r.err(err)
		return
	}
	cmd := lock.Command{Op: lock.OpACLSetUser, Name: name, X: &lock.Extra{Args: acl.HashRules(rules)}}
	switch {
	case name != acl.DefaultName:
		cmd.Owner = s.cfg.ACLPubsubDefault // a new user's channels (see lock's setUser)
	case !s.node.Table().Users().Has(name):
		cmd.Owner = strings.Join(acl.RuleStrings(s.localDefault), " ")
	}
	res, err := s.node.Do(context.Background(), cmd)
	s.answerReply(r, res, err)
}

// users returns every user this node enforces, by name.
func (s *Server) users() []*acl.User {
	set := s.node.Table().Users()
	names := set.Names()
	if !set.Has(acl.DefaultName) {
		names = append(names, acl.DefaultName)
		slices.Sort(names)
	}
	out := make([]*acl.User, len(names))
	for i, n := range names {
		out[i], _ = s.user(n)
	}
	return out
}

// aclGetUser: ACL GETUSER name, in Redis 7's fields (no selectors: lockd
// has none); null for no such user.
func (s *Server) aclGetUser(r reply, name string) {
	u, ok := s.user(name)
	if !ok {
		r.null()
		return
	}
	r.mapHeader(6)
	r.bulk("flags")
	flags := acl.Flags(u)
	r.array(len(flags))
	for _, f := range flags {
		r.bulk(f)
	}
	r.bulk("passwords")
	r.array(len(u.Passwords))
	for _, p := range u.Passwords {
		r.bulk(p)
	}
	r.bulk("commands")
	r.bulk(acl.CommandRules(u))
	r.bulk("keys")
	r.bulk(acl.KeyRules(u))
	r.bulk("channels")
	r.bulk(acl.ChannelRules(u))
	r.bulk("selectors")
	r.array(0)
}

// aclCat: ACL CAT lists the categories; ACL CAT category the commands in
// it, by name.
func (s *Server) aclCat(r reply, rest []string) {
	if len(rest) == 0 {
		names := acl.CategoryNames()
		r.array(len(names))
		for _, n := range names {
			r.bulk(n)
		}
		return
	}
	cat := acl.CategoryByName(rest[0])
	if cat == 0 {
		r.err(fmt.Errorf("ERR Unknown category '%s'", clip([]byte(rest[0]))))
		return
	}
	var names []string
	for _, sp := range commandTable {
		if sp.cats&cat != 0 {
			names = append(names, sp.name)
		}
	}
	slices.Sort(names)
	r.array(len(names))
	for _, n := range names {
		r.bulk(n)
	}
}

// validACL checks an ACL SETUSER or DELUSER a follower forwards: valid
// names, at most maxACLArgs rules or names, no clear password (the log
// must never hold one), nothing else set.
func (s *Server) validACL(c *lock.Command) error {
	if c.TTL != 0 || c.Wait != 0 || c.Target != 0 || c.Flags != 0 || c.Match != "" || c.At != 0 ||
		(c.Op == lock.OpACLDelUser && c.Owner != "") || len(c.Owner) > maxACLArgs*acl.MaxRuleLen {
		return errMalformed
	}
	if c.X != nil {
		x := c.X
		if x.Keys != nil || x.Sub != nil || x.Checks != nil || !isZero(x.Reply) || x.Script != "" || x.SHA != "" || len(x.Args) > maxACLArgs {
			return errMalformed
		}
		for _, a := range x.Args {
			if c.Op == lock.OpACLSetUser && (acl.ClearPassword(a) || len(a) > acl.MaxRuleLen) {
				return errMalformed
			}
		}
	}
	if c.Op == lock.OpACLSetUser {
		if slices.ContainsFunc(strings.Fields(c.Owner), acl.ClearPassword) {
			return errMalformed
		}
		return acl.ValidName(c.Name)
	}
	return nil
}
