package lock

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// Command constructors, so that scenarios read like the protocol.

func lockCmd(id uint64, name, owner string, ttl int64) Command {
	return Command{Op: OpLock, ID: id, Name: name, Owner: owner, TTL: ttl}
}

func unlockCmd(id uint64, name, owner string) Command {
	return Command{Op: OpUnlock, ID: id, Name: name, Owner: owner}
}

func renewCmd(id uint64, name, owner string, ttl int64) Command {
	return Command{Op: OpRenew, ID: id, Name: name, Owner: owner, TTL: ttl}
}

func tickCmd() Command { return Command{Op: OpTick} }

func res(id uint64, v int64) Result { return Result{ID: id, Value: v} }

// step is one raft entry: a batch stamped with term and stamp, appended to
// the log in entryTerm (0 means the batch's own term), and the results it
// must return.
type step struct {
	entryTerm uint64
	term      uint64
	stamp     int64
	cmds      []Command
	want      []Result
}

// at builds a step of term with the given stamp and commands.
func at(term uint64, stamp int64, cmds ...Command) step {
	return step{term: term, stamp: stamp, cmds: cmds}
}

// returns sets the results the step must return.
func (s step) returns(rs ...Result) step {
	s.want = rs
	return s
}

// inEntry makes the step's batch travel in an entry of another term.
func (s step) inEntry(term uint64) step {
	s.entryTerm = term
	return s
}

func (s step) batch() *Batch {
	return &Batch{Term: s.term, Stamp: s.stamp, Cmds: s.cmds}
}

func (s step) entry() uint64 {
	if s.entryTerm != 0 {
		return s.entryTerm
	}
	return s.term
}

// run applies the steps to tab in order, failing on any unexpected result.
func run(tb testing.TB, tab *Table, steps ...step) {
	tb.Helper()
	for i, s := range steps {
		got := tab.Apply(s.entry(), s.batch(), nil)
		if !slices.Equal(got, s.want) {
			tb.Errorf("step %d (term %d stamp %d %v): results %v, want %v", i, s.term, s.stamp, s.cmds, got, s.want)
		}
	}
}

// wantState checks the whole lock map: exactly the locks in want are held.
func wantState(tb testing.TB, tab *Table, want map[string]Info) {
	tb.Helper()
	for name, w := range want {
		got, ok := tab.Get(name)
		if !ok {
			tb.Errorf("Get(%q): not held, want %+v", name, w)
			continue
		}
		if w.Version == 0 {
			got.Version = 0 // versions are checked where they matter
		}
		if got != w {
			tb.Errorf("Get(%q) = %+v, want %+v", name, got, w)
		}
	}
	if got := tab.Len(); got != len(want) {
		tb.Errorf("Len() = %d, want %d (want %v)", got, len(want), want)
	}
}

func wantNow(tb testing.TB, tab *Table, want int64) {
	tb.Helper()
	if _, _, now := tab.Clock(); now != want {
		tb.Errorf("Now = %d, want %d", now, want)
	}
}

// entry is one raft entry for the randomized tests.
type entry struct {
	term  uint64
	batch Batch
}

// randomLog returns n entries drawn from r: several terms (with stale and
// mismatched batches among them), stamps that jump forwards, step backwards
// and restart on each new term, LOCK/UNLOCK/RENEW/TICK over a few names and
// owners, and IDs that are zero, fresh, repeated with their command (a
// request delivered again) or reused by another command.
func randomLog(r *rand.Rand, n int) []entry {
	names := []string{"a", "b", "c", "d"}
	owners := []string{"x", "y", "z"}
	var (
		log    []entry
		term   uint64 = 1
		stamp         = r.Int64N(1 << 40)
		nextID uint64 = 1
		recent []Command
	)
	for range n {
		switch p := r.IntN(100); {
		case p < 5: // a new leader with an unrelated clock
			term += uint64(1 + r.IntN(2))
			stamp = r.Int64N(1<<41) - 1<<40
		case p < 8: // stamps going backwards
			stamp -= r.Int64N(5_000)
		case p < 11: // long enough to forget request IDs
			stamp += DedupWindow + r.Int64N(10_000)
		default:
			stamp += r.Int64N(3_000)
		}
		e := entry{term: term, batch: Batch{Term: term, Stamp: stamp}}
		switch p := r.IntN(100); {
		case p < 3: // proposed by a deposed leader
			e.batch.Term = term - 1
		case p < 5 && term > 1: // an entry of an older term, after a newer one
			e.term, e.batch.Term = term-1, term-1
		}
		for range r.IntN(7) {
			c := Command{
				Name:  names[r.IntN(len(names))],
				Owner: owners[r.IntN(len(owners))],
			}
			switch p := r.IntN(100); {
			case p < 45:
				c.Op = OpLock
			case p < 70:
				c.Op = OpUnlock
			case p < 90:
				c.Op = OpRenew
			default:
				c.Op = OpTick
			}
			if c.Op != OpUnlock && r.IntN(4) != 0 {
				c.TTL = 1 + r.Int64N(8_000)
			}
			switch p := r.IntN(100); {
			case p < 15:
				c.ID = 0
			case p < 40 && len(recent) > 0:
				earlier := recent[r.IntN(len(recent))]
				if r.IntN(4) != 0 {
					c = earlier
				} else {
					c.ID = earlier.ID
				}
			default:
				c.ID = nextID
				nextID++
				recent = append(recent, c)
				if len(recent) > 50 {
					recent = recent[1:]
				}
			}
			e.batch.Cmds = append(e.batch.Cmds, c)
		}
		log = append(log, e)
	}
	return log
}

// model is a deliberately naive reference implementation of the table's
// contract: no ordered sets, no compaction, every lease checked on every
// batch, whole commands compared instead of fingerprints.
type model struct {
	term  uint64
	stamp int64
	now   int64
	fence uint64
	locks map[string]Info
	seen  map[uint64]modelSeen
}

// modelSeen is what the model remembers of a request ID.
type modelSeen struct {
	at, value int64
	cmd       Command // with ID 0
}

func newModel() *model {
	return &model{locks: map[string]Info{}, seen: map[uint64]modelSeen{}}
}

func (m *model) apply(entryTerm uint64, b *Batch) []Result {
	if b.Term != entryTerm || b.Term < m.term {
		return nil
	}
	if b.Term == m.term {
		if b.Stamp > m.stamp {
			m.now += b.Stamp - m.stamp
			m.stamp = b.Stamp
		}
	} else {
		m.term, m.stamp = b.Term, b.Stamp
	}
	for name, l := range m.locks {
		if l.Deadline != 0 && l.Deadline <= m.now {
			delete(m.locks, name)
		}
	}
	for id, s := range m.seen {
		if m.now-s.at > DedupWindow {
			delete(m.seen, id)
		}
	}
	var out []Result
	for _, c := range b.Cmds {
		anon := c
		anon.ID = 0
		if s, ok := m.seen[c.ID]; ok && c.ID != 0 {
			v := s.value
			if anon != s.cmd {
				v = Conflict
			}
			out = append(out, Result{ID: c.ID, Value: v})
			continue
		}
		v := m.exec(c)
		if c.ID != 0 {
			m.seen[c.ID] = modelSeen{at: m.now, value: v, cmd: anon}
			out = append(out, Result{ID: c.ID, Value: v})
		}
	}
	return out
}

func (m *model) lease(ttl int64) int64 {
	if ttl <= 0 {
		return 0
	}
	return m.now + ttl
}

func (m *model) exec(c Command) int64 {
	l, held := m.locks[c.Name]
	switch c.Op {
	case OpLock:
		switch {
		case !held:
			m.fence++
			m.locks[c.Name] = Info{Owner: c.Owner, Token: m.fence, Deadline: m.lease(c.TTL)}
			return int64(m.fence)
		case l.Owner == c.Owner:
			l.Deadline = m.lease(c.TTL)
			m.locks[c.Name] = l
			return int64(l.Token)
		}
	case OpUnlock:
		if held && l.Owner == c.Owner {
			delete(m.locks, c.Name)
			return 1
		}
	case OpRenew:
		if held && l.Owner == c.Owner && c.TTL > 0 {
			l.Deadline = m.lease(c.TTL)
			m.locks[c.Name] = l
			return 1
		}
	}
	return 0
}

// sameAsModel checks that tab holds exactly the model's locks and clock.
func sameAsModel(tb testing.TB, tab *Table, m *model) {
	tb.Helper()
	wantState(tb, tab, m.locks)
	term, stamp, now := tab.Clock()
	if term != m.term || stamp != m.stamp || now != m.now {
		tb.Errorf("Clock() = (%d, %d, %d), want (%d, %d, %d)", term, stamp, now, m.term, m.stamp, m.now)
	}
}

// populated returns a table holding some locks, leases and remembered IDs.
func populated(tb testing.TB) *Table {
	tb.Helper()
	tab := NewTable()
	for _, e := range randomLog(rand.New(rand.NewPCG(7, 7)), 200) {
		tab.Apply(e.term, &e.batch, nil)
	}
	tab.Apply(100, &Batch{Term: 100, Stamp: 5, Cmds: []Command{
		lockCmd(1<<40, "forever", "o", 0),
		lockCmd(1<<40+1, "leased", "o", 1_000_000),
	}}, nil)
	if tab.Len() == 0 {
		tb.Fatal("populated table holds no lock")
	}
	return tab
}

// checkInvariants checks what the table keeps beside its locks: the lease
// heap holds exactly the lease of each held lock that has one, the wait set
// one record per queued request, Waiting counts the queued requests, and the
// remembered IDs are exactly the live records of their order.
func checkInvariants(tb testing.TB, tab *Table) {
	tb.Helper()
	leased, queued := 0, 0
	tab.locks.Scan(func(key string, h *held) bool {
		name := key[8:]
		if h.key != key || tab.byName[name] != h {
			tb.Errorf("%s is under key %q in the tree, %q in its held", name, key, h.key)
		}
		switch l := h.lease; {
		case h.deadline == 0 && l != nil:
			tb.Errorf("%s has no lease but a lease in the heap", name)
		case h.deadline == 0:
		case l == nil || l.deadline != h.deadline || l.name != name || l.index < 0 || l.index >= len(tab.leases) || tab.leases[l.index] != l:
			tb.Errorf("%s has a lease to %d but not that lease in the heap: %+v", name, h.deadline, l)
		default:
			leased++
		}
		for _, w := range h.waiters {
			queued++
			if _, ok := tab.waits.Get(waitRec{at: w.deadline, name: name, id: w.id}); !ok {
				tb.Errorf("request %d queued for %s until %d has no wait record", w.id, name, w.deadline)
			}
		}
		return true
	})
	sl, sq := sharedInvariants(tb, tab)
	leased, queued = leased+sl, queued+sq
	if len(tab.leases) != leased {
		tb.Errorf("the lease heap holds %d leases for %d leased locks", len(tab.leases), leased)
	}
	if tab.waits.Len() != queued || tab.waiting != queued {
		tb.Errorf("the wait set holds %d records and Waiting is %d for %d queued requests", tab.waits.Len(), tab.waiting, queued)
	}
	live := tab.order[tab.head:]
	if len(tab.seen) != len(live) {
		tb.Errorf("%d remembered IDs for %d live records", len(tab.seen), len(live))
	}
	for _, r := range live {
		if _, ok := tab.seen[r.id]; !ok {
			tb.Errorf("live record of ID %d is not remembered", r.id)
		}
	}
	for id := range tab.answered {
		if _, ok := tab.seen[id]; !ok {
			tb.Errorf("answered ID %d is not remembered", id)
		}
	}
}

func (e entry) String() string {
	return fmt.Sprintf("entry(term %d, batch term %d stamp %d, %v)", e.term, e.batch.Term, e.batch.Stamp, e.batch.Cmds)
}
