// Package resp holds Value, a command's reply as Redis shapes it (integer,
// bulk string, null, status, error, array), independent of how RESP2 or RESP3
// puts it on the wire. The lock table answers key-space commands with
// Values, scripts convert Lua values to and from them, and the server writes
// them for each client's protocol.
package resp

import (
	"fmt"
	"strings"
)

// Kind is the shape of a Value.
type Kind uint8

// The kinds. Values are part of the on-disk format (Encode): never renumber.
const (
	Nil    Kind = 0 // RESP2 null bulk string, RESP3 null
	Int    Kind = 1
	Bulk   Kind = 2
	Status Kind = 3 // a simple string, "+OK"
	Error  Kind = 4 // "-ERR ...": Str holds the text without the dash
	Array  Kind = 5
	// NullArray is RESP2's null array ("*-1", an EXEC aborted by WATCH);
	// RESP3 has one null for both.
	NullArray Kind = 6
)

// Value is one reply. The zero Value is Nil.
type Value struct {
	Kind  Kind
	Int   int64
	Str   string
	Array []Value
}

// Constructors, so that code reads like the reply it builds.
func NilValue() Value                 { return Value{} }
func IntValue(n int64) Value          { return Value{Kind: Int, Int: n} }
func BulkValue(s string) Value        { return Value{Kind: Bulk, Str: s} }
func StatusValue(s string) Value      { return Value{Kind: Status, Str: s} }
func ErrorValue(text string) Value    { return Value{Kind: Error, Str: text} }
func ArrayValue(vs ...Value) Value    { return Value{Kind: Array, Array: vs} }
func OK() Value                       { return StatusValue("OK") }
func Errorf(f string, a ...any) Value { return ErrorValue(fmt.Sprintf(f, a...)) }

// IsError reports whether v is an error reply.
func (v Value) IsError() bool { return v.Kind == Error }

// String renders v the way redis-cli does, for tests and logs.
func (v Value) String() string {
	switch v.Kind {
	case Nil, NullArray:
		return "(nil)"
	case Int:
		return fmt.Sprintf("(integer) %d", v.Int)
	case Bulk:
		return fmt.Sprintf("%q", v.Str)
	case Status:
		return v.Str
	case Error:
		return "(error) " + v.Str
	case Array:
		parts := make([]string, len(v.Array))
		for i, e := range v.Array {
			parts[i] = e.String()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprintf("Value(kind %d)", v.Kind)
}
