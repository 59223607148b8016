package server

import (
	"errors"
	"strconv"
	"strings"

	"github.com/lockd/lockd/replication"
	"github.com/lockd/lockd/resp"
	"github.com/tidwall/redcon"
)

// respError is the one mapping from an error to the text of a RESP error
// reply (without the leading '-').
func respError(err error) string {
	switch {
	case errors.Is(err, replication.ErrNoLeader):
		return errTryNoLeader.Error()
	case errors.Is(err, replication.ErrTimeout):
		return errTryTimeout.Error()
	case errors.Is(err, replication.ErrClosed):
		return errShuttingDown.Error()
	case errors.Is(err, replication.ErrClosedUnknown):
		return errClosedUnknown.Error()
	}
	s := err.Error()
	if i := strings.IndexAny(s, " "); i > 0 && s[:i] == strings.ToUpper(s[:i]) {
		return s // already "CODE message"
	}
	return "ERR " + s
}

// reply writes RESP2 or RESP3 replies on one connection. When res is set,
// an error written as the whole reply (not inside an array) sets *res to
// its kind, for the observer.
type reply struct {
	c     redcon.Conn
	resp3 bool
	res   *Result
}

func (r reply) err(err error) { r.errorText(respError(err)) }

// errorText writes the error reply msg (without its '-').
func (r reply) errorText(msg string) {
	if r.res != nil {
		*r.res = resultOf(msg)
	}
	r.c.WriteError(msg)
}

func (r reply) ok()                { r.c.WriteString("OK") }
func (r reply) status(s string)    { r.c.WriteString(s) }
func (r reply) int(n int64)        { r.c.WriteInt64(n) }
func (r reply) bulk(s string)      { r.c.WriteBulkString(s) }
func (r reply) bulkBytes(b []byte) { r.c.WriteBulk(b) }
func (r reply) array(n int)        { r.c.WriteArray(n) }

// push starts a pub/sub message or confirmation of n elements: a RESP3
// push, a RESP2 array.
func (r reply) push(n int) {
	if r.resp3 {
		r.c.WriteRaw([]byte(">" + strconv.Itoa(n) + "\r\n"))
		return
	}
	r.c.WriteArray(n)
}

// value writes v in the connection's protocol.
func (r reply) value(v resp.Value) {
	switch v.Kind {
	case resp.Nil:
		r.null()
	case resp.NullArray:
		if r.resp3 {
			r.c.WriteRaw([]byte("_\r\n"))
		} else {
			r.c.WriteRaw([]byte("*-1\r\n"))
		}
	case resp.Int:
		r.int(v.Int)
	case resp.Bulk:
		r.bulk(v.Str)
	case resp.Status:
		r.status(v.Str)
	case resp.Error:
		r.errorText(v.Str)
	case resp.Array:
		r.array(len(v.Array))
		r.res = nil // an element's error is not the command's
		for _, e := range v.Array {
			r.value(e)
		}
	}
}

// null writes RESP2's null bulk string or RESP3's null.
func (r reply) null() {
	if r.resp3 {
		r.c.WriteRaw([]byte("_\r\n"))
		return
	}
	r.c.WriteNull()
}

// mapHeader starts a map of n pairs: a RESP3 map, or a flat RESP2 array.
func (r reply) mapHeader(n int) {
	if r.resp3 {
		r.c.WriteRaw(append(strconv.AppendInt([]byte{'%'}, int64(n), 10), '\r', '\n'))
		return
	}
	r.c.WriteArray(2 * n)
}
