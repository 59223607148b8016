package check

import (
	"errors"
	"sync"
	"testing"
)

func TestStoreFencing(t *testing.T) {
	incr := func(v int64) int64 { return v + 1 }
	tests := []struct {
		name   string
		tokens []int64 // one increment per token, in order
		ok     []bool  // whether each is accepted
	}{
		{"increasing", []int64{1, 2, 5}, []bool{true, true, true}},
		{"equal token accepted", []int64{3, 3}, []bool{true, true}},
		{"zombie with a smaller token rejected", []int64{4, 7, 4, 6}, []bool{true, true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := NewStore()
			var want ResourceState
			for i, tok := range tt.tokens {
				err := st.Write("r", tok, incr)
				if tt.ok[i] {
					if err != nil {
						t.Fatalf("write %d (token %d): %v", i, tok, err)
					}
					want.Value++
					want.Accepted++
					want.Highest = tok
					continue
				}
				var serr *StaleTokenError
				if !errors.Is(err, ErrStaleToken) || !errors.As(err, &serr) || serr.Token != tok || serr.Highest != want.Highest {
					t.Fatalf("write %d (token %d) = %v, want stale against %d", i, tok, err, want.Highest)
				}
				want.Rejected++
				if got := st.Resource("r"); got != want {
					t.Fatalf("rejected write changed the resource: %+v, want %+v", got, want)
				}
			}
			if got := st.Resource("r"); got != want {
				t.Fatalf("resource = %+v, want %+v", got, want)
			}
			if acc, rej := st.Totals(); acc != want.Accepted || rej != want.Rejected {
				t.Fatalf("totals = %d, %d; want %d, %d", acc, rej, want.Accepted, want.Rejected)
			}
			if err := st.CheckIncrements(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A zombie read its value under token 1, paused past its lease; the next holder (token 2)
// read and wrote. The zombie's write, computed from its stale read, must be rejected and
// must not call fn.
func TestStoreZombieWriteRejected(t *testing.T) {
	st := NewStore()
	v1, err := st.Read("r", 1)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := st.Read("r", 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write("r", 2, func(int64) int64 { return v2 + 1 }); err != nil {
		t.Fatal(err)
	}
	called := false
	err = st.Write("r", 1, func(int64) int64 { called = true; return v1 + 1 })
	if !errors.Is(err, ErrStaleToken) || called {
		t.Fatalf("zombie write: err %v, fn called %v; want ErrStaleToken, not called", err, called)
	}
	if _, err := st.Read("r", 1); !errors.Is(err, ErrStaleToken) {
		t.Fatalf("zombie read: %v, want ErrStaleToken", err)
	}
	if got := st.Resource("r"); got.Value != 1 || got.Accepted != 1 || got.Rejected != 1 || got.RejectedReads != 1 {
		t.Fatalf("resource = %+v", got)
	}
	if err := st.CheckIncrements(); err != nil {
		t.Fatal(err)
	}
}

// Two holders with the same token (a double grant) interleave read-modify-writes: both
// writes are accepted and one increment is lost, which CheckIncrements reports.
func TestStoreLostIncrement(t *testing.T) {
	st := NewStore()
	a, _ := st.Read("r", 5)
	b, _ := st.Read("r", 5)
	if err := st.Write("r", 5, func(int64) int64 { return a + 1 }); err != nil {
		t.Fatal(err)
	}
	if err := st.Write("r", 5, func(int64) int64 { return b + 1 }); err != nil {
		t.Fatal(err)
	}
	if err := st.CheckIncrements(); !errors.Is(err, ErrLostWrite) {
		t.Fatalf("CheckIncrements = %v, want ErrLostWrite", err)
	} else {
		t.Log(err)
	}
}

// Holders with increasing tokens, one at a time per resource, from many goroutines.
func TestStoreConcurrent(t *testing.T) {
	st := NewStore()
	var mu [3]sync.Mutex
	var next [3]int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				r := (g + i) % 3
				name := string(rune('a' + r))
				mu[r].Lock()
				next[r]++
				tok := next[r]
				v, err := st.Read(name, tok)
				if err == nil {
					err = st.Write(name, tok, func(int64) int64 { return v + 1 })
				}
				mu[r].Unlock()
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if acc, rej := st.Totals(); acc != 1600 || rej != 0 {
		t.Fatalf("totals = %d, %d; want 1600, 0", acc, rej)
	}
	if err := st.CheckIncrements(); err != nil {
		t.Fatal(err)
	}
}
