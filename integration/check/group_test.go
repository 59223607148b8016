package check

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Builders for multi-lock ops.

func mlockOK(c int, owner string, call, ret int64, names []string, tokens []int64) Op {
	return Op{Client: c, Kind: KindMLock, Names: names, Owner: owner, Call: call, Return: ret, Status: StatusOK, Tokens: tokens}
}

func mlockWait(c int, owner string, call, ret int64, names []string, tokens []int64) Op {
	op := mlockOK(c, owner, call, ret, names, tokens)
	op.Wait = true
	return op
}

func mlockUnknown(c int, owner string, call int64, names []string) Op {
	return Op{Client: c, Kind: KindMLock, Names: names, Owner: owner, Call: call, Return: call + 1, Status: StatusUnknown}
}

func munlockOK(c int, owner string, call, ret int64, names []string, n int) Op {
	return Op{Client: c, Kind: KindMUnlock, Names: names, Owner: owner, Call: call, Return: ret, Status: StatusOK, Count: n}
}

func munlockUnknown(c int, owner string, call int64, names []string) Op {
	return Op{Client: c, Kind: KindMUnlock, Names: names, Owner: owner, Call: call, Return: call + 1, Status: StatusUnknown}
}

func TestCheckGroups(t *testing.T) {
	ab, abc := []string{"a", "b"}, []string{"a", "b", "c"}
	tests := []struct {
		name      string
		ops       []Op
		final     bool
		wantErr   error    // nil: must pass
		wantInMsg []string // substrings of the error
	}{
		// Legal histories.
		{
			name: "MLOCK, single ops on its names, MUNLOCK",
			ops: []Op{
				mlockOK(0, "A", 0, 10, ab, []int64{1, 2}),
				lockOK(1, "b", "B", 11, 12, 0),
				read(2, "a", 13, 14, "A"),
				mlockOK(1, "B", 15, 16, []string{"c", "b"}, nil),
				munlockOK(0, "A", 20, 30, abc, 2),
				lockOK(1, "b", "B", 31, 32, 3),
				mlockOK(0, "A", 33, 34, ab, nil),
				mlockOK(1, "B", 35, 36, []string{"c", "b"}, []int64{4, 3}), // b: a re-grant
				unlockOK(1, "b", "B", 40, 41, true),
				munlockOK(1, "B", 42, 43, []string{"c", "b"}, 1),
				finalRead(9, "a", 100, 101, ""),
				finalRead(9, "b", 100, 101, ""),
				finalRead(9, "c", 100, 101, ""),
			},
			final: true,
		},
		{
			name: "MLOCK re-grants a name its owner holds, keeping its token",
			ops: []Op{
				lockOK(0, "a", "A", 0, 10, 5),
				mlockOK(0, "A", 11, 20, ab, []int64{5, 6}),
				munlockOK(0, "A", 21, 30, abc, 2),
			},
		},
		{
			name: "a name reserved for a waiting MLOCK refuses LOCK and reads free",
			ops: []Op{
				lockOK(1, "b", "B", 0, 10, 2),
				mlockWait(0, "A", 11, 100, ab, []int64{5, 6}),
				lockOK(2, "a", "C", 20, 30, 0),
				read(3, "a", 31, 32, ""),
				mlockOK(2, "C", 33, 34, []string{"a", "c"}, nil),
				unlockOK(1, "b", "B", 40, 50, true),
				read(3, "a", 101, 102, "A"),
			},
		},
		{
			name: "MLOCK WAIT granted once the other owner releases",
			ops: []Op{
				mlockOK(1, "B", 0, 10, []string{"b", "c"}, []int64{1, 2}),
				mlockWait(0, "A", 11, 100, ab, []int64{3, 4}),
				munlockOK(1, "B", 20, 30, []string{"b", "c"}, 2),
				read(2, "b", 101, 102, "A"),
			},
		},
		{
			name: "MLOCK WAIT that ran out",
			ops: []Op{
				lockOK(1, "b", "B", 0, 10, 1),
				mlockWait(0, "A", 11, 100, ab, nil),
				read(2, "a", 101, 102, ""),
			},
		},
		{
			name: "indeterminate MLOCK took effect",
			ops: []Op{
				mlockUnknown(0, "A", 0, ab),
				lockOK(1, "b", "B", 20, 30, 0),
				read(2, "a", 31, 32, "A"),
				mlockOK(3, "A", 40, 50, ab, []int64{7, 8}), // the retry: first sight of the tokens
				munlockOK(3, "A", 60, 70, ab, 2),
				finalRead(9, "a", 100, 110, ""),
				finalRead(9, "b", 100, 110, ""),
			},
			final: true,
		},
		{
			name: "indeterminate MLOCK did not take effect",
			ops: []Op{
				mlockUnknown(0, "A", 0, ab),
				lockOK(1, "b", "B", 20, 30, 3),
				finalRead(9, "a", 100, 110, ""),
				finalRead(9, "b", 100, 110, "B"),
			},
			final: true,
		},
		{
			name: "indeterminate MUNLOCK took effect",
			ops: []Op{
				mlockOK(0, "A", 0, 10, ab, []int64{1, 2}),
				munlockUnknown(0, "A", 20, ab),
				mlockOK(1, "B", 40, 50, []string{"b", "a"}, []int64{3, 4}),
			},
		},
		{
			name: "groups are checked apart",
			ops: []Op{
				mlockOK(0, "A", 0, 10, ab, []int64{1, 2}),
				mlockOK(1, "B", 0, 10, []string{"x", "y"}, []int64{3, 4}),
				lockOK(2, "z", "C", 11, 12, 5),
				munlockOK(0, "A", 20, 30, ab, 2),
			},
		},

		// Violations.
		{
			name: "MLOCK granted half: null, yet its owner holds one name",
			ops: []Op{
				lockOK(1, "b", "B", 0, 10, 1),
				mlockOK(0, "A", 11, 20, ab, nil),
				read(2, "a", 21, 30, "A"),
			},
			wantErr:   ErrNotLinearizable,
			wantInMsg: []string{`"a+b"`, "OWNER a -> A"},
		},
		{
			name: "MLOCK granted half: tokens, yet one name stayed free",
			ops: []Op{
				mlockOK(0, "A", 0, 10, ab, []int64{1, 2}),
				read(2, "b", 11, 20, ""),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "MUNLOCK released half",
			ops: []Op{
				mlockOK(0, "A", 0, 10, ab, []int64{1, 2}),
				munlockOK(0, "A", 11, 20, ab, 2),
				read(2, "b", 21, 30, "A"),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "MUNLOCK miscounts",
			ops: []Op{
				mlockOK(0, "A", 0, 10, ab, []int64{1, 2}),
				munlockOK(0, "A", 11, 20, abc, 3),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "a name granted to two owners by MLOCK",
			ops: []Op{
				lockOK(0, "a", "A", 0, 10, 1),
				mlockOK(1, "B", 11, 20, []string{"b", "a"}, []int64{2, 3}),
			},
			wantErr:   ErrNotLinearizable,
			wantInMsg: []string{"MLOCK b,a owner=B -> [2 3]"},
		},
		{
			name: "a name granted to two owners by LOCK after MLOCK",
			ops: []Op{
				mlockOK(0, "A", 0, 10, ab, []int64{1, 2}),
				lockOK(1, "b", "B", 11, 20, 3),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "MLOCK's new token does not beat the name's",
			ops: []Op{
				lockOK(0, "a", "A", 0, 10, 5),
				unlockOK(0, "a", "A", 11, 20, true),
				mlockOK(1, "B", 21, 30, ab, []int64{3, 6}),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "one token for two names",
			ops: []Op{
				mlockOK(0, "A", 0, 10, ab, []int64{4, 4}),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "new tokens out of the order of the names",
			ops:     []Op{mlockOK(0, "A", 0, 10, ab, []int64{5, 4})},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "re-grant with another token",
			ops: []Op{
				mlockOK(0, "A", 0, 10, ab, []int64{1, 2}),
				mlockOK(0, "A", 11, 20, ab, []int64{1, 3}),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "null while every name is free and no MLOCK waits",
			ops: []Op{
				mlockWait(1, "B", 0, 10, []string{"a", "c"}, []int64{1, 2}),
				munlockOK(1, "B", 11, 12, []string{"a", "c"}, 2),
				mlockOK(0, "A", 20, 30, ab, nil),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "MLOCK WAIT ran out while every name was free",
			ops:     []Op{mlockWait(0, "A", 0, 10, ab, nil)},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "LOCK null on a free name after the waiting MLOCK returned",
			ops: []Op{
				mlockWait(0, "A", 0, 10, ab, nil),
				lockOK(1, "a", "B", 20, 30, 0),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "MLOCK grant lost by the final reads",
			ops: []Op{
				mlockOK(0, "A", 0, 10, ab, []int64{1, 2}),
				finalRead(9, "a", 100, 110, "A"),
				finalRead(9, "b", 100, 110, ""),
			},
			final:   true,
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "final reads required of every name of an MLOCK",
			ops:     []Op{mlockOK(0, "A", 0, 10, ab, []int64{1, 2}), finalRead(9, "a", 100, 110, "A")},
			final:   true,
			wantErr: ErrBadHistory, wantInMsg: []string{`"b"`},
		},
		{
			name:    "repeated name",
			ops:     []Op{mlockOK(0, "A", 0, 10, []string{"a", "a"}, []int64{1, 2})},
			wantErr: ErrBadHistory,
		},
		{
			name:    "a token per name",
			ops:     []Op{mlockOK(0, "A", 0, 10, abc, []int64{1, 2})},
			wantErr: ErrBadHistory,
		},
		{
			name:    "SET NX is not in the model",
			ops:     []Op{setOK(0, "a", "A", 0, 10, true)},
			wantErr: ErrBadHistory,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "groups.html")
			orig := make([]Op, len(tt.ops))
			copy(orig, tt.ops)
			_, err := CheckGroups(tt.ops, GroupOptions{Timeout: 10 * time.Second, VisualizationPath: path, RequireFinalReads: tt.final})
			if !reflect.DeepEqual(orig, tt.ops) {
				t.Fatal("ops modified")
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("CheckGroups: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			for _, s := range tt.wantInMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not mention %q: %v", s, err)
				}
			}
			if errors.Is(err, ErrNotLinearizable) {
				if _, serr := os.Stat(path); serr != nil {
					t.Errorf("no visualization: %v", serr)
				}
			}
			t.Log(err)
		})
	}
}

func TestGroupsOf(t *testing.T) {
	ops := []Op{
		mlockOK(0, "A", 0, 10, []string{"a", "b"}, nil),
		munlockOK(0, "A", 0, 10, []string{"c", "b"}, 0),
		lockOK(0, "d", "A", 0, 10, 0),
		read(1, "e", 0, 1, ""),
		mlockOK(0, "A", 0, 10, []string{"e", "f"}, nil),
	}
	g := groupsOf(ops)
	want := map[string]string{"a": "a+b+c", "b": "a+b+c", "c": "a+b+c", "d": "d", "e": "e+f", "f": "e+f"}
	if len(g) != len(want) {
		t.Fatalf("groups of %d names, want %d", len(g), len(want))
	}
	for n, k := range want {
		if g[n].key != k {
			t.Errorf("group of %s = %q, want %q", n, g[n].key, k)
		}
	}
}

func TestCheckLinearizableRefusesMultiLockOps(t *testing.T) {
	err := CheckLinearizable([]Op{mlockOK(0, "A", 0, 10, []string{"a", "b"}, nil)}, LinearizabilityOptions{})
	if !errors.Is(err, ErrBadHistory) {
		t.Fatalf("err = %v, want ErrBadHistory", err)
	}
}

// mlock takes every name for owner or none (null); with half, it is the bug this
// package's group check exists for: it grants the free names even when another owner
// holds one, and replies null.
func (f *fakeLockd) mlock(names []string, owner string, half bool) []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	taken := false
	for _, n := range names {
		if o := f.owner[n]; o != "" && o != owner {
			taken = true
		}
	}
	if taken && !half {
		return nil
	}
	tokens := make([]int64, len(names))
	for i, n := range names {
		switch f.owner[n] {
		case "":
			f.tokens++
			f.owner[n], f.token[n] = owner, f.tokens
			tokens[i] = f.tokens
		case owner:
			tokens[i] = f.token[n]
		}
	}
	if taken {
		return nil
	}
	return tokens
}

func (f *fakeLockd) munlock(names []string, owner string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, name := range names {
		if f.owner[name] == owner {
			delete(f.owner, name)
			n++
		}
	}
	return n
}

// runGroupClients has eight clients take turns, one op each, recording LOCK, UNLOCK,
// OWNER, MLOCK (two or three of names) and MUNLOCK against srv; 1 in 10 ops is
// indeterminate, and half of those are applied. Turns rather than goroutines: every client
// then sees the others' locks, which is what makes a half-granted MLOCK visible.
func runGroupClients(srv *fakeLockd, h *History, names []string, half bool) {
	rng := rand.New(rand.NewPCG(7, 2))
	for range testOpsPerClient {
		for c := range 8 {
			owner := fmt.Sprintf("owner-%d", c)
			timeout, applied := rng.IntN(testUnknownRate) == 0, rng.IntN(2) == 0
			op := Op{Client: c, Kind: Kind(1 + rng.IntN(5)), Owner: owner}
			if op.Kind == KindSetNX {
				op.Kind = KindMLock
			}
			if op.Kind.multi() {
				for _, i := range rng.Perm(len(names))[:2+rng.IntN(2)] {
					op.Names = append(op.Names, names[i])
				}
			} else {
				op.Name = names[rng.IntN(len(names))]
			}
			p := h.BeginOp(op)
			if timeout && !applied {
				p.Unknown()
				continue
			}
			var finish func()
			switch op.Kind {
			case KindLock:
				tok := srv.lock(op.Name, owner)
				finish = func() { p.Locked(tok) }
			case KindUnlock:
				rel := srv.unlock(op.Name, owner)
				finish = func() { p.Unlocked(rel) }
			case KindOwner:
				holder := srv.read(op.Name)
				finish = func() { p.Read(holder) }
			case KindMLock:
				tokens := srv.mlock(op.Names, owner, half)
				finish = func() { p.MLocked(tokens) }
			case KindMUnlock:
				n := srv.munlock(op.Names, owner)
				finish = func() { p.MUnlocked(n) }
			}
			if timeout {
				p.Unknown()
			} else {
				finish()
			}
		}
	}
}

func TestRecordedGroupHistory(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	for _, tt := range []struct {
		name    string
		half    bool
		wantErr error
	}{
		{"correct server passes", false, nil},
		{"MLOCK that takes the free names when one is held fails", true, ErrNotLinearizable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := &fakeLockd{owner: map[string]string{}, token: map[string]int64{}}
			h := NewHistory()
			runGroupClients(srv, h, names, tt.half)
			if err := h.FinalReads(10, names, func(name string) (string, error) { return srv.read(name), nil }); err != nil {
				t.Fatal(err)
			}
			_, err := CheckGroups(h.Ops(), GroupOptions{Timeout: 30 * time.Second, RequireFinalReads: true})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("CheckGroups = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestCheckGroupsSummary(t *testing.T) {
	ops := []Op{
		lockOK(1, "b", "B", 0, 10, 2),
		mlockWait(0, "A", 11, 100, []string{"a", "b"}, []int64{5, 6}),
		lockOK(2, "a", "C", 20, 30, 0),                               // while A waits: reservable
		mlockOK(2, "C", 33, 34, []string{"a", "c"}, nil),             // the same
		unlockOK(1, "b", "B", 40, 50, true),                          //
		lockOK(2, "b", "C", 101, 102, 0),                             // held by A
		mlockOK(3, "D", 110, 120, []string{"x", "y"}, []int64{8, 9}), // a second group
	}
	sum, err := CheckGroups(ops, GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (GroupSummary{Groups: 2, Nulls: 3, Reservable: 2}); sum != want {
		t.Fatalf("summary = %+v, want %+v", sum, want)
	}
}
