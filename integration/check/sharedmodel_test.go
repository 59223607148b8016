package check

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Builders for hand-written read/write lock and semaphore histories.

func rwOK(c int, name, owner string, write bool, call, ret, token int64) Op {
	return Op{Client: c, Kind: KindRWLock, Name: name, Owner: owner, Write: write, Call: call, Return: ret, Status: StatusOK, Token: token}
}

func rwWaitOK(c int, name, owner string, write bool, call, ret, token int64) Op {
	op := rwOK(c, name, owner, write, call, ret, token)
	op.Wait = true
	return op
}

func rwUnknown(c int, name, owner string, write bool, call int64) Op {
	return Op{Client: c, Kind: KindRWLock, Name: name, Owner: owner, Write: write, Call: call, Return: call + 1, Status: StatusUnknown}
}

func semOK(c int, name, owner string, limit int, call, ret, token int64) Op {
	return Op{Client: c, Kind: KindSemLock, Name: name, Owner: owner, Limit: limit, Call: call, Return: ret, Status: StatusOK, Token: token}
}

func semUnknown(c int, name, owner string, limit int, call int64) Op {
	return Op{Client: c, Kind: KindSemLock, Name: name, Owner: owner, Limit: limit, Call: call, Return: call + 1, Status: StatusUnknown}
}

func releaseOK(c int, kind Kind, name, owner string, call, ret int64, released bool) Op {
	return Op{Client: c, Kind: kind, Name: name, Owner: owner, Call: call, Return: ret, Status: StatusOK, Released: released}
}

func releaseUnknown(c int, kind Kind, name, owner string, call int64) Op {
	return Op{Client: c, Kind: kind, Name: name, Owner: owner, Call: call, Return: call + 1, Status: StatusUnknown}
}

// info is an RWINFO or SEMINFO replying holders, written as FormatHolders writes them.
func info(c int, kind Kind, name string, call, ret int64, holders string) Op {
	return Op{Client: c, Kind: kind, Name: name, Call: call, Return: ret, Status: StatusOK, Holders: holders}
}

func finalInfo(c int, kind Kind, name string, call, ret int64, holders string) Op {
	op := info(c, kind, name, call, ret, holders)
	op.Final = true
	return op
}

const (
	R = false // READ
	W = true  // WRITE
)

func TestCheckLinearizableShared(t *testing.T) {
	tests := []struct {
		name      string
		ops       []Op
		final     bool     // RequireFinalReads
		wantErr   error    // nil: must pass
		wantInMsg []string // substrings of the error
	}{
		// Legal histories.
		{
			name: "readers share, then a writer alone",
			ops: []Op{
				rwOK(0, "x", "a", R, 0, 10, 1),
				rwOK(1, "x", "b", R, 11, 20, 2),
				rwOK(1, "x", "b", R, 21, 22, 2), // re-grant: same token
				info(2, KindRWInfo, "x", 23, 24, "a:1 b:2"),
				rwOK(3, "x", "c", W, 25, 30, 0), // held: refused
				releaseOK(0, KindRWUnlock, "x", "a", 31, 32, true),
				releaseOK(0, KindRWUnlock, "x", "a", 33, 34, false),
				releaseOK(1, KindRWUnlock, "x", "b", 35, 36, true),
				rwOK(3, "x", "c", W, 40, 50, 7),
				rwOK(3, "x", "c", W, 51, 52, 7),
				rwOK(0, "x", "a", R, 53, 54, 0), // a writer holds
				info(2, KindRWInfo, "x", 55, 56, "c:7:write"),
				finalInfo(9, KindRWInfo, "x", 100, 110, "c:7:write"),
			},
			final: true,
		},
		{
			name: "a waiting writer is granted at the release, and turns readers away meanwhile",
			ops: []Op{
				rwOK(0, "x", "a", R, 0, 10, 1),
				rwWaitOK(1, "x", "w", W, 11, 60, 4),
				rwOK(2, "x", "b", R, 20, 25, 0), // only readers hold, but the writer waits
				releaseOK(0, KindRWUnlock, "x", "a", 40, 50, true),
				info(2, KindRWInfo, "x", 61, 62, "w:4:write"),
			},
		},
		{
			name: "a WAIT that runs out while a writer holds",
			ops: []Op{
				rwOK(0, "x", "a", W, 0, 10, 1),
				rwWaitOK(1, "x", "b", R, 11, 60, 0),
				rwWaitOK(2, "x", "c", W, 11, 60, 0),
			},
		},
		{
			name: "readers granted together at a writer's release",
			ops: []Op{
				rwOK(0, "x", "w", W, 0, 10, 1),
				rwWaitOK(1, "x", "a", R, 11, 60, 5),
				rwWaitOK(2, "x", "b", R, 12, 60, 6),
				releaseOK(0, KindRWUnlock, "x", "w", 40, 50, true),
				info(3, KindRWInfo, "x", 61, 62, "a:5 b:6"),
			},
		},
		{
			name: "indeterminate grant shown by INFO and re-granted",
			ops: []Op{
				rwUnknown(0, "x", "a", R, 0),
				rwOK(1, "x", "b", R, 10, 20, 5),
				info(2, KindRWInfo, "x", 30, 40, "a:3 b:5"), // a's grant came first
				rwOK(0, "x", "a", R, 50, 60, 3),
				finalInfo(9, KindRWInfo, "x", 100, 110, "a:3 b:5"),
			},
			final: true,
		},
		{
			name: "indeterminate grant that did not happen, and one applied late",
			ops: []Op{
				rwUnknown(0, "x", "a", W, 0),
				rwUnknown(1, "y", "a", W, 0),
				rwOK(1, "x", "b", W, 10, 20, 5),
				info(2, KindRWInfo, "y", 30, 40, ""),
				finalInfo(9, KindRWInfo, "x", 100, 110, "b:5:write"),
				finalInfo(9, KindRWInfo, "y", 100, 110, "a:9:write"),
			},
			final: true,
		},
		{
			name: "indeterminate release",
			ops: []Op{
				rwOK(0, "x", "a", W, 0, 10, 1),
				releaseUnknown(0, KindRWUnlock, "x", "a", 20),
				rwOK(1, "x", "b", R, 30, 40, 0),
				rwOK(1, "x", "b", R, 50, 60, 2),
				finalInfo(9, KindRWInfo, "x", 100, 110, "b:2"),
			},
			final: true,
		},
		{
			name: "semaphore up to its limit",
			ops: []Op{
				semOK(0, "s", "a", 2, 0, 10, 1),
				semOK(1, "s", "b", 2, 11, 20, 2),
				semOK(1, "s", "b", 2, 21, 22, 2), // re-grant
				semOK(2, "s", "c", 2, 23, 24, 0), // full
				info(3, KindSemInfo, "s", 25, 26, "a:1 b:2"),
				releaseOK(0, KindSemUnlock, "s", "a", 30, 40, true),
				semOK(2, "s", "c", 2, 41, 50, 3),
				releaseOK(0, KindSemUnlock, "s", "a", 51, 52, false),
				finalInfo(9, KindSemInfo, "s", 100, 110, "b:2 c:3"),
			},
			final: true,
		},
		{
			name: "semaphore waiter granted at a release; indeterminate grant and release",
			ops: []Op{
				semOK(0, "s", "a", 2, 0, 10, 1),
				semUnknown(1, "s", "b", 2, 11),
				{Client: 2, Kind: KindSemLock, Name: "s", Owner: "c", Limit: 2, Wait: true, Call: 20, Return: 60, Status: StatusOK, Token: 5},
				releaseUnknown(0, KindSemUnlock, "s", "a", 30),
				info(3, KindSemInfo, "s", 61, 62, "b:2 c:5"),
			},
		},
		{
			name: "failed ops and indeterminate reads are ignored",
			ops: []Op{
				{Client: 0, Kind: KindRWLock, Name: "x", Owner: "a", Write: true, Call: 0, Return: 10, Status: StatusFailed, Token: 0},
				{Client: 1, Kind: KindRWInfo, Name: "x", Call: 0, Status: StatusUnknown, Holders: "zz:1"},
				finalInfo(9, KindRWInfo, "x", 100, 110, ""),
			},
			final: true,
		},

		// Violations.
		{
			name:      "a writer with a reader",
			ops:       []Op{rwOK(0, "x", "a", R, 0, 10, 1), rwOK(1, "x", "b", W, 20, 30, 2)},
			wantErr:   ErrNotLinearizable,
			wantInMsg: []string{`lock "x"`, "c1 RWLOCK x owner=b WRITE -> 2 [20,30]"},
		},
		{
			name:    "a reader with a writer",
			ops:     []Op{rwOK(0, "x", "a", W, 0, 10, 1), rwOK(1, "x", "b", R, 20, 30, 2)},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "two writers",
			ops:     []Op{rwOK(0, "x", "a", W, 0, 10, 1), rwWaitOK(1, "x", "b", W, 20, 30, 2)},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "limit+1 holders",
			ops: []Op{
				semOK(0, "s", "a", 2, 0, 10, 1),
				semOK(1, "s", "b", 2, 11, 20, 2),
				semOK(2, "s", "c", 2, 21, 30, 3),
			},
			wantErr:   ErrNotLinearizable,
			wantInMsg: []string{"c2 SEMLOCK s owner=c limit=2 -> 3 [21,30]"},
		},
		{
			name: "a token reused by a new grant",
			ops: []Op{
				rwOK(0, "x", "a", R, 0, 10, 5),
				releaseOK(0, KindRWUnlock, "x", "a", 11, 20, true),
				rwOK(1, "x", "b", R, 21, 30, 5),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "a decreasing token",
			ops:     []Op{semOK(0, "s", "a", 2, 0, 10, 5), semOK(1, "s", "b", 2, 11, 20, 4)},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "a re-grant with another token",
			ops:     []Op{rwOK(0, "x", "a", R, 0, 10, 5), rwOK(0, "x", "a", R, 11, 20, 6)},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "an indeterminate grant's token lower than one granted before it was called",
			ops:     []Op{rwOK(0, "x", "b", R, 0, 10, 5), rwUnknown(1, "x", "a", R, 20), info(2, KindRWInfo, "x", 30, 40, "a:3 b:5")},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "a stale INFO read",
			ops: []Op{
				rwOK(0, "x", "a", W, 0, 10, 1),
				releaseOK(0, KindRWUnlock, "x", "a", 20, 30, true),
				info(1, KindRWInfo, "x", 40, 50, "a:1:write"),
			},
			wantErr:   ErrNotLinearizable,
			wantInMsg: []string{"c1 RWINFO x -> [a:1:write] [40,50]"},
		},
		{
			name: "a stale SEMINFO read",
			ops: []Op{
				semOK(0, "s", "a", 2, 0, 10, 1),
				info(1, KindSemInfo, "s", 40, 50, ""),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "INFO with the wrong mode",
			ops:     []Op{rwOK(0, "x", "a", R, 0, 10, 1), info(1, KindRWInfo, "x", 20, 30, "a:1:write")},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "INFO out of grant order",
			ops:     []Op{rwOK(0, "x", "a", R, 0, 10, 1), rwOK(1, "x", "b", R, 11, 20, 2), info(2, KindRWInfo, "x", 21, 30, "b:2 a:1")},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "WRITE refused while free",
			ops:     []Op{rwOK(0, "x", "a", W, 0, 10, 0)},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "READ refused while only readers hold and no writer waits",
			ops:     []Op{rwOK(0, "x", "a", R, 0, 10, 1), rwWaitOK(1, "x", "w", W, 11, 12, 0), rwOK(2, "x", "b", R, 20, 30, 0)},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "SEMLOCK refused below its limit",
			ops:     []Op{semOK(0, "s", "a", 2, 0, 10, 1), semOK(1, "s", "b", 2, 20, 30, 0)},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "a holder granted the other mode",
			ops:     []Op{rwOK(0, "x", "a", W, 0, 10, 1), rwOK(0, "x", "a", R, 20, 30, 2)},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "release by a non-holder",
			ops:     []Op{semOK(0, "s", "a", 2, 0, 10, 1), releaseOK(1, KindSemUnlock, "s", "b", 20, 30, true)},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "lost acknowledged grant",
			ops: []Op{
				rwOK(0, "x", "a", R, 0, 10, 1),
				finalInfo(9, KindRWInfo, "x", 100, 110, ""),
			},
			final:     true,
			wantErr:   ErrNotLinearizable,
			wantInMsg: []string{"RWINFO x (final) -> []"},
		},
		{
			name:      "missing final read",
			ops:       []Op{semOK(0, "s", "a", 2, 0, 10, 1), info(1, KindSemInfo, "s", 20, 30, "a:1")},
			final:     true,
			wantErr:   ErrBadHistory,
			wantInMsg: []string{`"s"`},
		},
		{
			name:    "lock and shared ops in one history",
			ops:     []Op{lockOK(0, "x", "a", 0, 10, 1), rwOK(0, "x", "a", R, 20, 30, 2)},
			wantErr: ErrBadHistory,
		},
		{
			name:    "unreadable holders",
			ops:     []Op{info(1, KindRWInfo, "x", 20, 30, "a:b")},
			wantErr: ErrBadHistory,
		},
		{
			name:    "semaphore without a limit",
			ops:     []Op{semOK(0, "s", "a", 0, 0, 10, 1)},
			wantErr: ErrBadHistory,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lin.html")
			err := CheckLinearizable(tt.ops, LinearizabilityOptions{
				Timeout: 10 * time.Second, VisualizationPath: path, RequireFinalReads: tt.final,
			})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("legal history rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || errors.Is(err, ErrUndecided) {
				t.Fatalf("err = %v, want only %v", err, tt.wantErr)
			}
			for _, s := range tt.wantInMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not mention %q:\n%v", s, err)
				}
			}
			if errors.Is(err, ErrNotLinearizable) {
				if b, rerr := os.ReadFile(path); rerr != nil || !strings.Contains(string(b), "<html") {
					t.Errorf("no visualization at %s: %v", path, rerr)
				}
			}
			t.Log(err)
		})
	}
}

func TestCheckFencingShared(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want bool // a violation
	}{
		{"readers' tokens rise with LOCK's", []Op{lockOK(0, "x", "a", 0, 10, 1), rwOK(1, "x", "b", R, 11, 20, 2), semOK(2, "s", "c", 2, 21, 30, 3)}, false},
		{"a reader's token below a LOCK granted before", []Op{lockOK(0, "x", "a", 0, 10, 5), rwOK(1, "y", "b", R, 11, 20, 4)}, true},
		{"one token for a LOCK and an RWLOCK of one name and owner", []Op{lockOK(0, "x", "a", 0, 10, 5), rwOK(1, "x", "a", R, 0, 10, 5)}, true},
		{"one token for two readers", []Op{rwOK(0, "x", "a", R, 0, 10, 5), rwOK(1, "x", "b", R, 0, 10, 5)}, true},
		{"a retried SEMLOCK keeps its first grant's token", []Op{semUnknown(0, "s", "a", 2, 0), lockOK(1, "x", "b", 10, 20, 7), semOK(0, "s", "a", 2, 30, 40, 6)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFencing(tt.ops)
			if tt.want != errors.Is(err, ErrFencing) {
				t.Fatalf("CheckFencing = %v, want a violation: %v", err, tt.want)
			}
		})
	}
}

func TestHistoryRecordsShared(t *testing.T) {
	h := NewHistory()
	h.BeginOp(Op{Client: 0, Kind: KindRWLock, Name: "x", Owner: "a", Write: true, Wait: true, Final: true}).Locked(3)
	h.BeginOp(Op{Client: 1, Kind: KindSemLock, Name: "s", Owner: "b", Limit: 2}).Locked(0)
	h.Begin(2, KindSemUnlock, "s", "b").Unlocked(true)
	h.Begin(3, KindRWInfo, "x", "ignored").Info([]Holder{{Owner: "a", Write: true, Token: 3}})
	boom := errors.New("boom")
	err := h.FinalInfo(9, KindSemInfo, []string{"s", "t"}, func(name string) ([]Holder, error) {
		if name == "t" {
			return nil, boom
		}
		return []Holder{{Owner: "b", Token: 4}, {Owner: "c", Token: 5}}, nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("FinalInfo = %v, want boom", err)
	}
	want := []Op{
		{Client: 0, Kind: KindRWLock, Name: "x", Owner: "a", Write: true, Wait: true, Status: StatusOK, Token: 3},
		{Client: 1, Kind: KindSemLock, Name: "s", Owner: "b", Limit: 2, Status: StatusOK},
		{Client: 2, Kind: KindSemUnlock, Name: "s", Owner: "b", Status: StatusOK, Released: true},
		{Client: 3, Kind: KindRWInfo, Name: "x", Status: StatusOK, Holders: "a:3:write"},
		{Client: 9, Kind: KindSemInfo, Name: "s", Final: true, Status: StatusOK, Holders: "b:4 c:5"},
		{Client: 9, Kind: KindSemInfo, Name: "t", Final: true, Status: StatusUnknown},
	}
	ops := h.Ops()
	if len(ops) != len(want) {
		t.Fatalf("%d ops, want %d", len(ops), len(want))
	}
	for i, op := range ops {
		op.Call, op.Return = 0, 0
		if !reflect.DeepEqual(op, want[i]) {
			t.Errorf("op %d = %+v, want %+v", i, op, want[i])
		}
	}
	if s := ops[0].String(); !strings.Contains(s, "RWLOCK x owner=a WRITE WAIT -> 3") {
		t.Errorf("String() = %q", s)
	}
	holders, err := parseHolders(ops[4].Holders)
	if err != nil || len(holders) != 2 || holders[1] != (Holder{Owner: "c", Token: 5}) {
		t.Errorf("parseHolders(%q) = %v, %v", ops[4].Holders, holders, err)
	}
}

func TestPendingMisuseShared(t *testing.T) {
	tests := []struct {
		name string
		do   func(h *History)
	}{
		{"INFO finished as a grant", func(h *History) { h.Begin(0, KindRWInfo, "x", "").Locked(1) }},
		{"SEMLOCK finished as INFO", func(h *History) { h.Begin(0, KindSemLock, "x", "a").Info(nil) }},
		{"final reads of a grant", func(h *History) { h.FinalInfo(0, KindRWLock, []string{"x"}, nil) }},
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

// fakeShared is an in-process table of read/write locks (names "rw*") and semaphores of
// limit 2 (names "sem*"), one global token counter, no queue (no WAIT). bug, when set,
// breaks it in one way.
type fakeShared struct {
	bug string // "", "reader with writer", "limit+1", "token reused"

	mu      sync.Mutex
	holders map[string][]Holder
	tokens  int64
}

func (f *fakeShared) lock(name, owner string, write bool) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	hs := f.holders[name]
	for _, h := range hs {
		if h.Owner == owner {
			return h.Token // the workload never asks for the other mode
		}
	}
	var fits bool
	switch {
	case strings.HasPrefix(name, "sem"):
		fits = len(hs) < 2 || f.bug == "limit+1" && len(hs) < 3
	case write:
		fits = len(hs) == 0
	default:
		fits = len(hs) == 0 || !hs[0].Write || f.bug == "reader with writer"
	}
	if !fits {
		return 0
	}
	if f.bug != "token reused" || f.tokens == 0 {
		f.tokens++
	}
	f.holders[name] = append(hs, Holder{Owner: owner, Write: write, Token: f.tokens})
	return f.tokens
}

func (f *fakeShared) unlock(name, owner string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.holders[name])
	f.holders[name] = slices.DeleteFunc(f.holders[name], func(h Holder) bool { return h.Owner == owner })
	return len(f.holders[name]) < n
}

func (f *fakeShared) info(name string) []Holder {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.holders[name])
}

// runSharedClients has ten clients record concurrent ops on two read/write locks and a
// semaphore against srv; 1 in 10 ops is indeterminate, and half of those are applied.
// Then, one after another, a writer and a reader lock "rw-z" and three owners "sem-z", so
// that a broken srv shows its bug whatever the interleaving was.
func runSharedClients(srv *fakeShared, h *History, names []string) {
	var wg sync.WaitGroup
	for c := range 10 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 2))
			owner := fmt.Sprintf("owner-%d", c)
			mode := map[string]bool{} // the mode this owner uses on each name, fixed
			for range testOpsPerClient {
				name := names[rng.IntN(len(names))]
				if _, ok := mode[name]; !ok {
					mode[name] = rng.IntN(3) == 0
				}
				sem := strings.HasPrefix(name, "sem")
				op := Op{Client: c, Name: name, Owner: owner}
				switch r := rng.IntN(3); {
				case r == 0 && sem:
					op.Kind, op.Limit = KindSemLock, 2
				case r == 0:
					op.Kind, op.Write = KindRWLock, mode[name]
				case r == 1 && sem:
					op.Kind = KindSemUnlock
				case r == 1:
					op.Kind = KindRWUnlock
				case sem:
					op.Kind = KindSemInfo
				default:
					op.Kind = KindRWInfo
				}
				p := h.BeginOp(op)
				timeout, applied := rng.IntN(testUnknownRate) == 0, rng.IntN(2) == 0
				if timeout && !applied {
					p.Unknown()
					continue
				}
				var finish func()
				switch op.Kind.family() {
				case KindLock:
					tok := srv.lock(name, owner, op.Write)
					finish = func() { p.Locked(tok) }
				case KindUnlock:
					rel := srv.unlock(name, owner)
					finish = func() { p.Unlocked(rel) }
				default:
					hs := srv.info(name)
					finish = func() { p.Info(hs) }
				}
				if timeout {
					p.Unknown()
				} else {
					finish()
				}
			}
		})
	}
	wg.Wait()
	for _, op := range []Op{
		{Kind: KindRWLock, Name: "rw-z", Owner: "w", Write: true},
		{Kind: KindRWLock, Name: "rw-z", Owner: "r"},
		{Kind: KindSemLock, Name: "sem-z", Owner: "a", Limit: 2},
		{Kind: KindSemLock, Name: "sem-z", Owner: "b", Limit: 2},
		{Kind: KindSemLock, Name: "sem-z", Owner: "c", Limit: 2},
	} {
		h.BeginOp(op).Locked(srv.lock(op.Name, op.Owner, op.Write))
	}
}

func TestRecordedConcurrentSharedHistory(t *testing.T) {
	names := []string{"rw-x", "rw-y", "sem-s"}
	for _, bug := range []string{"", "reader with writer", "limit+1", "token reused"} {
		t.Run("bug="+bug, func(t *testing.T) {
			srv := &fakeShared{bug: bug, holders: map[string][]Holder{}}
			h := NewHistory()
			runSharedClients(srv, h, names)
			err := h.FinalInfo(10, KindRWInfo, []string{"rw-x", "rw-y", "rw-z"}, func(name string) ([]Holder, error) { return srv.info(name), nil })
			if err == nil {
				err = h.FinalInfo(10, KindSemInfo, []string{"sem-s", "sem-z"}, func(name string) ([]Holder, error) { return srv.info(name), nil })
			}
			if err != nil {
				t.Fatal(err)
			}
			ops := h.Ops()
			err = CheckLinearizable(ops, LinearizabilityOptions{Timeout: 30 * time.Second, RequireFinalReads: true})
			if bug == "" {
				if err != nil {
					t.Fatalf("correct server rejected: %v", err)
				}
				if err := CheckFencing(ops); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrNotLinearizable) {
				t.Fatalf("CheckLinearizable = %v, want ErrNotLinearizable", err)
			}
			t.Log(err)
		})
	}
}

// TestHistorySibling: a history of read/write lock ops recorded next to a lock history is
// checked with it for fencing; the two must share a clock. A grant recorded in the sibling
// after a grant in h, with a larger token, is no violation.
func TestHistorySibling(t *testing.T) {
	h := NewHistory()
	for deadline := time.Now().Add(time.Second); h.Now() < int64(time.Millisecond) && time.Now().Before(deadline); {
		runtime.Gosched() // let h's clock run a little, so a fresh clock would be behind it
	}
	h.Begin(0, KindLock, "x", "a").Locked(9)
	s := h.Sibling()
	s.BeginOp(Op{Client: 0, Kind: KindSemLock, Name: "s", Owner: "b", Limit: 2}).Locked(10)
	ops := slices.Concat(h.Ops(), s.Ops())
	if ops[1].Call < ops[0].Return {
		t.Fatalf("sibling's op called at %d, before h's op returned at %d", ops[1].Call, ops[0].Return)
	}
	if err := CheckFencing(ops); err != nil {
		t.Fatal(err)
	}
	if len(s.Ops()) != 1 || len(h.Ops()) != 1 {
		t.Fatal("a sibling shares its ops")
	}
}
