package lock

import (
	"container/heap"
	"slices"

	"github.com/lockd/lockd/resp"
)

// Scripts run once, on the leader, against a scratch table: an empty table
// with the leader's clock and fencing counter, into which the script's
// first touch of each key copies that key from the real table (Load). The
// script's commands run on the scratch table with the real table's
// semantics (Do) and change nothing else. The leader then proposes an
// OpEffects: the versions Load saw, the script's writes and its reply. When
// it is applied, the writes run again on every node's real table, only if
// every key still has the version the script saw; so the effects are those
// the script would have had at its place in the log, or none (Retry).

// Scratch returns an empty table with t's clock, fencing counter and last
// version, for a script to run on.
func (t *Table) Scratch() *Table {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := NewTable()
	s.term, s.stamp, s.now, s.fence, s.mod, s.wall = t.term, t.stamp, t.now, t.fence, t.mod, t.wall
	return s
}

// Load copies the key name (its owner, token, lease, queue and version)
// from t into the scratch table s, unless s has it already, and returns the
// Check for it: the version the script sees (0: no such key).
func (t *Table) Load(s *Table, name string) Check {
	if h, ok := s.byName[name]; ok {
		return Check{Name: name, Version: h.version}
	}
	if _, ok := s.loaded[name]; ok {
		return Check{Name: name} // loaded, and gone since
	}
	if s.loaded == nil {
		s.loaded = map[string]struct{}{}
	}
	s.loaded[name] = struct{}{}
	t.mu.RLock()
	h, ok := t.byName[name]
	var c held
	if ok {
		c = *h
		c.waiters = slices.Clone(h.waiters)
	}
	b, isBlocked := t.blocked[name]
	if isBlocked {
		// It stays blocked for the script, which cannot serve its queue.
		s.blocked[name] = &blocked{until: b.until, version: b.version}
	}
	t.mu.RUnlock()
	if isBlocked {
		return Check{Name: name, Version: s.blocked[name].version}
	}
	if !ok {
		return Check{Name: name}
	}
	c.lease, c.gen = nil, s.gen
	if c.deadline != 0 {
		c.lease = &lease{deadline: c.deadline, name: name}
		heap.Push(&s.leases, c.lease)
	}
	s.put(name, &c)
	for _, w := range c.waiters {
		s.waits.Set(waitRec{at: w.deadline, name: name, id: w.id})
		s.waiting++
	}
	return Check{Name: name, Version: c.version}
}

// Do runs one command of a script on a scratch table and returns its reply
// (see Table.do). The caller loads every key the command names first.
func (s *Table) Do(c *Command) resp.Value {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out = s.out[:0]
	return s.do(c)
}
