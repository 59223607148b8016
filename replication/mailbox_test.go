package replication

import (
	"slices"
	"sync"
	"testing"
	"time"
)

func TestMailbox(t *testing.T) {
	t.Run("take returns everything put, in order, and empties the mailbox", func(t *testing.T) {
		m := newMailbox[int](0)
		for i := range 5 {
			m.put(i)
		}
		if got := m.take(); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
			t.Fatalf("take = %v", got)
		}
		if got := m.take(); len(got) != 0 {
			t.Fatalf("second take = %v, want nothing", got)
		}
	})
	t.Run("the reader is woken once per batch, not once per item", func(t *testing.T) {
		m := newMailbox[int](0)
		m.put(1)
		m.put(2)
		m.put(3)
		if !woken(m) {
			t.Fatal("no wake-up after the first put")
		}
		if woken(m) {
			t.Fatal("a second wake-up for the same batch")
		}
		m.take()
		m.put(4)
		if !woken(m) {
			t.Fatal("no wake-up for a put after a take")
		}
	})
	t.Run("a put that finds items waiting adds no wake-up", func(t *testing.T) {
		m := newMailbox[int](0)
		m.put(1)
		<-m.ready()
		m.put(2) // the reader is awake and has not taken yet
		if woken(m) {
			t.Fatal("woken again before taking")
		}
		if got := m.take(); !slices.Equal(got, []int{1, 2}) {
			t.Fatalf("take = %v", got)
		}
	})
	t.Run("take consumes a pending wake-up, and a later put wakes again", func(t *testing.T) {
		m := newMailbox[int](0)
		m.put(1)
		m.take() // without reading ready first, as the loop does
		if woken(m) {
			t.Fatal("a wake-up left for a batch already taken")
		}
		m.put(2)
		if !woken(m) {
			t.Fatal("no wake-up for a put after the take")
		}
	})
	t.Run("a mailbox at its limit refuses and keeps what it holds", func(t *testing.T) {
		m := newMailbox[int](2)
		if !m.put(1) || !m.put(2) {
			t.Fatal("refused below the limit")
		}
		if m.put(3) {
			t.Fatal("accepted past the limit")
		}
		if got := m.take(); !slices.Equal(got, []int{1, 2}) {
			t.Fatalf("take = %v", got)
		}
		if !m.put(3) {
			t.Fatal("refused after a take made room")
		}
	})
	t.Run("putAll queues in order up to the limit, with one wake-up", func(t *testing.T) {
		m := newMailbox[int](4)
		m.put(0)
		<-m.ready()
		m.take()
		if n := m.putAll([]int{1, 2}); n != 2 || !woken(m) || woken(m) {
			t.Fatalf("putAll of two queued %d, or woke the reader other than once", n)
		}
		if n := m.putAll([]int{3, 4, 5}); n != 2 || woken(m) {
			t.Fatalf("putAll past the limit queued %d of 3 (want 2), or woke the reader again", n)
		}
		if n := m.putAll([]int{6}); n != 0 {
			t.Fatalf("putAll into a full mailbox queued %d", n)
		}
		if got := m.take(); !slices.Equal(got, []int{1, 2, 3, 4}) {
			t.Fatalf("take = %v", got)
		}
		if n := m.putAll(nil); n != 0 || woken(m) {
			t.Fatal("putAll of nothing woke the reader")
		}
	})
	t.Run("a taken batch is the reader's until its next take", func(t *testing.T) {
		m := newMailbox[int](0)
		m.put(1)
		batch := m.take()
		m.put(2)
		if batch[0] != 1 {
			t.Fatalf("a put after take changed the taken batch: %v", batch)
		}
	})
	t.Run("concurrent putters lose nothing", func(t *testing.T) {
		m := newMailbox[int](0)
		const putters, each = 8, 1000
		var wg sync.WaitGroup
		for p := range putters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					m.put(p*each + i)
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		seen := map[int]bool{}
		deadline := time.After(10 * time.Second)
		for len(seen) < putters*each {
			select {
			case <-m.ready():
			case <-done:
			case <-deadline:
				t.Fatalf("took %d of %d items", len(seen), putters*each)
			}
			for _, v := range m.take() {
				if seen[v] {
					t.Fatalf("%d taken twice", v)
				}
				seen[v] = true
			}
		}
	})
}

// woken reports whether a wake-up is pending, consuming it.
func woken[T any](m *mailbox[T]) bool {
	select {
	case <-m.ready():
		return true
	default:
		return false
	}
}
