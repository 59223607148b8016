package server

import "github.com/lockd/lockd/lock"

// commandSpec describes one command: how it is checked before it runs, and
// what COMMAND tells clients about it.
type commandSpec struct {
	name   string // lower case, as Redis reports it
	arity  int    // Redis convention: n exact, -n at least n (the name counts)
	noAuth bool   // allowed before AUTH
	flags  []string
	key    int // position of the first key (lock name), 0 for none
	run    func(s *Server, c *client, r reply, args [][]byte)

	// Writes that a pipeline may send together (see pipeline.go): parse
	// turns the arguments into the command run would execute, answer
	// replies with its result.
	parse  func(s *Server, args [][]byte) (lock.Command, error)
	answer func(r reply, v int64, err error)

	// build turns the arguments of a key-space command into the table's
	// command: how MULTI queues it, a script runs it and a pipeline sends
	// it. read marks the commands that change nothing: a client's are
	// answered from this node's replica (lock.Table.Read), a script's and a
	// transaction's in their place. noScript marks the commands a script
	// may not call.
	build    func(s *Server, args [][]byte) (lock.Command, error)
	read     bool
	noScript bool
}

// commandTable maps upper-case command names to their specs.
var commandTable map[string]*commandSpec

func init() {
	specs := []*commandSpec{
		{name: "lock", arity: -3, flags: []string{"write"}, key: 1, run: (*Server).cmdLock,
			parse: (*Server).lockArgs, answer: answerLock},
		{name: "unlock", arity: 3, flags: []string{"write"}, key: 1, run: (*Server).cmdUnlock,
			parse: (*Server).unlockArgs, answer: answerInt},
		{name: "renew", arity: 5, flags: []string{"write"}, key: 1, run: (*Server).cmdRenew,
			parse: (*Server).renewArgs, answer: answerInt},
		{name: "owner", arity: 2, flags: []string{"readonly", "fast"}, key: 1, run: (*Server).cmdOwner},
		{name: "lockinfo", arity: 2, flags: []string{"readonly", "fast"}, key: 1, run: (*Server).cmdLockInfo},
		{name: "dbsize", arity: 1, flags: []string{"readonly", "fast"}, run: (*Server).cmdDBSize},

		{name: "ping", arity: -1, flags: []string{"fast"}, run: (*Server).cmdPing},
		{name: "echo", arity: 2, flags: []string{"fast"}, run: (*Server).cmdEcho},
		{name: "quit", arity: -1, noAuth: true, flags: []string{"fast", "no-auth"}, run: (*Server).cmdQuit},
		{name: "select", arity: 2, flags: []string{"fast"}, run: (*Server).cmdSelect},
		{name: "auth", arity: -2, noAuth: true, flags: []string{"fast", "no-auth"}, run: (*Server).cmdAuth},
		{name: "hello", arity: -1, noAuth: true, flags: []string{"fast", "no-auth"}, run: (*Server).cmdHello},
		{name: "client", arity: -2, flags: []string{"admin"}, run: (*Server).cmdClient},
		{name: "command", arity: -1, flags: []string{"loading"}, run: (*Server).cmdCommand},
		{name: "info", arity: -1, flags: []string{"loading"}, run: (*Server).cmdInfo},
		{name: "role", arity: 1, flags: []string{"fast"}, run: (*Server).cmdRole},
		{name: "time", arity: 1, flags: []string{"fast"}, run: (*Server).cmdTime},

		{name: "eval", arity: -3, flags: []string{"noscript", "stale", "skip_monitor", "may_replicate", "no_mandatory_keys", "movablekeys"}, run: (*Server).cmdEval, noScript: true},
		{name: "evalsha", arity: -3, flags: []string{"noscript", "stale", "skip_monitor", "may_replicate", "no_mandatory_keys", "movablekeys"}, run: (*Server).cmdEvalSHA, noScript: true},
		{name: "eval_ro", arity: -3, flags: []string{"readonly", "noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"}, run: (*Server).cmdEvalRO, noScript: true},
		{name: "evalsha_ro", arity: -3, flags: []string{"readonly", "noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"}, run: (*Server).cmdEvalSHARO, noScript: true},
		{name: "script", arity: -2, flags: []string{"noscript"}, run: (*Server).cmdScript, noScript: true},
	}
	commandTable = make(map[string]*commandSpec, len(specs))
	for _, sp := range specs {
		commandTable[upper(sp.name)] = sp
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
