package script

import (
	"math"
	"math/bits"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// bitFuncs is LuaBitOp 1.0, the bit library Redis ships: operations on
// numbers taken as 32-bit integers, returning signed 32-bit results.
func bitFuncs() map[string]lua.LGFunction {
	fold := func(fname string, op func(a, b uint32) uint32) lua.LGFunction {
		return func(L *lua.LState) int {
			r := bitArg(L, 1, fname)
			for i := 2; i <= L.GetTop(); i++ {
				r = op(r, bitArg(L, i, fname))
			}
			return pushBits(L, r)
		}
	}
	shift := func(fname string, op func(x uint32, n uint) uint32) lua.LGFunction {
		return func(L *lua.LState) int {
			return pushBits(L, op(bitArg(L, 1, fname), uint(bitArg(L, 2, fname)&31)))
		}
	}
	return map[string]lua.LGFunction{
		"tobit":   func(L *lua.LState) int { return pushBits(L, bitArg(L, 1, "tobit")) },
		"bnot":    func(L *lua.LState) int { return pushBits(L, ^bitArg(L, 1, "bnot")) },
		"band":    fold("band", func(a, b uint32) uint32 { return a & b }),
		"bor":     fold("bor", func(a, b uint32) uint32 { return a | b }),
		"bxor":    fold("bxor", func(a, b uint32) uint32 { return a ^ b }),
		"lshift":  shift("lshift", func(x uint32, n uint) uint32 { return x << n }),
		"rshift":  shift("rshift", func(x uint32, n uint) uint32 { return x >> n }),
		"arshift": shift("arshift", func(x uint32, n uint) uint32 { return uint32(int32(x) >> n) }),
		"rol":     shift("rol", func(x uint32, n uint) uint32 { return bits.RotateLeft32(x, int(n)) }),
		"ror":     shift("ror", func(x uint32, n uint) uint32 { return bits.RotateLeft32(x, -int(n)) }),
		"bswap":   func(L *lua.LState) int { return pushBits(L, bits.ReverseBytes32(bitArg(L, 1, "bswap"))) },
		"tohex":   bitTohex,
	}
}

// bitArg is LuaBitOp's conversion of a number to 32 bits: rounded to the
// nearest integer, modulo 2^32 (by adding 2^52+2^51, as it does).
func bitArg(L *lua.LState, n int, fname string) uint32 {
	return uint32(math.Float64bits(checkNumber(L, n, fname) + 6755399441055744.0))
}

func pushBits(L *lua.LState, b uint32) int {
	L.Push(lua.LNumber(int32(b)))
	return 1
}

func bitTohex(L *lua.LState) int {
	b := bitArg(L, 1, "tohex")
	n := int32(8)
	if L.Get(2) != lua.LNil {
		n = int32(bitArg(L, 2, "tohex"))
	}
	digits := "0123456789abcdef"
	if n < 0 {
		n, digits = -n, "0123456789ABCDEF"
	}
	n = min(n, 8)
	var sb strings.Builder
	for i := n - 1; i >= 0; i-- {
		sb.WriteByte(digits[b>>(4*uint(i))&15])
	}
	L.Push(lua.LString(sb.String()))
	return 1
}
