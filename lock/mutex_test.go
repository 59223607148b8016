package lock

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/lockd/lockd/resp"
)

// Lock-delay: a hold taken with DELAY whose lease runs out leaves the name
// unavailable to every owner, the old one included, for DELAY ms after the
// lease's end; a release (UNLOCK, DEL, MUNLOCK) leaves none.
func TestLockDelayAfterExpiryNotAfterUnlock(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(lk("a", "x", 100, 0, 50), lk("b", "x", 100, 0, 50)), "1", "2")
	m.want(m.at(10).do(unlk("b", "x"), lk("b", "y", 0, 0, 0)), "1", "3")
	m.want(m.at(120).do(lk("a", "y", 0, 0, 0), lk("a", "x", 0, 0, 0), mlk("y", 0, 0, 0, "a")), "0", "0", "0")
	if m.holder("a") != "" {
		t.Errorf("a in its lock-delay shows holder %q", m.holder("a"))
	}
	m.want(m.at(149).do(lk("a", "y", 0, 0, 0)), "0")
	m.want(m.at(150).do(lk("a", "y", 0, 0, 0)), "4")

	// MUNLOCK and DEL release: no lock-delay.
	m.want(m.at(200).do(mlk("x", 100, 0, 50, "c", "d")), "[5 6]")
	m.want(m.at(210).do(munlk("x", "c"), lk("c", "y", 0, 0, 0)), "1", "7")
	m.want(m.at(220).do(Command{Op: OpDel, Name: "d"}, lk("d", "y", 0, 0, 0)), "1", "8")
}

// Requests queued on a name stay queued through its lock-delay; the head is
// granted when it ends, which NextDeadline names.
func TestLockDelayWaitersGrantedAtItsEnd(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(lk("a", "x", 100, 0, 50)), "1")
	m.want(m.at(10).do(lk("a", "y", 0, 1000, 0), lk("a", "z", 0, 1000, 0)), "queued", "queued")
	m.want(m.at(120).do(lk("a", "w", 0, 1000, 0)), "queued")
	if d, ok := m.NextDeadline(); !ok || d != 150 {
		t.Errorf("NextDeadline = %d, %v; want the lock-delay's end, 150", d, ok)
	}
	m.want(m.at(150).do(), "#2=2")
	m.want(m.at(160).do(unlk("a", "y")), "1", "#3=3")
	if m.Waiting() != 1 {
		t.Errorf("Waiting = %d, want 1", m.Waiting())
	}
}

// Inside a lock-delay SET NX gets null and any other SET that would create
// the key an error; after it, SET NX sets.
func TestLockDelaySet(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(lk("a", "x", 100, 0, 50)), "1")
	m.want(m.at(120).do(setCmd("a", "y", FlagNX), setCmd("a", "y", FlagNX|FlagInt), setCmd("a", "y", 0), setCmd("a", "y", FlagXX)),
		"nil", "0", "-LOCKDELAY a is in its lock-delay for 30 ms", "nil")
	m.want(m.at(150).do(setCmd("a", "y", FlagNX)), "OK")
}

// A lock-delay that has ended by the time the expiry is applied (a late
// batch) blocks nothing, and its requests are served in deadline order.
func TestLockDelayEndedBeforeApplied(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(lk("a", "x", 100, 0, 20), lk("a", "y", 0, 110, 0), lk("a", "z", 0, 1000, 0)), "1", "queued", "queued")
	// y's wait ended at 110, inside the delay (100..120): z is granted.
	m.want(m.at(500).do(), "#2=0", "#3=2")
}

// MLOCK takes every name or none.
func TestMultiLockAllOrNothing(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(lk("b", "y", 0, 0, 0)), "1")
	m.want(m.do(mlk("x", 0, 0, 0, "a", "b", "c")), "0")
	if m.Len() != 1 || m.holder("a") != "" || m.holder("c") != "" {
		t.Errorf("a refused MLOCK took names: %d held", m.Len())
	}
	m.want(m.do(unlk("b", "y"), mlk("x", 0, 0, 0, "a", "b", "c")), "1", "[2 3 4]")
	m.want(m.do(munlk("x", "a", "b", "c", "d"), munlk("x", "a")), "3", "0")
}

// A name the owner holds counts as free for it: its token kept, its lease
// reset to the MLOCK's.
func TestMultiLockRegrant(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(lk("a", "x", 100, 0, 0)), "1")
	m.want(m.at(50).do(mlk("x", 200, 0, 0, "b", "a")), "[2 1]")
	if info, _ := m.Get("a"); info.Deadline != 250 {
		t.Errorf("a's lease ends at %d, want 250", info.Deadline)
	}
}

// A queued MLOCK is granted all its names when the last of them frees; a
// name freed before that stays reserved: LOCK and SET NX get null, OWNER
// shows it free, LOCK ... WAIT queues behind.
func TestMultiLockQueuedGrantedWhenLastFrees(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(lk("a", "p", 0, 0, 0), lk("b", "q", 0, 0, 0)), "1", "2")
	m.want(m.do(mlk("x", 0, 1000, 0, "a", "b")), "queued") // ID 3
	m.want(m.do(unlk("a", "p")), "1")
	if m.holder("a") != "" {
		t.Errorf("reserved a shows holder %q", m.holder("a"))
	}
	m.want(m.do(lk("a", "w", 0, 0, 0), setCmd("a", "w", FlagNX), setCmd("a", "w", 0), lk("a", "z", 0, 1000, 0)),
		"0", "nil", "-LOCKRESERVED a is reserved for a queued MLOCK", "queued") // z is ID 8
	m.want(m.do(unlk("b", "q")), "1", "#3=[3 4]")
	m.want(m.do(munlk("x", "a", "b")), "2", "#8=5")
}

// Two MLOCKs on the same names in opposite orders are granted in turn,
// whichever order the names free in: no deadlock.
func TestMultiLockOppositeOrdersNoDeadlock(t *testing.T) {
	for _, first := range []string{"a", "b"} {
		t.Run("free "+first+" first", func(t *testing.T) {
			m := newMutexTable(t)
			second := map[string]string{"a": "b", "b": "a"}[first]
			m.want(m.at(0).do(lk("a", "p", 0, 0, 0), lk("b", "p", 0, 0, 0)), "1", "2")
			m.want(m.do(mlk("x", 0, 1000, 0, "a", "b"), mlk("y", 0, 1000, 0, "b", "a")), "queued", "queued") // IDs 3, 4
			m.want(m.do(unlk(first, "p")), "1")
			m.want(m.do(unlk(second, "p")), "1", "#3=[3 4]")
			m.want(m.do(munlk("x", "a", "b")), "2", "#4=[5 6]")
		})
	}
}

// When a queued MLOCK's wait runs out, or it is cancelled, it leaves every
// queue and the names it reserved go to the requests behind it.
func TestMultiLockWaitEndPassesReservationsOn(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(lk("b", "q", 0, 0, 0)), "1")
	m.want(m.do(mlk("x", 0, 100, 0, "a", "b")), "queued")                                      // ID 2: a is reserved at once
	m.want(m.do(lk("a", "z", 0, 1000, 0), mlk("y", 0, 1000, 0, "a", "c")), "queued", "queued") // IDs 3, 4
	m.want(m.at(100).do(), "#2=0", "#3=2")
	m.want(m.do(unlk("a", "z")), "1", "#4=[3 4]")

	m.want(m.do(mlk("w", 0, 1000, 0, "b", "c")), "queued") // ID 6
	m.want(m.do(cancel("b", 6)), "0", "#6=0")
	if m.Waiting() != 0 {
		t.Errorf("Waiting = %d after the cancel", m.Waiting())
	}
}

// A queued MLOCK on a name in its lock-delay is granted when the delay
// ends, and the delay applies to every name of an MLOCK that asked for it.
func TestMultiLockAndLockDelay(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(mlk("x", 100, 0, 30, "a", "b")), "[1 2]")
	m.want(m.at(110).do(lk("b", "y", 0, 0, 0), mlk("y", 0, 1000, 0, "b", "c")), "0", "queued") // ID 3
	m.want(m.at(129).do())
	m.want(m.at(130).do(), "#3=[3 4]")
	m.want(m.do(lk("a", "z", 0, 0, 0)), "5")
}

// A snapshot taken mid-wait (queued multi-locks, reservations, lock-delays)
// restores to a table that goes on exactly as the original.
func TestMutexSnapshotMidWait(t *testing.T) {
	m := newMutexTable(t)
	m.at(0).do(lk("a", "p", 100, 0, 40), lk("b", "q", 0, 0, 0), lk("c", "r", 0, 0, 0))
	m.do(mlk("x", 500, 1000, 20, "b", "a", "d"), lk("c", "s", 0, 1000, 25), mlk("y", 0, 1000, 0, "c", "d"))
	m.at(110).do(unlk("b", "q"))
	snap := m.Snapshot()
	if snap[0] != snapshotVersionPrimitives {
		t.Fatalf("snapshot version %d, want %d", snap[0], snapshotVersionPrimitives)
	}
	r := &mutexTable{Table: NewTable(), tb: t, id: m.id, stamp: m.stamp}
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if again := r.Snapshot(); !bytes.Equal(again, snap) {
		t.Fatalf("restored table snapshots differently")
	}
	for _, tab := range []*mutexTable{m, r} {
		tab.want(tab.at(139).do(lk("a", "z", 0, 0, 0)), "0")
		// a's lock-delay ends: x takes b, a (expired: a new token) and d.
		tab.want(tab.at(140).do(), "#4=[4 5 6]")
		tab.want(tab.do(unlk("c", "r")), "1", "#5=7")
		// d is reserved for y, which waits for c.
		tab.want(tab.do(munlk("x", "a", "b", "d")), "3")
		tab.want(tab.do(unlk("c", "s")), "1", "#6=[8 9]")
	}
	if !bytes.Equal(m.Snapshot(), r.Snapshot()) {
		t.Errorf("the two tables differ after the same commands")
	}
	if m.Snapshot()[0] == snapshotVersionPrimitives {
		t.Errorf("with no lock-delay or multi-lock state left the snapshot is still version 5")
	}
}

// randomMutexLog is a random log of LOCK (with WAIT and DELAY), MLOCK,
// MUNLOCK, UNLOCK, cancels, SET (NX or not), DEL and ticks on a few names.
func randomMutexLog(r *rand.Rand, n int) []entry {
	names, owners := []string{"a", "b", "c", "d"}, []string{"x", "y", "z"}
	var log []entry
	var stamp int64
	var id uint64
	for range n {
		stamp += r.Int64N(40)
		b := Batch{Term: 1, Stamp: stamp}
		for range 1 + r.IntN(3) {
			id++
			name, owner := names[r.IntN(len(names))], owners[r.IntN(len(owners))]
			some := func() []string {
				k := 1 + r.IntN(3)
				p := r.Perm(len(names))[:k]
				out := make([]string, k)
				for i, j := range p {
					out[i] = names[j]
				}
				return out
			}
			var c Command
			switch r.IntN(10) {
			case 0:
				c = lk(name, owner, r.Int64N(200), 0, r.Int64N(3)*30)
			case 1:
				c = lk(name, owner, r.Int64N(200), r.Int64N(300), r.Int64N(3)*30)
			case 2:
				c = mlk(owner, r.Int64N(200), r.Int64N(2)*r.Int64N(300), r.Int64N(3)*30, some()...)
			case 3:
				c = munlk(owner, some()...)
			case 4:
				c = unlk(name, owner)
			case 5:
				c = cancel(name, uint64(1+r.Int64N(int64(id))))
			case 6:
				c = setCmd(name, owner, FlagNX)
			case 7:
				c = setCmd(name, owner, 0)
			case 8:
				c = Command{Op: OpDel, Name: name}
			default:
				c = tickCmd()
			}
			if c.Op != OpTick {
				c.ID = id
			}
			b.Cmds = append(b.Cmds, c)
		}
		log = append(log, entry{term: 1, batch: b})
	}
	return log
}

// TestMutexIsDeterministic applies random logs of lock-delays and
// multi-locks to two tables, and to a third restored from a snapshot taken
// midway: all end byte-identical with the same results, the invariants
// hold after every entry (no multi-lock waits that could take its names),
// and once every wait and delay has run out no name is left blocked.
func TestMutexIsDeterministic(t *testing.T) {
	var multiGrants, delayed int
	for seed := uint64(1); seed <= 20; seed++ {
		log := randomMutexLog(rand.New(rand.NewPCG(seed, 11)), 400)
		queued := map[uint64]bool{}
		a := replayThree(t, seed, log, func(a *Table, ra []Result) {
			for _, r := range ra {
				switch {
				case r.Value == Queued:
					queued[r.ID] = true
				case queued[r.ID] && r.Reply != nil:
					multiGrants++
				}
			}
			delayed += a.delays.Len()
		})
		a.Apply(1, &Batch{Term: 1, Stamp: log[len(log)-1].batch.Stamp + 1_000_000}, nil)
		checkInvariants(t, a)
		if a.Waiting() != 0 || len(a.blocked) != 0 {
			t.Errorf("seed %d: %d requests waiting and %d names blocked after every wait and delay ran out", seed, a.Waiting(), len(a.blocked))
		}
	}
	if multiGrants == 0 || delayed == 0 {
		t.Fatalf("%d queued multi-locks granted, %d lock-delays seen: the test tests nothing", multiGrants, delayed)
	}
}

// A queued MLOCK whose owner is handed one of its names (by its own LOCK
// ... WAIT, or a SET) counts that name as its own: it is granted as soon
// as the others are reserved for it.
func TestMultiLockOwnerHandedOneOfItsNames(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(lk("a", "p", 0, 0, 0), lk("b", "q", 0, 0, 0)), "1", "2")
	m.want(m.do(lk("a", "x", 0, 1000, 0), mlk("x", 0, 1000, 0, "b", "a")), "queued", "queued") // IDs 3, 4
	m.want(m.do(unlk("b", "q")), "1")                                                          // b reserved for 4
	m.want(m.do(unlk("a", "p")), "1", "#3=3", "#4=[4 3]")

	m.want(m.do(lk("c", "p", 0, 0, 0), lk("d", "q", 0, 0, 0)), "5", "6")
	m.want(m.do(mlk("y", 0, 1000, 0, "c", "d")), "queued") // ID 9
	m.want(m.do(unlk("c", "p")), "1")
	m.want(m.do(setCmd("d", "y", 0)), "OK", "#9=[8 7]")
}

// Version 5 carries the users section too, empty or not, before the
// lock-delays and multi-locks.
func TestMutexSnapshotKeepsUsers(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(Command{Op: OpACLSetUser, Name: "app", X: &Extra{Args: []string{"on", "nopass", "~*", "+@all"}}}, lk("a", "x", 100, 0, 50)), "OK", "1")
	m.at(100).do()
	snap := m.Snapshot()
	r := NewTable()
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if snap[0] != snapshotVersionPrimitives || r.Users().Len() != 1 || len(r.blocked) != 1 {
		t.Errorf("restored version %d: %d users, %d blocked names; want 1 and 1", snap[0], r.Users().Len(), len(r.blocked))
	}
	if !bytes.Equal(r.Snapshot(), snap) {
		t.Errorf("restored table snapshots differently")
	}
}

// A script sees a blocked name as the table does: it cannot SET it, and
// its version changes when the name stops being blocked, so effects
// computed against it are retried.
func TestMutexScriptSeesBlockedNames(t *testing.T) {
	m := newMutexTable(t)
	m.want(m.at(0).do(lk("a", "x", 100, 0, 50)), "1")
	m.at(100).do()
	s := m.Scratch()
	check := m.Load(s, "a")
	if check.Version == 0 {
		t.Fatalf("a blocked name loads with version 0, as a free one")
	}
	if v := s.Do(&Command{Op: OpSet, Name: "a", Owner: "y", Flags: FlagNX}); v.Kind != resp.Nil {
		t.Errorf("SET NX of a blocked name in a script = %v", v)
	}
	m.at(150).do()
	if m.versionOf("a") == check.Version {
		t.Errorf("a's version did not change when its lock-delay ended")
	}
}
