package lock

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lockd/lockd/resp"
)

// Constructors for lock-delay and multi-lock scenarios. The IDs are given
// by mutexTable.do.

// lk is LOCK name owner [PX ttl] [WAIT wait] [DELAY delay].
func lk(name, owner string, ttl, wait, delay int64) Command {
	c := Command{Op: OpLock, Name: name, Owner: owner, TTL: ttl, Delay: delay}
	if wait > 0 {
		c.Op, c.Wait = OpLockWait, wait
	}
	return c
}

// mlk is MLOCK len(names) names... owner [PX ttl] [WAIT wait] [DELAY delay].
func mlk(owner string, ttl, wait, delay int64, names ...string) Command {
	c := Command{Op: OpMultiLock, Name: names[0], Owner: owner, TTL: ttl, Wait: wait, Delay: delay}
	if len(names) > 1 {
		c.X = &Extra{Keys: names[1:]}
	}
	return c
}

// munlk is MUNLOCK len(names) names... owner.
func munlk(owner string, names ...string) Command {
	c := mlk(owner, 0, 0, 0, names...)
	c.Op, c.Wait = OpMultiUnlock, 0
	return c
}

func unlk(name, owner string) Command { return Command{Op: OpUnlock, Name: name, Owner: owner} }

func setCmd(name, owner string, flags Flags) Command {
	return Command{Op: OpSet, Name: name, Owner: owner, Flags: flags}
}

func cancel(name string, target uint64) Command {
	return Command{Op: OpCancel, Name: name, Target: target}
}

// mutexTable applies commands, one batch per do, and renders their results.
type mutexTable struct {
	*Table
	tb    testing.TB
	id    uint64
	stamp int64
}

func newMutexTable(tb testing.TB) *mutexTable { return &mutexTable{Table: NewTable(), tb: tb} }

// at moves the leader's clock (term 1) to stamp ms.
func (m *mutexTable) at(stamp int64) *mutexTable { m.stamp = stamp; return m }

// do applies cmds, each with the next request ID, in one batch, and returns
// their results in order, then the later answers of queued requests as
// "#id=result". A result is the integer (0 for a refused LOCK or MLOCK),
// "queued", "[t1 t2]" for an MLOCK's tokens, or a reply ("nil", "OK",
// "-ERR ...").
func (m *mutexTable) do(cmds ...Command) []string {
	m.tb.Helper()
	first := m.id + 1
	for i := range cmds {
		m.id++
		cmds[i].ID = m.id
	}
	rs := m.Apply(1, &Batch{Term: 1, Stamp: m.stamp, Wall: 1_700_000_000_000 + m.stamp, Cmds: cmds}, nil)
	out := []string{}
	for _, r := range rs {
		s := render(r)
		if r.ID < first {
			s = fmt.Sprintf("#%d=%s", r.ID, s)
		}
		out = append(out, s)
	}
	checkInvariants(m.tb, m.Table)
	return out
}

// want checks do's results.
func (m *mutexTable) want(got []string, want ...string) {
	m.tb.Helper()
	if !slices.Equal(got, want) {
		m.tb.Errorf("at %d: results %q, want %q", m.stamp, got, want)
	}
}

func render(r Result) string {
	switch {
	case r.Value == Queued:
		return "queued"
	case r.Reply != nil && r.Reply.Kind == resp.Array:
		parts := make([]string, len(r.Reply.Array))
		for i, v := range r.Reply.Array {
			parts[i] = fmt.Sprint(v.Int)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case r.Reply != nil && r.Reply.Kind == resp.Int:
		return fmt.Sprint(r.Reply.Int)
	case r.Reply != nil && r.Reply.Kind == resp.Status:
		return r.Reply.Str
	case r.Reply != nil && r.Reply.Kind == resp.Error:
		return "-" + r.Reply.Str
	case r.Reply != nil:
		return "nil"
	}
	return fmt.Sprint(r.Value)
}

// holder is name's owner, or "" when nobody holds it.
func (m *mutexTable) holder(name string) string {
	info, _ := m.Get(name)
	return info.Owner
}
