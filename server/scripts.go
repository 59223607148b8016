package server

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/lockd/lockd/acl"
	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/resp"
	"github.com/lockd/lockd/script"
)

// Scripts: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT.
//
// A script runs once, on the leader: the node that receives EVAL sends a
// script request (lock.OpScript) to the leader, whose script goroutine runs
// it (runScript) against a scratch copy of the keys it touches and proposes
// its effects, applied on every node only if those keys are still as the
// script saw them (see lock/scratch.go). A script is all or nothing: one
// that fails leaves no write behind. A read-only script (EVAL_RO) runs on
// the node that receives it, against its replica. Well-known lock scripts
// (a compare-and-delete release, a compare-and-expire extend) do not run in
// the interpreter at all: fastPath turns them into the table's own command,
// which goes through the log like an UNLOCK.

// Bounds of one script's effects, which travel in one raft entry.
const (
	maxScriptWrites     = 1000
	maxScriptWriteBytes = 512 << 10
)

// scriptTimeout bounds a script's run on the leader: below the default
// request timeout (2 s), so that its client hears the outcome.
const scriptTimeout = time.Second

var (
	errNoScript        = resp.ErrorValue("NOSCRIPT No matching script. Please use EVAL.")
	errUnknownInScript = resp.ErrorValue("ERR Unknown Redis command called from script")
	errNotInScript     = resp.ErrorValue("ERR This Redis command is not allowed from script")
	errScriptArity     = resp.ErrorValue("ERR Wrong number of args calling Redis command from script")
	errWriteInReadOnly = resp.ErrorValue("ERR Write commands are not allowed from read-only scripts.")
	errScriptWrites    = resp.Errorf("ERR a script may make at most %d writes of at most %d bytes in all", maxScriptWrites, maxScriptWriteBytes)
)

// maxScriptArgs bounds the keys and arguments of one script request, as the
// wire limit on arguments does for a client's EVAL.
const maxScriptArgs = 1024

// validScript checks a script request a follower forwards: a body (or a
// SHA) of a size a client could send, and no more keys and arguments than a
// client could. Script effects are never forwarded (the leader makes them).
func (s *Server) validScript(c *lock.Command) error {
	x := c.X
	switch {
	case c.Op == lock.OpEffects:
		return errors.New("ERR script effects come from the leader only")
	case c.Op == lock.OpScriptFlush:
		return nil
	case x == nil:
		return errors.New("ERR malformed script request")
	case len(x.Script) > s.cfg.WireLimits.MaxCommand:
		return errors.New("ERR script too large")
	case c.Op == lock.OpScriptLoad && x.Script == "":
		return errors.New("ERR malformed script request")
	case c.Op == lock.OpScript && (len(x.Keys)+len(x.Args) > maxScriptArgs || (x.Script == "" && len(x.SHA) != 40)):
		return errors.New("ERR malformed script request")
	}
	return nil
}

// scriptLimits are the budgets of every script run on this node.
func (s *Server) scriptLimits() script.Limits { return script.Limits{Timeout: scriptTimeout} }

func (s *Server) cmdEval(c *client, r reply, args [][]byte)      { s.eval(c, r, args, false, false) }
func (s *Server) cmdEvalSHA(c *client, r reply, args [][]byte)   { s.eval(c, r, args, true, false) }
func (s *Server) cmdEvalRO(c *client, r reply, args [][]byte)    { s.eval(c, r, args, false, true) }
func (s *Server) cmdEvalSHARO(c *client, r reply, args [][]byte) { s.eval(c, r, args, true, true) }

// eval is EVAL script|sha numkeys key... arg..., by body or by SHA, read-only
// or not. The script runs as c's user: each command it calls is checked
// against the user's ACL rules (on the leader, which finds the user by the
// name the request carries in Owner). A fast-path script runs as its table
// command only for a user who may run every command (its keys were checked
// as EVAL's).
func (s *Server) eval(c *client, r reply, args [][]byte, bySHA, readOnly bool) {
	n, err := parseInt(args[2])
	switch {
	case err != nil:
		r.err(err)
		return
	case n < 0:
		r.value(resp.ErrorValue("ERR Number of keys can't be negative"))
		return
	case n > int64(len(args)-3):
		r.value(resp.ErrorValue("ERR Number of keys can't be greater than number of args"))
		return
	}
	keys, argv := strs(args[3:3+n]), strs(args[3+n:])
	var body, sha string
	if bySHA {
		sha = strings.ToLower(string(args[1]))
		var ok bool
		if body, ok = s.node.Table().Script(sha); !ok {
			r.value(errNoScript)
			return
		}
	} else {
		body = string(args[1])
		sha = script.SHA1Hex(body)
		if err := script.Compile(body); err != nil {
			r.value(resp.ErrorValue(err.Error()))
			return
		}
	}
	u, _ := s.user(c.user) // there: permit checked
	if readOnly {
		r.value(s.evalReadOnly(c, body, sha, keys, argv, u))
		return
	}
	if cmd, ok := s.fastPath(sha, keys, argv); ok && u.AllCommands && len(u.Rules) == 0 {
		res, err := s.node.Do(context.Background(), cmd)
		s.answerReply(r, res, err)
		return
	}
	res, err := s.node.Do(context.Background(), lock.Command{Op: lock.OpScript, Owner: c.user, X: &lock.Extra{Script: body, SHA: sha, Keys: keys, Args: argv}})
	s.answerReply(r, res, err)
}

// answerReply replies with a key-space command's result.
func (s *Server) answerReply(r reply, res lock.Result, err error) {
	switch {
	case err != nil:
		r.err(err)
	case res.Reply == nil:
		r.value(resp.ErrorValue("ERR no reply"))
	default:
		r.value(*res.Reply)
	}
}

func strs(bs [][]byte) []string {
	ss := make([]string, len(bs))
	for i, b := range bs {
		ss[i] = string(b)
	}
	return ss
}

// evalReadOnly runs a read-only script against this node's replica, once it
// has caught up. A script new to the cluster is registered through the log
// first, so that EVALSHA knows it on every node.
func (s *Server) evalReadOnly(c *client, body, sha string, keys, argv []string, u *acl.User) resp.Value {
	if err := s.catchUp(c); err != nil {
		return resp.ErrorValue(respError(err))
	}
	if _, ok := s.node.Table().Script(sha); !ok {
		s.node.Do(context.Background(), lock.Command{Op: lock.OpScriptLoad, X: &lock.Extra{Script: body}})
	}
	caller := &scriptCaller{s: s, table: s.node.Table(), readOnly: true, elapsed: s.node.SinceApply().Milliseconds(), user: u}
	return script.Run(body, keys, argv, caller, s.scriptLimits())
}

// runScript is replication.Config.RunScript: on the leader, it runs the
// script of req against a scratch copy of the keys it touches and returns
// the effects to propose. The script runs as the user req.Owner names.
func (s *Server) runScript(table *lock.Table, req lock.Command) lock.Command {
	x := req.X
	if x == nil {
		return lock.Command{X: &lock.Extra{Reply: resp.ErrorValue("ERR empty script request")}}
	}
	u, ok := table.Users().Get(req.Owner)
	switch {
	case ok:
	case req.Owner == acl.DefaultName || req.Owner == "": // a node's own default user may run anything
		u = acl.NewDefault("")
	default:
		return lock.Command{X: &lock.Extra{Reply: resp.ErrorValue(errUserGone.Error())}}
	}
	body := x.Script
	if body == "" {
		var ok bool
		if body, ok = table.Script(x.SHA); !ok {
			return lock.Command{X: &lock.Extra{Reply: errNoScript}}
		}
	}
	e := &lock.Extra{}
	if _, known := table.Script(script.SHA1Hex(body)); !known {
		e.Script = body // EVAL registers it, as Redis caches it
	}
	c := &scriptCaller{s: s, table: table, scratch: table.Scratch(), user: u}
	e.Reply = script.Run(body, x.Keys, x.Args, c, s.scriptLimits())
	switch {
	case c.tooMany:
		e.Reply = errScriptWrites
	case !e.Reply.IsError():
		e.Checks, e.Sub = c.checks, c.writes
	}
	return lock.Command{X: e}
}

// scriptCaller runs a script's redis.call and redis.pcall: on a scratch table
// loaded key by key from the real one (the leader's run), or, read-only,
// straight from the replica (EVAL_RO).
type scriptCaller struct {
	s        *Server
	table    *lock.Table
	scratch  *lock.Table // nil when read-only
	readOnly bool
	elapsed  int64     // ms since the replica's last apply, for read-only reads
	user     *acl.User // whom the script runs as

	loaded  map[string]bool
	checks  []lock.Check
	writes  []lock.Command
	bytes   int
	tooMany bool
}

func (c *scriptCaller) Call(args []string) resp.Value {
	spec := commandTable[strings.ToUpper(args[0])]
	switch {
	case spec == nil:
		return errUnknownInScript
	case spec.build == nil || spec.noScript:
		return errNotInScript
	case (spec.arity > 0 && len(args) != spec.arity) || (spec.arity < 0 && len(args) < -spec.arity):
		return errScriptArity
	case c.readOnly && !spec.read:
		return errWriteInReadOnly
	}
	bargs := make([][]byte, len(args))
	for i, a := range args {
		bargs[i] = []byte(a)
	}
	if !c.user.Unrestricted() {
		if err := permitted(c.user, spec, bargs); err != nil {
			return resp.ErrorValue("ERR ACL failure in script: " + strings.TrimPrefix(err.Error(), "NOPERM "))
		}
	}
	cmd, err := spec.build(c.s, bargs)
	if err != nil {
		return resp.ErrorValue(respError(err))
	}
	if c.readOnly {
		return c.table.Read(&cmd, c.elapsed)
	}
	if !spec.read {
		c.bytes += len(lock.AppendCommand(nil, &cmd))
		if len(c.writes) == maxScriptWrites || c.bytes > maxScriptWriteBytes {
			c.tooMany = true
			return errScriptWrites
		}
	}
	for _, name := range commandNames(&cmd) {
		if cmd.Op == lock.OpPublish {
			break // a channel, not a key
		}
		if !c.loaded[name] {
			if c.loaded == nil {
				c.loaded = map[string]bool{}
			}
			c.loaded[name] = true
			c.checks = append(c.checks, c.table.Load(c.scratch, name))
		}
	}
	v := c.scratch.Do(&cmd)
	if !spec.read {
		c.writes = append(c.writes, cmd)
	}
	return v
}

// commandNames are the keys cmd names.
func commandNames(cmd *lock.Command) []string {
	if cmd.X == nil || len(cmd.X.Keys) == 0 {
		return []string{cmd.Name}
	}
	return append([]string{cmd.Name}, cmd.X.Keys...)
}

// cmdScript: SCRIPT LOAD body | EXISTS sha... | FLUSH [ASYNC|SYNC] | KILL | HELP.
func (s *Server) cmdScript(c *client, r reply, args [][]byte) {
	sub := strings.ToUpper(string(args[1]))
	switch {
	case sub == "LOAD" && len(args) == 3:
		body := string(args[2])
		if err := script.Compile(body); err != nil {
			r.value(resp.ErrorValue(err.Error()))
			return
		}
		res, err := s.node.Do(context.Background(), lock.Command{Op: lock.OpScriptLoad, X: &lock.Extra{Script: body}})
		s.answerReply(r, res, err)
	case sub == "EXISTS" && len(args) >= 3:
		r.array(len(args) - 2)
		for _, a := range args[2:] {
			_, ok := s.node.Table().Script(strings.ToLower(string(a)))
			r.int(int64(b2i(ok)))
		}
	case sub == "FLUSH" && len(args) <= 3:
		if len(args) == 3 {
			if m := strings.ToUpper(string(args[2])); m != "ASYNC" && m != "SYNC" {
				r.err(errSyntax)
				return
			}
		}
		res, err := s.node.Do(context.Background(), lock.Command{Op: lock.OpScriptFlush})
		s.answerReply(r, res, err)
	case sub == "KILL" && len(args) == 2:
		r.value(resp.ErrorValue("NOTBUSY No scripts in execution right now."))
	case sub == "HELP" && len(args) == 2:
		lines := []string{
			"SCRIPT <subcommand> [<arg> ...]. Subcommands are:",
			"EXISTS <sha1> [<sha1> ...]", "FLUSH [ASYNC|SYNC]", "KILL", "LOAD <script>", "HELP",
		}
		r.array(len(lines))
		for _, l := range lines {
			r.status(l)
		}
	case sub == "LOAD" || sub == "EXISTS" || sub == "FLUSH" || sub == "KILL":
		r.err(arityError{cmd: "script|" + strings.ToLower(sub)})
	default:
		r.err(unknownSubcommandError{cmd: "script", sub: string(args[1])})
	}
}
