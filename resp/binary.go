package resp

import (
	"encoding/binary"
	"errors"
)

// ErrCorrupt is returned by Decode for bytes Append did not write.
var ErrCorrupt = errors.New("resp: corrupt value")

// maxDepth bounds the nesting of arrays Decode accepts.
const maxDepth = 16

// Append appends the binary form of v (for logs and snapshots): the kind,
// then the integer as a varint, or the string or the elements with their
// count as a uvarint.
func Append(dst []byte, v Value) []byte {
	dst = append(dst, byte(v.Kind))
	switch v.Kind {
	case Int:
		dst = binary.AppendVarint(dst, v.Int)
	case Bulk, Status, Error:
		dst = binary.AppendUvarint(dst, uint64(len(v.Str)))
		dst = append(dst, v.Str...)
	case Array:
		dst = binary.AppendUvarint(dst, uint64(len(v.Array)))
		for _, e := range v.Array {
			dst = Append(dst, e)
		}
	}
	return dst
}

// Decode decodes one value from the front of b and returns the rest.
func Decode(b []byte) (Value, []byte, error) { return decode(b, 0) }

func decode(b []byte, depth int) (Value, []byte, error) {
	if len(b) == 0 || depth > maxDepth {
		return Value{}, nil, ErrCorrupt
	}
	v := Value{Kind: Kind(b[0])}
	b = b[1:]
	switch v.Kind {
	case Nil, NullArray:
	case Int:
		n, k := binary.Varint(b)
		if k <= 0 {
			return Value{}, nil, ErrCorrupt
		}
		v.Int, b = n, b[k:]
	case Bulk, Status, Error:
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return Value{}, nil, ErrCorrupt
		}
		v.Str, b = string(b[k:k+int(n)]), b[k+int(n):]
	case Array:
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) { // every element takes a byte
			return Value{}, nil, ErrCorrupt
		}
		b = b[k:]
		if n > 0 {
			v.Array = make([]Value, 0, n)
		}
		for range n {
			e, rest, err := decode(b, depth+1)
			if err != nil {
				return Value{}, nil, err
			}
			v.Array, b = append(v.Array, e), rest
		}
	default:
		return Value{}, nil, ErrCorrupt
	}
	return v, b, nil
}
