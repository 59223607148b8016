package script

import (
	"math"
	"sync"

	lua "github.com/yuin/gopher-lua"
)

// The interpreter's stack bounds. A Lua call nested deeper than
// callStackSize fails with "stack overflow" (Lua 5.1 allows 20,000 Lua calls
// but only 200 nested C calls; gopher-lua nests Go calls for pcall,
// metamethods and callbacks, so one bound covers both), and the value stack
// grows from registrySize slots to at most registryMaxSize (16 bytes each:
// 4 MiB), failing with "registry overflow" past it.
const (
	callStackSize    = 1000
	registrySize     = 128
	registryMaxSize  = 256 << 10
	registryGrowStep = 1024
)

// maxArrayIndex is the largest index gopher-lua stores in a table's array
// part. Storing t[n] past the end of the array part appends nils up to n in
// one instruction, so the default (64 Mi) lets one assignment allocate 1 GiB,
// out of the watchdog's reach. No script can fill an array this long within
// DefaultInstructions, and keys past it still work (in the hash part), but
// the # of such a table counts only up to it.
const maxArrayIndex = 4 << 20

func init() {
	// gopher-lua reads this global in every table operation; lockd has no
	// other user of gopher-lua.
	lua.MaxArrayIndex = maxArrayIndex
}

// sharedEnv is the part of every run's environment that never changes,
// built once per process: the library tables, each behind a read-only proxy.
// A proxy is an empty table whose metatable sends reads to its backing table
// and raises "Attempt to modify a readonly table" on writes; the library
// functions that write tables raw (rawset, setmetatable, table.insert, ...)
// refuse proxies. No script can reach a backing table or a metatable, so
// nothing a run does changes what another run sees, and runs on different
// goroutines only read these tables.
//
// Concurrency: read-only after buildShared; safe for concurrent use.
type sharedEnv struct {
	globals     *lua.LTable                 // backing table of the globals, less KEYS, ARGV and _G
	globalsMeta *lua.LTable                 // metatable of each run's own globals: reads fall through to globals
	backing     map[*lua.LTable]*lua.LTable // read-only proxy -> its backing table
	stringMeta  *lua.LTable                 // metatable of strings: {__index = string}
	stringMetaP *lua.LTable                 // what getmetatable("") answers: a proxy of stringMeta
	readonlyErr *lua.LFunction              // __newindex of every read-only proxy
	next        *lua.LFunction              // the global next, which pairs returns
	ipairsAux   *lua.LFunction              // the iterator ipairs returns
}

var (
	sharedOnce sync.Once
	sharedEnvV *sharedEnv
)

// shared returns the shared environment, building it on first use.
func shared() *sharedEnv {
	sharedOnce.Do(func() { sharedEnvV = buildShared() })
	return sharedEnvV
}

func buildShared() *sharedEnv {
	// A throwaway state to build tables and functions with, and to borrow
	// gopher-lua's own base and coroutine functions from.
	tmp := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer tmp.Close()
	lua.OpenBase(tmp)
	lua.OpenCoroutine(tmp)
	borrowed := func(table, name string) lua.LGFunction {
		var fn lua.LValue
		if table == "" {
			fn = tmp.GetGlobal(name)
		} else {
			fn = tmp.GetField(tmp.GetGlobal(table), name)
		}
		return fn.(*lua.LFunction).GFunction
	}
	tmp.Env = tmp.NewTable() // the environment of the functions created below; nothing reads it

	env := &sharedEnv{backing: map[*lua.LTable]*lua.LTable{}, readonlyErr: tmp.NewFunction(errReadonly)}
	proxy := func(back *lua.LTable) *lua.LTable {
		p := env.readonlyProxy(tmp, back)
		env.backing[p] = back
		return p
	}
	library := func(funcs map[string]lua.LGFunction, values map[string]lua.LValue) *lua.LTable {
		back := tmp.CreateTable(0, len(funcs)+len(values))
		for name, fn := range funcs {
			back.RawSetString(name, tmp.NewFunction(fn))
		}
		for name, v := range values {
			back.RawSetString(name, v)
		}
		return proxy(back)
	}

	g := tmp.CreateTable(0, 40)
	for name, fn := range baseFuncs() {
		g.RawSetString(name, tmp.NewFunction(fn))
	}
	for _, name := range []string{"getfenv", "setfenv", "xpcall", "newproxy"} {
		g.RawSetString(name, tmp.NewFunction(borrowed("", name)))
	}
	g.RawSetString("_VERSION", lua.LString("Lua 5.1"))
	g.RawSetString(concatName, tmp.NewFunction(strConcat))
	stringLib := library(stringFuncs(), nil)
	g.RawSetString("string", stringLib)
	g.RawSetString("table", library(tableFuncs(), nil))
	g.RawSetString("math", library(mathFuncs(), map[string]lua.LValue{"pi": lua.LNumber(math.Pi), "huge": lua.LNumber(math.Inf(1))}))
	g.RawSetString("bit", library(bitFuncs(), nil))
	g.RawSetString("redis", library(redisFuncs(), redisValues()))
	co := map[string]lua.LGFunction{}
	for _, name := range []string{"resume", "running", "status", "yield"} {
		co[name] = borrowed("coroutine", name)
	}
	co["create"] = withBudget(borrowed("coroutine", "create"))
	co["wrap"] = withBudget(borrowed("coroutine", "wrap"))
	g.RawSetString("coroutine", library(co, nil))
	env.next = g.RawGetString("next").(*lua.LFunction)
	env.ipairsAux = tmp.NewFunction(ipairsAux)
	gmt := tmp.CreateTable(0, 1)
	gmt.RawSetString("__index", tmp.NewFunction(errMissingGlobal))
	g.Metatable = gmt
	env.globals = g
	env.globalsMeta = tmp.CreateTable(0, 1)
	env.globalsMeta.RawSetString("__index", g)

	env.stringMeta = tmp.CreateTable(0, 1)
	env.stringMeta.RawSetString("__index", stringLib)
	env.stringMetaP = proxy(env.stringMeta)
	return env
}

// readonlyProxy makes a read-only proxy of back.
func (env *sharedEnv) readonlyProxy(L *lua.LState, back *lua.LTable) *lua.LTable {
	mt := L.CreateTable(0, 2)
	mt.RawSetString("__index", back)
	mt.RawSetString("__newindex", env.readonlyErr)
	p := L.CreateTable(0, 0)
	p.Metatable = mt
	return p
}

// withBudget wraps a function that creates a coroutine, so that the new
// thread spends the run's budget. gopher-lua gives a new thread a child of
// its creator's context, whose Done neither counts instructions nor can be
// made without a goroutine for a context of another type; the thread is
// created with no context at all, then given the run's.
func withBudget(create lua.LGFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		ctx := L.RemoveContext()
		defer L.SetContext(ctx)
		n := create(L)
		for i := L.GetTop() - n + 1; i <= L.GetTop(); i++ {
			switch v := L.Get(i).(type) {
			case *lua.LState:
				v.SetContext(ctx)
			case *lua.LFunction: // coroutine.wrap's closure holds the thread
				for _, uv := range v.Upvalues {
					if th, ok := uv.Value().(*lua.LState); ok {
						th.SetContext(ctx)
					}
				}
			}
		}
		return n
	}
}

// errReadonly is the __newindex of read-only proxies.
func errReadonly(L *lua.LState) int {
	L.RaiseError("Attempt to modify a readonly table")
	return 0
}

// errMissingGlobal is the __index of the globals: reading a global that does
// not exist is an error, as in Redis.
func errMissingGlobal(L *lua.LState) int {
	switch k := L.Get(2).(type) {
	case lua.LString, lua.LNumber:
		L.RaiseError("Script attempted to access nonexistent global variable '%s'", luaString(k))
	default:
		L.RaiseError("Second argument to luaProtectedTableError must be a string or number")
	}
	return 0
}

// newState makes the interpreter of one run: a fresh LState whose globals
// are a read-only proxy over KEYS, ARGV and _G, then the shared globals.
func (r *run) newState(keys, args []string) *lua.LState {
	env := shared()
	L := lua.NewState(lua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       callStackSize,
		RegistrySize:        registrySize,
		RegistryMaxSize:     registryMaxSize,
		RegistryGrowStep:    registryGrowStep,
		MinimizeStackMemory: true,
	})
	own := L.G.Global // a fresh table NewState made; from now on out of the script's reach
	own.Metatable = env.globalsMeta
	globals := env.readonlyProxy(L, own)
	own.RawSetString("KEYS", stringArray(L, keys))
	own.RawSetString("ARGV", stringArray(L, args))
	own.RawSetString("_G", globals)
	r.globals, r.ownGlobals = globals, own
	L.G.Global = globals
	L.Env = globals
	L.SetMetatable(lua.LString(""), env.stringMeta)
	L.SetContext(r)
	return L
}

func stringArray(L *lua.LState, ss []string) *lua.LTable {
	t := L.CreateTable(len(ss), 0)
	for i, s := range ss {
		t.RawSetInt(i+1, lua.LString(s))
	}
	return t
}

// readonly reports whether t is a read-only proxy, and the tables behind it,
// searched in order.
func (r *run) readonly(t *lua.LTable) ([]*lua.LTable, bool) {
	if t == r.globals {
		return []*lua.LTable{r.ownGlobals, shared().globals}, true
	}
	if back, ok := shared().backing[t]; ok {
		return []*lua.LTable{back}, true
	}
	return nil, false
}

// checkWritable raises Redis's error if t is read-only.
func (r *run) checkWritable(L *lua.LState, t *lua.LTable) {
	if _, ro := r.readonly(t); ro {
		L.Error(lua.LString("Attempt to modify a readonly table"), 0)
	}
}
