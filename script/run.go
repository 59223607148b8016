package script

import (
	"fmt"

	lua "github.com/yuin/gopher-lua"

	"github.com/lockd/lockd/resp"
)

// run is one execution of a script. It is the context.Context of its
// LState (and of the coroutines the script creates), through which the
// library functions find it: runOf(L).
//
// Concurrency: used by the goroutine that called Run, but for the budget's
// stop, which the watchdog calls.
type run struct {
	*budget
	caller     Caller
	lim        Limits
	sha        string
	globals    *lua.LTable // the script's _G: a read-only proxy
	ownGlobals *lua.LTable // behind globals: KEYS, ARGV, _G
	random     lrand48
}

// execute runs a compiled script.
func execute(proto *lua.FunctionProto, sha string, keys, args []string, c Caller, lim Limits) resp.Value {
	r := &run{budget: newBudget(lim.Instructions), caller: c, lim: lim, sha: sha, random: newLrand48()}
	stopWatching := r.watch(lim.Timeout, lim.HeapBytes)
	defer stopWatching()
	L := r.newState(keys, args)
	defer L.Close()

	fn := L.NewFunctionFromProto(proto)
	fn.Env = r.globals
	ret, errObj, line := r.call(L, fn)
	if why := r.overrun(); why != 0 {
		return r.overrunReply(why, line)
	}
	if errObj != nil {
		return r.errorReply(errObj, line)
	}
	reply := r.toReply(ret, 0)
	if why := r.overrun(); why != 0 {
		return r.overrunReply(why, 0)
	}
	return reply
}

// call calls fn with no arguments and returns its first result, or the
// error it raised (any panic, gopher-lua's or a library's, counts) and the
// line of the innermost Lua function at the time.
func (r *run) call(L *lua.LState, fn *lua.LFunction) (ret, errObj lua.LValue, line int) {
	defer func() {
		if p := recover(); p != nil {
			line = currentLine(L)
			errObj = panicObject(p)
		}
	}()
	L.Push(fn)
	L.Call(0, 1)
	return L.Get(-1), nil, 0
}

// stackOverflow is what gopher-lua panics with when a call nests deeper than
// callStackSize (its check before the push misses the last segment of a
// growing stack); it is reported as Lua reports it.
const stackOverflow = "lua callstack overflow"

// panicObject is the Lua error object for what the interpreter panicked
// with: an error raised by the script, or a panic of gopher-lua's own.
func panicObject(p any) lua.LValue {
	if ae, ok := p.(*lua.ApiError); ok {
		return errorObject(ae)
	}
	if s := fmt.Sprint(p); s != stackOverflow {
		return lua.LString(s)
	}
	return lua.LString("stack overflow")
}

// errorObject is the Lua error object of an error pcall caught.
func errorObject(ae *lua.ApiError) lua.LValue {
	if s, ok := ae.Object.(lua.LString); ok && ae.Type == lua.ApiErrorPanic && s == stackOverflow {
		return lua.LString("stack overflow")
	}
	return ae.Object
}

// currentLine is the line of the innermost Lua function on L's stack, or 0:
// Redis's error handler reports the function that raised the error, or its
// caller if that is a C function.
func currentLine(L *lua.LState) int {
	for level := 0; ; level++ {
		dbg, ok := L.GetStack(level)
		if !ok {
			return 0
		}
		if _, err := L.GetInfo("Sl", dbg, lua.LNil); err == nil && dbg.What != "G" && dbg.CurrentLine > 0 {
			return dbg.CurrentLine
		}
	}
}

// errorReply is the reply to a script that raised obj, as Redis 7 words it:
// the error's text ("ERR " and the message for a Lua error, the err field of
// a table such as redis.call raises), then " script: SHA, on
// @user_script:LINE.".
func (r *run) errorReply(obj lua.LValue, line int) resp.Value {
	var msg string
	switch o := obj.(type) {
	case *lua.LTable:
		if s, ok := o.RawGetString("err").(lua.LString); ok {
			msg = string(s)
		} else {
			msg = "ERR Error running script: the error object is a table without an err field"
		}
	default:
		msg = "ERR " + luaString(o)
	}
	return resp.ErrorValue(oneLine(msg + r.where(line)))
}

func (r *run) where(line int) string {
	if line <= 0 {
		return ""
	}
	return fmt.Sprintf(" script: %s, on @%s:%d.", r.sha, chunkName, line)
}

// overrunReply is the reply to a script stopped by its budget.
func (r *run) overrunReply(why overrun, line int) resp.Value {
	var msg string
	switch why {
	case overInstructions:
		msg = fmt.Sprintf("ERR Script exceeded the limit of %d instructions", r.lim.Instructions)
	case overTime:
		msg = fmt.Sprintf("ERR Script exceeded the time limit of %v", r.lim.Timeout)
	default:
		msg = fmt.Sprintf("ERR Script exceeded the memory limit of %d bytes", r.lim.HeapBytes)
	}
	return resp.ErrorValue(msg + r.where(line))
}
