package check

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestHistoryRecords(t *testing.T) {
	h := NewHistory()
	l := h.Begin(0, KindLock, "x", "a")
	u := h.Begin(1, KindUnlock, "x", "b")
	r := h.Begin(2, KindOwner, "x", "ignored")
	n := h.Begin(3, KindLock, "x", "c") // never finished
	f := h.Begin(4, KindUnlock, "x", "d")
	f.Failed()
	l.Locked(7)
	u.Unlocked(false)
	r.Read("a")
	ops := h.Ops()
	if len(ops) != 5 {
		t.Fatalf("%d ops, want 5", len(ops))
	}
	want := []Op{
		{Client: 0, Kind: KindLock, Name: "x", Owner: "a", Status: StatusOK, Token: 7},
		{Client: 1, Kind: KindUnlock, Name: "x", Owner: "b", Status: StatusOK},
		{Client: 2, Kind: KindOwner, Name: "x", Status: StatusOK, Holder: "a"},
		{Client: 3, Kind: KindLock, Name: "x", Owner: "c", Status: StatusUnknown},
		{Client: 4, Kind: KindUnlock, Name: "x", Owner: "d", Status: StatusFailed},
	}
	for i, op := range ops {
		if op.Status == StatusOK && op.Return < op.Call {
			t.Errorf("op %d returns before its call: %v", i, op)
		}
		op.Call, op.Return = 0, 0
		if !reflect.DeepEqual(op, want[i]) {
			t.Errorf("op %d = %+v, want %+v", i, op, want[i])
		}
	}
	n.Unknown()
	if got := h.Ops()[3]; got.Status != StatusUnknown || got.Return < got.Call {
		t.Errorf("unknown op = %+v", got)
	}
	ops[0].Token = 99 // a snapshot is a copy
	if h.Ops()[0].Token != 7 {
		t.Error("Ops returned shared storage")
	}
}

func TestPendingMisuse(t *testing.T) {
	tests := []struct {
		name string
		do   func(h *History)
	}{
		{"finished twice", func(h *History) { p := h.Begin(0, KindLock, "x", "a"); p.Locked(1); p.Unknown() }},
		{"wrong kind", func(h *History) { h.Begin(0, KindLock, "x", "a").Read("a") }},
		{"invalid kind", func(h *History) { h.Begin(0, Kind(9), "x", "a") }},
		{"zero pending", func(*History) { Pending{}.Unknown() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.do(NewHistory())
		})
	}
}

func TestFinalReads(t *testing.T) {
	h := NewHistory()
	p := h.Begin(0, KindLock, "x", "a")
	p.Locked(1)
	boom := errors.New("boom")
	err := h.FinalReads(9, []string{"x", "y", "z"}, func(name string) (string, error) {
		switch name {
		case "x":
			return "a", nil
		case "y":
			return "", boom
		}
		return "", nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("FinalReads = %v, want boom", err)
	}
	ops := h.Ops()[1:]
	if len(ops) != 3 {
		t.Fatalf("%d final ops, want 3", len(ops))
	}
	for i, want := range []struct {
		name   string
		status Status
		holder string
	}{{"x", StatusOK, "a"}, {"y", StatusUnknown, ""}, {"z", StatusOK, ""}} {
		op := ops[i]
		if !op.Final || op.Kind != KindOwner || op.Client != 9 || op.Name != want.name || op.Status != want.status || op.Holder != want.holder {
			t.Errorf("final op %d = %+v", i, op)
		}
	}
	// y's final read failed: durability of y is not proven.
	if err := CheckLinearizable(h.Ops(), LinearizabilityOptions{RequireFinalReads: true}); !errors.Is(err, ErrBadHistory) {
		t.Fatalf("CheckLinearizable = %v, want ErrBadHistory", err)
	}
}

// fakeLockd is a correct, in-process lock table: one mutex, one global token counter.
type fakeLockd struct {
	mu     sync.Mutex
	owner  map[string]string
	token  map[string]int64
	tokens int64
}

func (f *fakeLockd) lock(name, owner string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch f.owner[name] {
	case "":
		f.tokens++
		f.owner[name], f.token[name] = owner, f.tokens
		return f.tokens
	case owner:
		return f.token[name]
	}
	return 0
}

func (f *fakeLockd) unlock(name, owner string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.owner[name] != owner {
		return false
	}
	delete(f.owner, name)
	return true
}

func (f *fakeLockd) read(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.owner[name]
}

// runClients has ten clients record concurrent ops on three hot locks against srv; 1 in 10
// ops is indeterminate, and half of those are applied. Client 0 then takes lock "held", so
// that one lock is surely held at the end.
func runClients(srv *fakeLockd, h *History, names []string) {
	var wg sync.WaitGroup
	for c := range 10 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			owner := fmt.Sprintf("owner-%d", c)
			for range testOpsPerClient {
				name := names[rng.IntN(len(names))]
				timeout, applied := rng.IntN(testUnknownRate) == 0, rng.IntN(2) == 0
				kind := Kind(1 + rng.IntN(3))
				p := h.Begin(c, kind, name, owner)
				if timeout && !applied {
					p.Unknown()
					continue
				}
				var tok int64
				var rel bool
				var holder string
				switch kind {
				case KindLock:
					tok = srv.lock(name, owner)
				case KindUnlock:
					rel = srv.unlock(name, owner)
				default:
					holder = srv.read(name)
				}
				switch {
				case timeout:
					p.Unknown()
				case kind == KindLock:
					p.Locked(tok)
				case kind == KindUnlock:
					p.Unlocked(rel)
				default:
					p.Read(holder)
				}
			}
		})
	}
	wg.Wait()
	p := h.Begin(0, KindLock, "held", "owner-final")
	p.Locked(srv.lock("held", "owner-final"))
}

func TestRecordedConcurrentHistory(t *testing.T) {
	names := []string{"x", "y", "z"}
	tests := []struct {
		name      string
		finalRead func(srv *fakeLockd, name string) string
		wantErr   error
	}{
		{"correct server passes", func(srv *fakeLockd, name string) string { return srv.read(name) }, nil},
		{"grant lost on restart fails", func(srv *fakeLockd, name string) string {
			if name == "held" {
				return ""
			}
			return srv.read(name)
		}, ErrNotLinearizable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &fakeLockd{owner: map[string]string{}, token: map[string]int64{}}
			h := NewHistory()
			runClients(srv, h, names)
			if err := h.FinalReads(10, append(names, "held"), func(name string) (string, error) { return tt.finalRead(srv, name), nil }); err != nil {
				t.Fatal(err)
			}
			ops := h.Ops()
			err := CheckLinearizable(ops, LinearizabilityOptions{Timeout: 30 * time.Second, RequireFinalReads: true})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("CheckLinearizable = %v, want %v", err, tt.wantErr)
			}
			if err := CheckFencing(ops); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSiblingSharesTheClock(t *testing.T) {
	h := NewHistory()
	h.Begin(0, KindLock, "x", "a").Locked(1)
	s := h.Sibling()
	s.Begin(0, KindLock, "y", "b").Locked(2)
	a, b := h.Ops()[0], s.Ops()[0]
	if b.Call < a.Return {
		t.Fatalf("the sibling's later op was called at %d, before the first op returned at %d", b.Call, a.Return)
	}
	if len(h.Ops()) != 1 || len(s.Ops()) != 1 {
		t.Fatalf("the histories share ops: %d and %d", len(h.Ops()), len(s.Ops()))
	}
}
