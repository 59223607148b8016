package lock

import "encoding/binary"

// Scan returns the names of up to count locks from cursor on, in the
// table's order (a hash of the name), that match, and the cursor to go on
// from: 0 when the scan is done. As Redis's SCAN: a lock held for a whole
// scan is returned at least once (twice at most when a page ends inside a
// run of names of one hash); one taken or released meanwhile may or may not
// be. count is the number of locks looked at, whether or not they match.
func (t *Table) Scan(cursor uint64, count int, match func(string) bool) (names []string, next uint64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var from [8]byte
	binary.BigEndian.PutUint64(from[:], cursor)
	seen := 0
	t.locks.Ascend(string(from[:]), func(key string, _ *held) bool {
		if seen == count {
			next = keyHash(key)
			return false
		}
		seen++
		if name := key[8:]; match == nil || match(name) {
			names = append(names, name)
		}
		return true
	})
	return names, next
}

// Keys returns the names of all locks that match, in the table's order.
func (t *Table) Keys(match func(string) bool) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var names []string
	t.locks.Scan(func(key string, _ *held) bool {
		if name := key[8:]; match == nil || match(name) {
			names = append(names, name)
		}
		return true
	})
	return names
}
