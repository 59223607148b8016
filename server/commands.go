package server

import (
	"github.com/lockd/lockd/acl"
	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/resp"
)

// commandSpec describes one command: how it is checked before it runs, and
// what COMMAND tells clients about it.
type commandSpec struct {
	name    string // lower case, as Redis reports it
	id      int    // its index in commandsByID (CommandNames)
	arity   int    // Redis convention: n exact, -n at least n (the name counts)
	noAuth  bool   // allowed before AUTH
	flags   []string
	key     int // position of the first key (lock name), 0 for none
	lastKey int // position of the last key: 0 the same as key, -1 the last argument
	run     func(s *Server, c *client, r reply, args [][]byte)

	// build turns the arguments of a key-space or lock command (args[0] is
	// the command's name, and the arity is already checked) into the
	// table's command: how a client's command runs (see Server.dispatch),
	// how MULTI queues it, how a script runs it and how a pipeline sends
	// it. A command with build has no run. read marks the commands that
	// change nothing: a client's are answered from this node's replica
	// (lock.Table.Read), a script's and a transaction's in their place.
	// noScript marks the commands a script may not call.
	build    func(s *Server, args [][]byte) (lock.Command, error)
	read     bool
	noScript bool
	// render, when set, writes the command's reply instead of reply.value
	// (LOCKINFO is a map under RESP3).
	render func(r reply, v resp.Value)

	cats acl.Category // its ACL categories, from flags and name (acl.go)
}

// commandTable maps upper-case command names to their specs; commandsByID
// lists their names by id.
var (
	commandTable map[string]*commandSpec
	commandsByID []string
)

func init() {
	var (
		write         = []string{"write"}
		writeFast     = []string{"write", "fast"}
		writeOOM      = []string{"write", "denyoom"}
		readFast      = []string{"readonly", "fast"}
		txControl     = []string{"noscript", "loading", "stale", "fast", "allow_busy"}
		pubsubControl = []string{"pubsub", "noscript", "loading", "stale"}
	)
	specs := []*commandSpec{
		// Locks (locks.go).
		// A script may not LOCK: the token it would see on the leader's
		// scratch copy is not the one the grant gets when applied.
		{name: "lock", arity: -3, flags: write, key: 1, build: (*Server).lockArgs, noScript: true},
		{name: "unlock", arity: 3, flags: write, key: 1, build: (*Server).unlockArgs},
		{name: "renew", arity: 5, flags: write, key: 1, build: (*Server).renewArgs},
		{name: "owner", arity: 2, flags: readFast, key: 1, build: readOf(lock.OpGet, 0), read: true},
		{name: "lockinfo", arity: 2, flags: readFast, key: 1, build: readOf(lock.OpLockInfo, 0), read: true, render: renderLockInfo},
		{name: "dbsize", arity: 1, flags: readFast, run: (*Server).cmdDBSize},

		// Read/write locks and semaphores (shared.go), in a namespace of
		// their own. A script may not call them: its scratch copy of the
		// table does not hold them.
		{name: "rwlock", arity: -4, flags: write, key: 1, build: (*Server).rwlockArgs, noScript: true},
		{name: "rwunlock", arity: 3, flags: write, key: 1, build: sharedUnlockArgs(false), noScript: true},
		{name: "rwrenew", arity: 5, flags: write, key: 1, build: sharedRenewArgs(false), noScript: true},
		{name: "rwinfo", arity: 2, flags: readFast, key: 1, run: sharedInfo(false), noScript: true},
		{name: "semlock", arity: -4, flags: write, key: 1, build: (*Server).semlockArgs, noScript: true},
		{name: "semunlock", arity: 3, flags: write, key: 1, build: sharedUnlockArgs(true), noScript: true},
		{name: "semrenew", arity: 5, flags: write, key: 1, build: sharedRenewArgs(true), noScript: true},
		{name: "seminfo", arity: 2, flags: readFast, key: 1, run: sharedInfo(true), noScript: true},

		// The key space (keys.go).
		{name: "set", arity: -3, flags: writeOOM, key: 1, build: (*Server).setArgs},
		{name: "setnx", arity: 3, flags: []string{"write", "denyoom", "fast"}, key: 1, build: (*Server).setnxArgs},
		{name: "get", arity: 2, flags: readFast, key: 1, build: readOf(lock.OpGet, 0), read: true},
		{name: "mget", arity: -2, flags: readFast, key: 1, lastKey: -1, run: (*Server).cmdMGet},
		{name: "del", arity: -2, flags: write, key: 1, lastKey: -1, build: (*Server).delArgs},
		{name: "unlink", arity: -2, flags: writeFast, key: 1, lastKey: -1, build: (*Server).delArgs},
		{name: "exists", arity: -2, flags: readFast, key: 1, lastKey: -1, build: (*Server).existsArgs, read: true},
		{name: "expire", arity: -3, flags: writeFast, key: 1, build: expireOf(1000, false)},
		{name: "pexpire", arity: -3, flags: writeFast, key: 1, build: expireOf(1, false)},
		{name: "expireat", arity: -3, flags: writeFast, key: 1, build: expireOf(1000, true)},
		{name: "pexpireat", arity: -3, flags: writeFast, key: 1, build: expireOf(1, true)},
		{name: "ttl", arity: 2, flags: readFast, key: 1, build: readOf(lock.OpPTTL, lock.FlagSeconds), read: true},
		{name: "pttl", arity: 2, flags: readFast, key: 1, build: readOf(lock.OpPTTL, 0), read: true},
		{name: "expiretime", arity: 2, flags: readFast, key: 1, build: readOf(lock.OpExpireAt, lock.FlagSeconds), read: true},
		{name: "pexpiretime", arity: 2, flags: readFast, key: 1, build: readOf(lock.OpExpireAt, 0), read: true},
		{name: "persist", arity: 2, flags: writeFast, key: 1, build: (*Server).persistArgs},
		{name: "type", arity: 2, flags: readFast, key: 1, build: readOf(lock.OpType, 0), read: true},
		{name: "delex", arity: -2, flags: writeFast, key: 1, build: (*Server).delexArgs},
		{name: "delifeq", arity: 3, flags: writeFast, key: 1, build: (*Server).delifeqArgs},
		{name: "scan", arity: -2, flags: []string{"readonly"}, run: (*Server).cmdScan},
		{name: "keys", arity: 2, flags: []string{"readonly"}, run: (*Server).cmdKeys},

		// Transactions (multi.go).
		{name: "multi", arity: 1, flags: txControl, noScript: true, run: (*Server).cmdMulti},
		{name: "exec", arity: 1, flags: []string{"noscript", "loading", "stale", "skip_slowlog"}, noScript: true, run: (*Server).cmdExec},
		{name: "discard", arity: 1, flags: txControl, noScript: true, run: (*Server).cmdDiscard},
		{name: "watch", arity: -2, flags: txControl, key: 1, lastKey: -1, noScript: true, run: (*Server).cmdWatch},
		{name: "unwatch", arity: 1, flags: txControl, noScript: true, run: (*Server).cmdUnwatch},

		// Pub/sub (pubsub.go). PUBLISH goes through the log: every node
		// delivers the message to its own subscribers.
		{name: "publish", arity: 3, flags: []string{"pubsub", "loading", "stale", "fast"}, build: (*Server).publishArgs},
		{name: "subscribe", arity: -2, flags: pubsubControl, noScript: true, run: (*Server).cmdSubscribe},
		{name: "psubscribe", arity: -2, flags: pubsubControl, noScript: true, run: (*Server).cmdSubscribe},
		{name: "unsubscribe", arity: -1, flags: pubsubControl, noScript: true, run: (*Server).cmdUnsubscribe},
		{name: "punsubscribe", arity: -1, flags: pubsubControl, noScript: true, run: (*Server).cmdUnsubscribe},
		{name: "pubsub", arity: -2, flags: []string{"pubsub", "loading", "stale"}, run: (*Server).cmdPubSub},

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
		{name: "member", arity: -2, flags: []string{"admin"}, run: (*Server).cmdMember},
		{name: "time", arity: 1, flags: []string{"fast"}, run: (*Server).cmdTime},
		{name: "leader", arity: -2, flags: []string{"admin"}, run: (*Server).cmdLeader},
		{name: "backup", arity: 2, flags: []string{"admin", "noscript"}, run: (*Server).cmdBackup},

		{name: "eval", arity: -3, flags: []string{"noscript", "stale", "skip_monitor", "may_replicate", "no_mandatory_keys", "movablekeys"}, run: (*Server).cmdEval, noScript: true},
		{name: "evalsha", arity: -3, flags: []string{"noscript", "stale", "skip_monitor", "may_replicate", "no_mandatory_keys", "movablekeys"}, run: (*Server).cmdEvalSHA, noScript: true},
		{name: "eval_ro", arity: -3, flags: []string{"readonly", "noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"}, run: (*Server).cmdEvalRO, noScript: true},
		{name: "evalsha_ro", arity: -3, flags: []string{"readonly", "noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"}, run: (*Server).cmdEvalSHARO, noScript: true},
		{name: "script", arity: -2, flags: []string{"noscript"}, run: (*Server).cmdScript, noScript: true},
		{name: "acl", arity: -2, flags: []string{"admin", "noscript", "loading", "stale"}, run: (*Server).cmdACL, noScript: true},
	}
	commandTable = make(map[string]*commandSpec, len(specs))
	for i, sp := range specs {
		sp.cats = categoriesOf(sp)
		commandTable[upper(sp.name)] = sp
		sp.id = i
		commandsByID = append(commandsByID, sp.name)
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
