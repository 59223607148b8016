package resp

import (
	"reflect"
	"testing"
)

func TestBinaryRoundTrip(t *testing.T) {
	for _, v := range []Value{
		NilValue(), IntValue(0), IntValue(-42), BulkValue(""), BulkValue("owner\x00x"), OK(),
		ErrorValue("ERR nope"), ArrayValue(), ArrayValue(IntValue(1), NilValue(), ArrayValue(BulkValue("a"))),
	} {
		b := Append([]byte("prefix"), v)
		got, rest, err := Decode(b[6:])
		if err != nil || len(rest) != 0 || !reflect.DeepEqual(got, v) {
			t.Fatalf("%v: decoded %v, rest %d, %v", v, got, len(rest), err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Append(nil, ArrayValue(IntValue(7), BulkValue("x"))))
	f.Add([]byte{5, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, rest, err := Decode(b)
		if err != nil {
			return
		}
		again, _, err := Decode(Append(nil, v))
		if err != nil || !reflect.DeepEqual(again, v) || len(rest) > len(b) {
			t.Fatalf("re-encoding %v: %v", v, err)
		}
	})
}
