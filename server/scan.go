package server

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lockd/lockd/internal/glob"
)

// SCAN's bounds: COUNT defaults to 10 (as Redis) and is capped at
// maxScanCount, so that one page does not hold up this node's applies for
// long (a page reads the table under its read lock).
const (
	defaultScanCount = 10
	maxScanCount     = 10_000
)

// redisTypes are the type names Redis knows besides "string": SCAN ...
// TYPE of one of them finds no key here.
var redisTypes = map[string]bool{"list": true, "set": true, "zset": true, "hash": true, "stream": true}

// cmdScan: SCAN cursor [MATCH pattern] [COUNT n] [TYPE type] → [next
// cursor, [names]], from the local replica. The cursor is a position in the
// table's order (a hash of the name: lock.Table.Scan), so it survives any
// change to the table: a key held for a whole scan is returned at least
// once, one added or removed meanwhile may or may not be. "0" starts a
// scan, and ends it. COUNT is the number of keys looked at, not returned.
func (s *Server) cmdScan(c *client, r reply, args [][]byte) {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		r.err(errInvalidCursor)
		return
	}
	count := int64(defaultScanCount)
	var match func(string) bool
	otherType := false // TYPE of a type no key has: every key is a string
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			r.err(errSyntax)
			return
		}
		switch opt, arg := strings.ToUpper(string(args[i])), args[i+1]; opt {
		case "COUNT":
			n, err := parseInt(arg)
			switch {
			case err != nil:
				r.err(err)
				return
			case n < 1:
				r.err(errSyntax)
				return
			}
			count = min(n, maxScanCount)
		case "MATCH":
			match = matcher(string(arg))
		case "TYPE":
			switch t := strings.ToLower(string(arg)); {
			case t == "string":
			case redisTypes[t]:
				otherType = true
			default:
				r.err(fmt.Errorf("ERR unknown type name '%s'", clip(arg)))
				return
			}
		default:
			r.err(errSyntax)
			return
		}
	}
	if err := s.catchUp(c); err != nil {
		r.err(err)
		return
	}
	if otherType {
		match = func(string) bool { return false }
	}
	names, next := s.node.Table().Scan(cursor, int(count), match)
	r.array(2)
	r.bulk(strconv.FormatUint(next, 10))
	r.array(len(names))
	for _, n := range names {
		r.bulk(n)
	}
}

// cmdKeys: KEYS pattern → every name that matches, from the local replica.
func (s *Server) cmdKeys(c *client, r reply, args [][]byte) {
	if err := s.catchUp(c); err != nil {
		r.err(err)
		return
	}
	names := s.node.Table().Keys(matcher(string(args[1])))
	r.array(len(names))
	for _, n := range names {
		r.bulk(n)
	}
}

// matcher is the filter of names for a glob pattern: nil (every name) for
// "*", as Redis skips matching then.
func matcher(pattern string) func(string) bool {
	if pattern == "*" {
		return nil
	}
	return func(name string) bool { return glob.Match(pattern, name) }
}
