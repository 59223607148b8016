package script

import (
	"fmt"
	"math"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// strFormat is Lua 5.1's string.format: C's printf conversions c d i o u x
// X e E f g G, q and s, with at most 5 flags and 2 digits of width and of
// precision each, so that one conversion is short; the whole result is
// bounded by Limits.MaxString.
func strFormat(L *lua.LState) int {
	f := checkString(L, 1, "format")
	var b strings.Builder
	add := func(s string) {
		checkSize(L, int64(b.Len())+int64(len(s)))
		b.WriteString(s)
	}
	arg := 1
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			j := strings.IndexByte(f[i:], '%')
			if j < 0 {
				j = len(f) - i
			}
			add(f[i : i+j])
			i += j - 1
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			add("%")
			continue
		}
		arg++
		if arg > L.GetTop() {
			argError(L, arg, "format", "no value")
		}
		spec, conv, next := scanFormat(L, f, i)
		i = next
		add(formatOne(L, arg, spec, conv))
	}
	L.Push(lua.LString(b.String()))
	return 1
}

// formatSpec is a conversion's flags, width and precision.
type formatSpec struct {
	flags     string
	width     int // -1 if absent
	precision int // -1 if absent
}

// scanFormat reads the conversion at f[i:] (after the %) and returns it, the
// conversion character and the index of that character.
func scanFormat(L *lua.LState, f string, i int) (formatSpec, byte, int) {
	at := func(k int) byte {
		if k < len(f) {
			return f[k]
		}
		return 0
	}
	spec := formatSpec{width: -1, precision: -1}
	start := i
	for at(i) != 0 && strings.IndexByte("-+ #0", at(i)) >= 0 {
		i++
	}
	if i-start > 5 {
		L.RaiseError("invalid format (repeated flags)")
	}
	spec.flags = f[start:i]
	digits := func() int {
		n := -1
		for k := 0; k < 2 && isDigit(at(i)); k++ {
			n = max(n, 0)*10 + int(at(i)-'0')
			i++
		}
		return n
	}
	spec.width = digits()
	if at(i) == '.' {
		i++
		spec.precision = max(digits(), 0)
	}
	if isDigit(at(i)) {
		L.RaiseError("invalid format (width or precision too long)")
	}
	return spec, at(i), i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// verb is the spec as a Go fmt verb.
func (s formatSpec) verb(conv byte) string {
	v := "%" + s.flags
	if s.width >= 0 {
		v += fmt.Sprint(s.width)
	}
	if s.precision >= 0 {
		v += "." + fmt.Sprint(s.precision)
	}
	return v + string(conv)
}

// pad pads s to the spec's width, on the left unless the flags say '-'.
func (s formatSpec) pad(str string) string {
	if len(str) >= s.width {
		return str
	}
	fill := strings.Repeat(" ", s.width-len(str))
	if strings.Contains(s.flags, "-") {
		return str + fill
	}
	return fill + str
}

func formatOne(L *lua.LState, arg int, spec formatSpec, conv byte) string {
	switch conv {
	case 'c':
		return spec.pad(string([]byte{byte(checkInt(L, arg, "format"))}))
	case 'd', 'i':
		return fmt.Sprintf(spec.verb('d'), checkInt(L, arg, "format"))
	case 'o', 'u', 'x', 'X':
		n := uint64(checkInt(L, arg, "format"))
		if conv == 'u' {
			conv = 'd'
		}
		return fmt.Sprintf(spec.verb(conv), n)
	case 'e', 'E', 'f', 'g', 'G':
		x := checkNumber(L, arg, "format")
		if math.IsInf(x, 0) || math.IsNaN(x) {
			s := formatNumber(x)
			if x > 0 && strings.Contains(spec.flags, "+") {
				s = "+" + s
			}
			if conv == 'E' || conv == 'G' {
				s = strings.ToUpper(s)
			}
			return spec.pad(s)
		}
		if spec.precision < 0 && (conv == 'g' || conv == 'G') {
			spec.precision = 6 // C's default; Go's %g would print the shortest form
		}
		if conv == 'f' && spec.precision < 0 {
			spec.precision = 6
		}
		return fmt.Sprintf(spec.verb(conv), x)
	case 'q':
		return quoteString(checkString(L, arg, "format"))
	case 's':
		s := checkString(L, arg, "format")
		if spec.precision >= 0 && spec.precision < len(s) {
			s = s[:spec.precision]
		}
		return spec.pad(s)
	}
	L.RaiseError("invalid option '%%%c' to 'format'", conv)
	return ""
}

// quoteString is %q: the string between double quotes, with what Lua's
// reader needs escaped.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString("\\\n")
		case '\r':
			b.WriteString("\\r")
		case 0:
			b.WriteString("\\000")
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
