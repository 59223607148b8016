package lock

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func ev(k EventKind, name string) Event { return Event{Kind: k, Name: name} }

// wantEvents applies steps to a table that records events and checks what
// it recorded.
func wantEvents(t *testing.T, steps []step, want ...Event) {
	t.Helper()
	tab := NewTable()
	tab.SetNotify(true)
	applySteps(tab, steps)
	if got := tab.TakeEvents(nil); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}
	if got := tab.TakeEvents(nil); len(got) != 0 {
		t.Fatalf("TakeEvents again: %v, want none", got)
	}
}

// applySteps applies steps, whatever their results.
func applySteps(tab *Table, steps []step) {
	for _, s := range steps {
		tab.Apply(s.entry(), s.batch(), nil)
	}
}

func TestEvents(t *testing.T) {
	set := func(id uint64, name, v string, ttl int64) Command {
		return Command{Op: OpSet, ID: id, Name: name, Owner: v, TTL: ttl}
	}
	del := func(id uint64, names ...string) Command {
		c := Command{Op: OpDel, ID: id, Name: names[0]}
		if len(names) > 1 {
			c.X = &Extra{Keys: names[1:]}
		}
		return c
	}
	t.Run("a grant, a refusal, a release", func(t *testing.T) {
		wantEvents(t, []step{at(1, 0, lockCmd(1, "a", "x", 0), lockCmd(2, "a", "y", 0), unlockCmd(3, "a", "y"), unlockCmd(4, "a", "x"))},
			ev(EventGrant, "a"), ev(EventDel, "a"))
	})
	t.Run("a lease runs out and the lock passes to its waiter", func(t *testing.T) {
		wantEvents(t, []step{
			at(1, 0, lockCmd(1, "a", "x", 100), waitCmd(2, "a", "y", 0, 10_000)),
			at(1, 150),
		}, ev(EventGrant, "a"), ev(EventExpired, "a"), ev(EventGrant, "a"))
	})
	t.Run("renew and persist", func(t *testing.T) {
		wantEvents(t, []step{at(1, 0, lockCmd(1, "a", "x", 100), renewCmd(2, "a", "x", 500), renewCmd(3, "a", "y", 500),
			Command{Op: OpPersist, ID: 4, Name: "a"}, Command{Op: OpPersist, ID: 5, Name: "a"})},
			ev(EventGrant, "a"), ev(EventExpire, "a"), ev(EventPersist, "a"))
	})
	t.Run("the key space", func(t *testing.T) {
		wantEvents(t, []step{at(1, 0, set(1, "k", "v", 0), set(2, "k", "w", 0), del(3, "k", "nope", "j"),
			Command{Op: OpSet, ID: 4, Name: "j", Owner: "v", Flags: FlagNX}, Command{Op: OpSet, ID: 5, Name: "j", Owner: "v", Flags: FlagNX},
			Command{Op: OpExpire, ID: 6, Name: "j", TTL: 10}, Command{Op: OpExpire, ID: 7, Name: "j", Flags: FlagExpireNow})},
			ev(EventSet, "k"), ev(EventSet, "k"), ev(EventDel, "k"), ev(EventSet, "j"), ev(EventExpire, "j"), ev(EventDel, "j"))
	})
	t.Run("publish, alone and in a transaction", func(t *testing.T) {
		pub := Command{Op: OpPublish, ID: 1, Name: "ch", Owner: "m1"}
		tx := Command{Op: OpTx, ID: 2, X: &Extra{Sub: []Command{{Op: OpPublish, Name: "ch", Owner: "m2"}, set(0, "k", "v", 0)}}}
		wantEvents(t, []step{at(1, 0, pub, tx)},
			Event{Kind: EventPublish, Name: "ch", Payload: "m1"}, Event{Kind: EventPublish, Name: "ch", Payload: "m2"}, ev(EventSet, "k"))
	})
	t.Run("a request applied twice acts once", func(t *testing.T) {
		wantEvents(t, []step{at(1, 0, lockCmd(1, "a", "x", 0)), at(1, 1, lockCmd(1, "a", "x", 0))}, ev(EventGrant, "a"))
	})
}

func TestNoEventsUnlessAsked(t *testing.T) {
	tab := NewTable()
	applySteps(tab, []step{at(1, 0, lockCmd(1, "a", "x", 10), Command{Op: OpPublish, ID: 2, Name: "c", Owner: "m"}), at(1, 50)})
	if got := tab.TakeEvents(nil); len(got) != 0 {
		t.Fatalf("a table not asked to record recorded %v", got)
	}
}

// Two tables applying the same log record the same events: every node
// delivers the same notifications in the same order.
func TestEventsAreDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	log := randomLog(r, 2000)
	var got [2][]Event
	for i := range got {
		tab := NewTable()
		tab.SetNotify(true)
		for _, e := range log {
			tab.Apply(e.term, &e.batch, nil)
			got[i] = tab.TakeEvents(got[i])
		}
	}
	if len(got[0]) == 0 || !slices.Equal(got[0], got[1]) {
		t.Fatalf("two replays recorded %d and %d events, or different ones", len(got[0]), len(got[1]))
	}
}

func TestUserDeletionIsAnEvent(t *testing.T) {
	tab := NewTable()
	tab.SetNotify(true)
	applySteps(tab, []step{at(1, 0,
		Command{Op: OpACLSetUser, ID: 1, Name: "app", Owner: "on nopass"},
		Command{Op: OpACLDelUser, ID: 2, Name: "app"},
		Command{Op: OpACLSetUser, ID: 3, Name: "app", Owner: "on nopass"},
		Command{Op: OpACLDelUser, ID: 4, Name: "nobody"})})
	if got := tab.TakeEvents(nil); !slices.Equal(got, []Event{{Kind: EventUserDeleted, Name: "app"}}) {
		t.Fatalf("events %v, want one deletion of app", got)
	}
}
