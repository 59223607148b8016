package script

import (
	lua "github.com/yuin/gopher-lua"
)

// The version the redis table reports: lockd speaks Redis 7.2's script API.
const (
	redisVersion    = "7.2.0"
	redisVersionNum = 0x070200
)

// redisFuncs is the redis table, with Redis 7.2's wording for every misuse.
// Not here: acl_check_cmd (the caller checks each redis.call against its
// ACL user; a script cannot ask beforehand).
func redisFuncs() map[string]lua.LGFunction {
	return map[string]lua.LGFunction{
		"call":               func(L *lua.LState) int { return runOf(L).command(L, true) },
		"pcall":              func(L *lua.LState) int { return runOf(L).command(L, false) },
		"sha1hex":            redisSha1hex,
		"error_reply":        redisErrorReply,
		"status_reply":       redisStatusReply,
		"log":                redisLog,
		"setresp":            redisSetresp,
		"set_repl":           redisSetRepl,
		"replicate_commands": func(L *lua.LState) int { L.Push(lua.LTrue); return 1 },
		"breakpoint":         func(L *lua.LState) int { L.Push(lua.LFalse); return 1 },
		"debug":              func(L *lua.LState) int { return 0 },
	}
}

func redisValues() map[string]lua.LValue {
	return map[string]lua.LValue{
		"LOG_DEBUG":         lua.LNumber(0),
		"LOG_VERBOSE":       lua.LNumber(1),
		"LOG_NOTICE":        lua.LNumber(2),
		"LOG_WARNING":       lua.LNumber(3),
		"REPL_NONE":         lua.LNumber(0),
		"REPL_AOF":          lua.LNumber(1),
		"REPL_SLAVE":        lua.LNumber(2),
		"REPL_REPLICA":      lua.LNumber(2),
		"REPL_ALL":          lua.LNumber(3),
		"REDIS_VERSION":     lua.LString(redisVersion),
		"REDIS_VERSION_NUM": lua.LNumber(redisVersionNum),
	}
}

// raise raises Redis's error table for msg, as redis.* functions do for a
// misuse.
func raise(L *lua.LState, msg string) {
	L.Error(errorTable(L, msg), 0)
}

// command is redis.call (raise) and redis.pcall: it converts the arguments,
// which must be strings or numbers, calls the Caller and converts its reply.
// An error reply, or bad arguments, is raised by redis.call and returned as
// a table {err=...} by redis.pcall.
func (r *run) command(L *lua.LState, raiseErrors bool) int {
	var reply lua.LValue
	args, bad := commandArgs(L)
	if bad != "" {
		reply = errorTable(L, bad)
	} else {
		reply = r.fromReply(L, r.caller.Call(args), 0)
	}
	if raiseErrors && isErrorTable(reply) {
		L.Error(reply, 0)
	}
	L.Push(reply)
	return 1
}

// commandArgs converts redis.call's arguments, or says what is wrong with
// them.
func commandArgs(L *lua.LState) ([]string, string) {
	n := L.GetTop()
	if n == 0 {
		return nil, "Please specify at least one argument for this redis lib call"
	}
	args := make([]string, n)
	for i := range args {
		switch v := L.Get(i + 1).(type) {
		case lua.LString:
			args[i] = string(v)
		case lua.LNumber:
			args[i] = formatArgument(float64(v))
		default:
			return nil, "Lua redis lib command arguments must be strings or integers"
		}
	}
	return args, ""
}

func redisSha1hex(L *lua.LState) int {
	if L.GetTop() != 1 {
		raise(L, "wrong number of arguments")
	}
	var s string
	switch v := L.Get(1).(type) {
	case lua.LString, lua.LNumber:
		s = luaString(v)
	}
	L.Push(lua.LString(SHA1Hex(s)))
	return 1
}

// redisErrorReply returns {err=...}: the code is the first word if the text
// starts with a dash, ERR otherwise. A misuse returns, not raises, an error.
func redisErrorReply(L *lua.LState) int {
	s, ok := L.Get(1).(lua.LString)
	if L.GetTop() != 1 || !ok {
		L.Push(errorTable(L, "wrong number or type of arguments"))
		return 1
	}
	text := string(s)
	if len(text) == 0 || text[0] != '-' {
		text = "-" + text
	}
	L.Push(errorTable(L, text))
	return 1
}

func redisStatusReply(L *lua.LState) int {
	s, ok := L.Get(1).(lua.LString)
	if L.GetTop() != 1 || !ok {
		L.Push(errorTable(L, "wrong number or type of arguments"))
		return 1
	}
	t := L.CreateTable(0, 1)
	t.RawSetString("ok", s)
	L.Push(t)
	return 1
}

// redisLog checks its arguments as Redis does and logs nothing: a lock
// server's log is not the scripts' to fill.
func redisLog(L *lua.LState) int {
	if L.GetTop() < 2 {
		raise(L, "redis.log() requires two arguments or more.")
	}
	level, ok := toNumber(L.Get(1))
	if !ok {
		raise(L, "First argument must be a number (log level).")
	}
	if l := truncate(level); l < 0 || l > 3 {
		raise(L, "Invalid debug level.")
	}
	return 0
}

// redisSetresp accepts RESP2, the protocol of every reply here.
func redisSetresp(L *lua.LState) int {
	if L.GetTop() != 1 {
		raise(L, "redis.setresp() requires one argument.")
	}
	n, _ := toNumber(L.Get(1))
	switch truncate(n) {
	case 2:
		return 0
	case 3:
		raise(L, "RESP3 is not supported by lockd's scripts.")
	}
	raise(L, "RESP version must be 2 or 3.")
	return 0
}

// redisSetRepl checks its flags and does nothing: lockd replicates every
// write a script makes.
func redisSetRepl(L *lua.LState) int {
	if L.GetTop() != 1 {
		raise(L, "redis.set_repl() requires two arguments.")
	}
	n, _ := toNumber(L.Get(1))
	if truncate(n)&^3 != 0 {
		raise(L, "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.")
	}
	return 0
}
