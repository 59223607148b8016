package script

import (
	"math"

	lua "github.com/yuin/gopher-lua"
)

// mathFuncs is Lua 5.1's math library (with math.mod, as Redis's Lua is
// built), math.random and math.randomseed being Redis's.
func mathFuncs() map[string]lua.LGFunction {
	fs := map[string]lua.LGFunction{
		"atan2": func(L *lua.LState) int {
			return push(L, math.Atan2(checkNumber(L, 1, "atan2"), checkNumber(L, 2, "atan2")))
		},
		"fmod": func(L *lua.LState) int {
			return push(L, math.Mod(checkNumber(L, 1, "fmod"), checkNumber(L, 2, "fmod")))
		},
		"mod":        func(L *lua.LState) int { return push(L, math.Mod(checkNumber(L, 1, "mod"), checkNumber(L, 2, "mod"))) },
		"pow":        func(L *lua.LState) int { return push(L, math.Pow(checkNumber(L, 1, "pow"), checkNumber(L, 2, "pow"))) },
		"ldexp":      mathLdexp,
		"frexp":      mathFrexp,
		"modf":       mathModf,
		"max":        func(L *lua.LState) int { return mathFold(L, "max", func(a, b float64) bool { return b > a }) },
		"min":        func(L *lua.LState) int { return mathFold(L, "min", func(a, b float64) bool { return b < a }) },
		"random":     mathRandom,
		"randomseed": mathRandomseed,
	}
	for name, f := range map[string]func(float64) float64{
		"abs": math.Abs, "acos": math.Acos, "asin": math.Asin, "atan": math.Atan, "ceil": math.Ceil,
		"cos": math.Cos, "cosh": math.Cosh, "exp": math.Exp, "floor": math.Floor, "log": math.Log,
		"log10": math.Log10, "sin": math.Sin, "sinh": math.Sinh, "sqrt": math.Sqrt, "tan": math.Tan,
		"tanh": math.Tanh,
		"deg":  func(x float64) float64 { return x * 180 / math.Pi },
		"rad":  func(x float64) float64 { return x * math.Pi / 180 },
	} {
		fs[name] = func(L *lua.LState) int { return push(L, f(checkNumber(L, 1, name))) }
	}
	return fs
}

func push(L *lua.LState, fs ...float64) int {
	for _, f := range fs {
		L.Push(lua.LNumber(f))
	}
	return len(fs)
}

func mathLdexp(L *lua.LState) int {
	e := checkInt(L, 2, "ldexp")
	e = max(min(e, math.MaxInt32), math.MinInt32)
	return push(L, math.Ldexp(checkNumber(L, 1, "ldexp"), int(e)))
}

func mathFrexp(L *lua.LState) int {
	m, e := math.Frexp(checkNumber(L, 1, "frexp"))
	return push(L, m, float64(e))
}

func mathModf(L *lua.LState) int {
	x := checkNumber(L, 1, "modf")
	if math.IsInf(x, 0) {
		return push(L, x, 0)
	}
	i, f := math.Modf(x)
	return push(L, i, f)
}

// mathFold is math.max and math.min: the argument that better beats all the
// others.
func mathFold(L *lua.LState, fname string, better func(a, b float64) bool) int {
	m := checkNumber(L, 1, fname)
	for i := 2; i <= L.GetTop(); i++ {
		if x := checkNumber(L, i, fname); better(m, x) {
			m = x
		}
	}
	return push(L, m)
}

// mathRandom is Redis's math.random: Lua 5.1's, drawing from lrand48 rather
// than the C library's rand.
func mathRandom(L *lua.LState) int {
	const max = math.MaxInt32 // REDIS_LRAND48_MAX
	r := float64(runOf(L).random.next()%max) / max
	switch L.GetTop() {
	case 0:
		return push(L, r)
	case 1:
		u := checkInt32(L, 1, "random")
		if u < 1 {
			argError(L, 1, "random", "interval is empty")
		}
		return push(L, math.Floor(r*float64(u))+1)
	case 2:
		l, u := checkInt32(L, 1, "random"), checkInt32(L, 2, "random")
		if l > u {
			argError(L, 2, "random", "interval is empty")
		}
		return push(L, math.Floor(r*(float64(u)-float64(l)+1))+float64(l))
	}
	L.RaiseError("wrong number of arguments")
	return 0
}

func mathRandomseed(L *lua.LState) int {
	runOf(L).random.seed(checkInt32(L, 1, "randomseed"))
	return 0
}

// checkInt32 is luaL_checkint: the number truncated to a C int.
func checkInt32(L *lua.LState, n int, fname string) int32 {
	return int32(checkInt(L, n, fname))
}

// lrand48 is the 48-bit linear congruential generator of POSIX lrand48,
// which Redis uses for math.random. Each run starts from lrand48's initial
// state, so a script that does not seed it draws the same numbers every run.
type lrand48 struct{ x uint64 }

const (
	lrandA    = 0x5DEECE66D
	lrandC    = 0xB
	lrandMask = 1<<48 - 1
)

func newLrand48() lrand48 { return lrand48{x: 0x1234ABCD330E} }

// seed is srand48: the seed's 32 bits above 0x330E.
func (g *lrand48) seed(s int32) { g.x = uint64(uint32(s))<<16 | 0x330E }

// next is lrand48: the next state's top 31 bits.
func (g *lrand48) next() int32 {
	g.x = (lrandA*g.x + lrandC) & lrandMask
	return int32(g.x >> 17)
}
