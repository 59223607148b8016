package script

import (
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/lockd/lockd/resp"
)

// maxReplyDepth bounds the nesting of the arrays converted either way. It is
// resp.Decode's bound, so that every reply can go into the log; a table
// nested deeper becomes the error Redis puts in place of a table nested past
// its Lua stack ("reached lua stack limit").
const maxReplyDepth = 16

// toReply converts a script's return value to a reply, as Redis does for a
// RESP2 client: a number is an integer (truncated), a string a bulk string,
// true the integer 1, false and nil the null reply; a table with an err or
// ok string field is an error or a status reply (and one with a double,
// big_number, verbatim_string, map or set field is what Redis makes of those
// for RESP2); any other table is an array of its elements 1, 2, ... up to
// the first nil. Each value converted spends an instruction.
func (r *run) toReply(v lua.LValue, depth int) resp.Value {
	if !r.spend(1) {
		return resp.NilValue()
	}
	switch v := v.(type) {
	case lua.LString:
		return resp.BulkValue(string(v))
	case lua.LBool:
		if v {
			return resp.IntValue(1)
		}
	case lua.LNumber:
		return resp.IntValue(toInteger(float64(v)))
	case *lua.LTable:
		if depth >= maxReplyDepth {
			return resp.ErrorValue("ERR reached lua stack limit")
		}
		return r.tableReply(v, depth)
	}
	return resp.NilValue()
}

func (r *run) tableReply(t *lua.LTable, depth int) resp.Value {
	if s, ok := t.RawGetString("err").(lua.LString); ok {
		return resp.ErrorValue(oneLine(string(s)))
	}
	if s, ok := t.RawGetString("ok").(lua.LString); ok {
		return resp.StatusValue(oneLine(string(s)))
	}
	if d, ok := t.RawGetString("double").(lua.LNumber); ok {
		return resp.BulkValue(formatDouble(float64(d)))
	}
	if s, ok := t.RawGetString("big_number").(lua.LString); ok {
		return resp.BulkValue(oneLine(string(s)))
	}
	if vs, ok := t.RawGetString("verbatim_string").(*lua.LTable); ok {
		_, hasFormat := vs.RawGetString("format").(lua.LString)
		if s, ok := vs.RawGetString("string").(lua.LString); ok && hasFormat {
			return resp.BulkValue(string(s))
		}
	}
	if m, ok := t.RawGetString("map").(*lua.LTable); ok {
		var out []resp.Value
		for k, v := m.Next(lua.LNil); k != lua.LNil && r.spend(0); k, v = m.Next(k) {
			out = append(out, r.toReply(k, depth+1), r.toReply(v, depth+1))
		}
		return resp.ArrayValue(out...)
	}
	if s, ok := t.RawGetString("set").(*lua.LTable); ok {
		var out []resp.Value
		for k, _ := s.Next(lua.LNil); k != lua.LNil && r.spend(0); k, _ = s.Next(k) {
			out = append(out, r.toReply(k, depth+1))
		}
		return resp.ArrayValue(out...)
	}
	var out []resp.Value
	for i := 1; r.spend(0); i++ {
		e := t.RawGetInt(i)
		if e == lua.LNil {
			break
		}
		out = append(out, r.toReply(e, depth+1))
	}
	return resp.ArrayValue(out...)
}

// toInteger is C's (long long) cast of a Lua number as x86-64 does it: out
// of range and NaN are the smallest integer.
func toInteger(f float64) int64 {
	if f != f || f >= math.MaxInt64 || f < math.MinInt64 {
		return math.MinInt64
	}
	return int64(f)
}

// fromReply converts a command's reply for the script, as Redis does: an
// integer is a number, a bulk string a string, a null false, an array a
// table (its nulls false), a status {ok=...} and an error {err=...}. Each
// value converted spends an instruction.
func (r *run) fromReply(L *lua.LState, v resp.Value, depth int) lua.LValue {
	if !r.spend(1) {
		return lua.LFalse
	}
	switch v.Kind {
	case resp.Int:
		return lua.LNumber(float64(v.Int))
	case resp.Bulk:
		return lua.LString(v.Str)
	case resp.Status:
		t := L.CreateTable(0, 1)
		t.RawSetString("ok", lua.LString(v.Str))
		return t
	case resp.Error:
		return errorTable(L, "-"+v.Str)
	case resp.Array:
		if depth >= maxReplyDepth {
			return errorTable(L, "reached lua stack limit")
		}
		t := L.CreateTable(len(v.Array), 0)
		for i, e := range v.Array {
			t.RawSetInt(i+1, r.fromReply(L, e, depth+1))
		}
		return t
	}
	return lua.LFalse
}

// errorTable is the table Redis makes of an error (luaPushErrorBuff): text
// is "-CODE message" or a bare message, which gets the code ERR; the table
// is {err="CODE message", ignore_error_stats_update=true}.
func errorTable(L *lua.LState, text string) *lua.LTable {
	code, msg := "ERR", text
	if rest, ok := strings.CutPrefix(text, "-"); ok {
		if c, m, found := strings.Cut(rest, " "); found {
			code, msg = c, m
		} else {
			msg = rest
		}
	}
	t := L.CreateTable(0, 2)
	t.RawSetString("err", lua.LString(code+" "+strings.Trim(msg, "\r\n")))
	t.RawSetString("ignore_error_stats_update", lua.LTrue)
	return t
}

// isErrorTable reports whether v is a table with a string err field.
func isErrorTable(v lua.LValue) bool {
	t, ok := v.(*lua.LTable)
	if !ok {
		return false
	}
	_, ok = t.RawGetString("err").(lua.LString)
	return ok
}

// formatArgument converts a number passed to redis.call to a string as Redis
// 7.2 does since 7.2.5 (#13115): an integer in full, any other number in the
// shortest digits that read back as the same double (fpconv_dtoa), in plain
// notation unless the exponent is far from them.
func formatArgument(f float64) string {
	if n, ok := wholeNumber(f); ok {
		return strconv.FormatInt(n, 10)
	}
	return shortestDouble(f)
}

// wholeNumber is Redis's double2ll: f as an integer if it is one and well
// within the int64 range.
func wholeNumber(f float64) (int64, bool) {
	if f < -math.MaxInt64/2 || f > math.MaxInt64/2 || f != math.Trunc(f) {
		return 0, false
	}
	return int64(f), true
}

// shortestDouble is Redis's fpconv_dtoa.
func shortestDouble(f float64) string {
	var b []byte
	if math.Signbit(f) {
		b = append(b, '-')
		f = -f
	}
	switch {
	case f == 0:
		return string(append(b, '0'))
	case math.IsNaN(f):
		return string(append(b, "nan"...))
	case math.IsInf(f, 0):
		return string(append(b, "inf"...))
	}
	// Shortest digits and exponent: d.ddde±x.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	nd := len(digits)
	k := x - (nd - 1) // the value is digits * 10^k
	absExp := x
	if absExp < 0 {
		absExp = -absExp
	}
	switch {
	case k >= 0 && absExp < nd+7: // an integer
		b = append(b, digits...)
		return string(append(b, strings.Repeat("0", k)...))
	case k < 0 && (k > -7 || absExp < 4): // a decimal fraction
		point := nd + k
		if point <= 0 {
			b = append(b, "0."...)
			b = append(b, strings.Repeat("0", -point)...)
			return string(append(b, digits...))
		}
		b = append(b, digits[:point]...)
		b = append(b, '.')
		return string(append(b, digits[point:]...))
	}
	b = append(b, digits[0])
	if nd > 1 {
		b = append(b, '.')
		b = append(b, digits[1:]...)
	}
	b = append(b, 'e')
	if x < 0 {
		b = append(b, '-')
	} else {
		b = append(b, '+')
	}
	return string(strconv.AppendInt(b, int64(absExp), 10))
}

// formatDouble is Redis's d2string, with which a {double=...} reply becomes
// a RESP2 bulk string.
func formatDouble(f float64) string {
	if f == 0 && math.Signbit(f) {
		return "-0"
	}
	return formatArgument(f)
}
