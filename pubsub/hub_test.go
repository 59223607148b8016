package pubsub

import (
	"path"
	"slices"
	"testing"
)

func match(pattern, channel string) bool {
	ok, _ := path.Match(pattern, channel)
	return ok
}

func TestPublishReachesChannelAndPatternSubscribersInOrder(t *testing.T) {
	h := NewHub(match, 1<<20)
	a, b := h.NewSub(), h.NewSub()
	if n := a.Subscribe("orders"); n != 1 {
		t.Fatalf("Subscribe = %d, want 1", n)
	}
	if n := a.PSubscribe("ord*"); n != 2 {
		t.Fatalf("PSubscribe = %d, want 2", n)
	}
	b.PSubscribe("inv*")
	if n := h.Publish("orders", "1"); n != 2 {
		t.Fatalf("Publish counted %d receivers, want 2 (a channel and a pattern subscription)", n)
	}
	h.Publish("orders", "2")
	if n := h.Publish("invoices", "3"); n != 1 {
		t.Fatalf("Publish counted %d, want 1", n)
	}
	got := a.Take(nil)
	want := []Message{{Channel: "orders", Payload: "1"}, {Pattern: "ord*", Channel: "orders", Payload: "1"},
		{Channel: "orders", Payload: "2"}, {Pattern: "ord*", Channel: "orders", Payload: "2"}}
	if !slices.Equal(got, want) {
		t.Fatalf("a took %v, want %v", got, want)
	}
	if got := b.Take(nil); len(got) != 1 || got[0].Payload != "3" {
		t.Fatalf("b took %v", got)
	}
	if h.Receivers("orders") != 2 || h.NumSub("orders") != 1 || h.NumPat() != 2 {
		t.Fatalf("Receivers %d NumSub %d NumPat %d", h.Receivers("orders"), h.NumSub("orders"), h.NumPat())
	}
	if got := h.Channels(""); !slices.Equal(got, []string{"orders"}) {
		t.Fatalf("Channels = %v", got)
	}
}

func TestUnsubscribeAndClose(t *testing.T) {
	h := NewHub(match, 1<<20)
	s := h.NewSub()
	s.Subscribe("a")
	s.Subscribe("b")
	s.PSubscribe("c*")
	if n := s.Unsubscribe("a"); n != 2 {
		t.Fatalf("Unsubscribe = %d, want 2", n)
	}
	if n := s.Unsubscribe("never"); n != 2 {
		t.Fatalf("Unsubscribe of a channel not subscribed = %d, want 2", n)
	}
	s.Close()
	if !h.Idle() || s.Count() != 0 || h.Publish("b", "x") != 0 {
		t.Fatal("a closed subscriber still receives")
	}
	s.Subscribe("b") // after Close: nothing
	if !h.Idle() {
		t.Fatal("a closed subscriber subscribed again")
	}
}

// A subscriber that does not take its messages is cut off once they pass
// the limit: its queue is dropped, Overflowed is closed, and the publisher
// was never held up.
func TestOverflowCutsTheSubscriberOff(t *testing.T) {
	h := NewHub(match, 1000)
	s, other := h.NewSub(), h.NewSub()
	s.Subscribe("c")
	other.Subscribe("c")
	msg := string(make([]byte, 100))
	for range 20 {
		h.Publish("c", msg)
		other.Take(nil) // other keeps up
	}
	select {
	case <-s.Overflowed():
	default:
		t.Fatal("the subscriber past its limit was not cut off")
	}
	if got := s.Take(nil); len(got) != 0 {
		t.Fatalf("a cut-off subscriber still holds %d messages", len(got))
	}
	select {
	case <-other.Overflowed():
		t.Fatal("a subscriber that keeps up was cut off")
	default:
	}
}

func TestReadySignalsAQueueThatWasEmpty(t *testing.T) {
	h := NewHub(match, 1<<20)
	s := h.NewSub()
	s.Subscribe("c")
	h.Publish("c", "1")
	h.Publish("c", "2")
	select {
	case <-s.Ready():
	default:
		t.Fatal("no wake-up for queued messages")
	}
	if got := s.Take(nil); len(got) != 2 {
		t.Fatalf("took %d, want 2", len(got))
	}
	h.Publish("c", "3")
	select {
	case <-s.Ready():
	default:
		t.Fatal("no wake-up after the queue emptied and filled again")
	}
}

// CutAll cuts off every subscriber, with a reason, and they receive nothing
// more.
func TestCutAll(t *testing.T) {
	h := NewHub(match, 1<<20)
	a, b := h.NewSub(), h.NewSub()
	a.Subscribe("c")
	b.PSubscribe("*")
	h.Publish("c", "before")
	if n := h.CutAll("skipped"); n != 2 {
		t.Fatalf("CutAll = %d, want 2", n)
	}
	for _, s := range []*Sub{a, b} {
		select {
		case <-s.Overflowed():
		default:
			t.Fatal("a subscriber was not cut off")
		}
		if s.Why() != "skipped" || len(s.Take(nil)) != 0 {
			t.Fatalf("Why %q, queue not dropped", s.Why())
		}
	}
	h.Publish("c", "after")
	if len(a.Take(nil)) != 0 {
		t.Fatal("a cut-off subscriber still receives")
	}
}
