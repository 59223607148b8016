package check

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCheckLinearizable(t *testing.T) {
	tests := []struct {
		name       string
		ops        []Op
		final      bool     // RequireFinalReads
		wantErr    error    // nil: must pass
		wantInMsg  []string // substrings of the error
		visualizes bool     // a visualization must be written
	}{
		// Good histories.
		{
			name: "sequential lock unlock relock with final read",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				read(1, "x", 11, 12, "a"),
				lockOK(1, "x", "b", 13, 14, 0),
				unlockOK(0, "x", "a", 20, 30, true),
				unlockOK(0, "x", "a", 31, 32, false),
				lockOK(1, "x", "b", 40, 50, 7),
				lockOK(1, "x", "b", 51, 52, 7), // re-grant: same token
				finalRead(9, "x", 100, 110, "b"),
			},
			final: true,
		},
		{
			name: "SET NX and LOCK on one lock",
			ops: []Op{
				setOK(0, "x", "a", 0, 10, true),
				setOK(1, "x", "b", 11, 12, false),
				setOK(0, "x", "a", 13, 14, false), // NX: held, by its own owner too
				lockOK(0, "x", "a", 15, 16, 4),    // LOCK by the holder: first sight of its token
				unlockOK(0, "x", "a", 20, 30, true),
				setOK(1, "x", "b", 31, 40, true),
				finalRead(9, "x", 100, 110, "b"),
			},
			final: true,
		},
		{
			name:    "SET NX granted while held",
			ops:     []Op{lockOK(0, "x", "a", 0, 10, 1), setOK(1, "x", "b", 11, 20, true)},
			wantErr: ErrNotLinearizable,
		},
		{
			name:    "SET NX refused while free",
			ops:     []Op{setOK(1, "x", "b", 11, 20, false)},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "concurrent overlapping ops",
			ops: []Op{
				lockOK(0, "x", "a", 0, 100, 1),
				read(2, "x", 5, 15, ""), // before a's grant
				lockOK(1, "x", "b", 10, 50, 0),
				read(3, "x", 20, 30, "a"), // after a's grant
				lockOK(4, "x", "c", 0, 100, 0),
				unlockOK(0, "x", "a", 110, 120, true),
				lockOK(4, "x", "c", 115, 130, 2),
				read(2, "x", 116, 117, "a"), // unlock and lock still in flight
				read(3, "x", 118, 119, ""),  // unlock took effect, c's lock not yet
			},
		},
		{
			name: "tokens interleave across locks",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				lockOK(1, "y", "b", 11, 20, 2),
				unlockOK(0, "x", "a", 21, 30, true),
				lockOK(2, "x", "c", 31, 40, 5),
				unlockOK(1, "y", "b", 41, 50, true),
				lockOK(0, "y", "a", 51, 60, 9),
			},
		},
		{
			name: "indeterminate lock took effect",
			ops: []Op{
				lockUnknown(0, "x", "a", 0),
				lockOK(1, "x", "b", 20, 30, 0),
				read(2, "x", 31, 32, "a"),
				lockOK(0, "x", "a", 40, 50, 4), // retry: first sight of the token
				unlockOK(0, "x", "a", 60, 70, true),
				lockOK(1, "x", "b", 80, 90, 5),
				finalRead(9, "x", 100, 110, "b"),
			},
			final: true,
		},
		{
			name: "indeterminate lock did not take effect",
			ops: []Op{
				lockUnknown(0, "x", "a", 0),
				lockOK(1, "x", "b", 20, 30, 3),
				finalRead(9, "x", 100, 110, "b"),
			},
			final: true,
		},
		{
			name: "indeterminate unlock took effect",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				unlockUnknown(0, "x", "a", 20),
				lockOK(1, "x", "b", 40, 50, 2),
				finalRead(9, "x", 100, 110, "b"),
			},
			final: true,
		},
		{
			name: "indeterminate unlock did not take effect",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				unlockUnknown(0, "x", "a", 20),
				lockOK(1, "x", "b", 40, 50, 0),
				finalRead(9, "x", 100, 110, "a"),
			},
			final: true,
		},
		{
			name: "indeterminate read is ignored",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				{Client: 1, Kind: KindOwner, Name: "x", Call: 20, Status: StatusUnknown, Holder: "zzz"},
			},
		},
		{
			name: "indeterminate ops apply in turn, late",
			ops: []Op{
				lockUnknown(0, "x", "a", 0),
				lockUnknown(1, "x", "b", 1),
				read(2, "x", 10, 11, "b"),
				unlockOK(1, "x", "b", 20, 30, true),
				read(2, "x", 40, 41, ""),
				lockOK(3, "x", "c", 50, 60, 0), // a's lock applied after the read
				finalRead(9, "x", 100, 110, "a"),
			},
			final: true,
		},
		{
			name: "failed ops are ignored",
			ops: []Op{
				{Client: 0, Kind: KindLock, Name: "x", Owner: "a", Call: 0, Return: 10, Status: StatusFailed},
				{Client: 0, Kind: KindUnlock, Name: "x", Owner: "b", Call: 0, Return: 10, Status: StatusFailed, Released: true},
				finalRead(9, "x", 100, 110, ""),
			},
			final: true,
		},

		// Bad histories.
		{
			name: "two holders at once",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				lockOK(1, "x", "b", 20, 30, 2),
			},
			wantErr:    ErrNotLinearizable,
			wantInMsg:  []string{`lock "x"`, "c1 LOCK x owner=b -> 2 [20,30]"},
			visualizes: true,
		},
		{
			name: "new grant with a smaller token",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 5),
				unlockOK(0, "x", "a", 20, 30, true),
				lockOK(1, "x", "b", 40, 50, 3),
			},
			wantErr:   ErrNotLinearizable,
			wantInMsg: []string{"c1 LOCK x owner=b -> 3 [40,50]"},
		},
		{
			name: "new grant repeating the last token",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 5),
				unlockOK(0, "x", "a", 20, 30, true),
				lockOK(0, "x", "a", 40, 50, 5),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "re-grant with a different token",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 5),
				lockOK(0, "x", "a", 20, 30, 6),
			},
			wantErr:   ErrNotLinearizable,
			wantInMsg: []string{"-> 6 [20,30]"},
		},
		{
			name: "lost acknowledged lock",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				finalRead(9, "x", 100, 110, ""),
			},
			final:     true,
			wantErr:   ErrNotLinearizable,
			wantInMsg: []string{"OWNER x (final) -> null"},
		},
		{
			name: "lost acknowledged unlock",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				unlockOK(0, "x", "a", 20, 30, true),
				finalRead(9, "x", 100, 110, "a"),
			},
			final:   true,
			wantErr: ErrNotLinearizable,
		},
		{
			name: "stale read after unlock",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				unlockOK(0, "x", "a", 20, 30, true),
				read(1, "x", 40, 50, "a"),
			},
			wantErr:   ErrNotLinearizable,
			wantInMsg: []string{"c1 OWNER x -> a [40,50]"},
		},
		{
			name: "indeterminate lock cannot explain a stale read",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				unlockOK(0, "x", "a", 20, 30, true),
				lockUnknown(1, "x", "b", 35),
				read(2, "x", 40, 50, "a"),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "refused while free",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 0),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "unlock by a non-holder succeeds",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				unlockOK(1, "x", "b", 20, 30, true),
			},
			wantErr: ErrNotLinearizable,
		},
		{
			name: "only the bad lock is named",
			ops: []Op{
				lockOK(0, "good", "a", 0, 10, 1),
				lockOK(0, "bad", "a", 0, 10, 2),
				lockOK(1, "bad", "b", 20, 30, 3),
			},
			wantErr:   ErrNotLinearizable,
			wantInMsg: []string{`lock "bad"`},
		},
		{
			name: "missing final read",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				lockOK(0, "y", "a", 0, 10, 2),
				finalRead(9, "x", 100, 110, "a"),
			},
			final:     true,
			wantErr:   ErrBadHistory,
			wantInMsg: []string{`"y"`},
		},
		{
			name:    "malformed op",
			ops:     []Op{{Kind: KindLock, Name: "x", Owner: "a", Call: 10, Return: 5, Status: StatusOK, Token: 1}},
			wantErr: ErrBadHistory,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lin.html")
			orig := append([]Op(nil), tt.ops...)
			err := CheckLinearizable(tt.ops, LinearizabilityOptions{
				Timeout: 10 * time.Second, VisualizationPath: path, RequireFinalReads: tt.final,
			})
			for i := range orig {
				if !reflect.DeepEqual(orig[i], tt.ops[i]) {
					t.Fatalf("op %d modified", i)
				}
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("good history rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, ErrUndecided) {
				t.Fatalf("illegal history reported undecided too: %v", err)
			}
			for _, s := range tt.wantInMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not mention %q:\n%v", s, err)
				}
			}
			if tt.visualizes {
				b, rerr := os.ReadFile(path)
				if rerr != nil || !strings.Contains(string(b), "<html") {
					t.Errorf("no visualization at %s: %v", path, rerr)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error does not name the visualization: %v", err)
				}
			}
			t.Log(err)
		})
	}
}

func TestCheckLinearizableFailureDetails(t *testing.T) {
	ops := []Op{
		lockOK(0, "x", "a", 0, 10, 1),
		read(2, "x", 11, 12, "a"),
		lockOK(1, "x", "b", 20, 30, 2),
	}
	err := CheckLinearizable(ops, LinearizabilityOptions{})
	var lerr *LinearizabilityError
	if !errors.As(err, &lerr) {
		t.Fatalf("err = %v, want *LinearizabilityError", err)
	}
	if len(lerr.Illegal) != 1 || len(lerr.Undecided) != 0 {
		t.Fatalf("illegal %d, undecided %d; want 1, 0", len(lerr.Illegal), len(lerr.Undecided))
	}
	f := lerr.Illegal[0]
	if f.Name != "x" || f.Total != 3 || len(f.Linearized) != 2 {
		t.Fatalf("failure = %+v", f)
	}
	if len(f.Stuck) != 1 || !reflect.DeepEqual(f.Stuck[0], ops[2]) {
		t.Fatalf("stuck = %v, want [%v]", f.Stuck, ops[2])
	}
	if lerr.Visualization != "" {
		t.Fatalf("visualization written without a path: %q", lerr.Visualization)
	}
}

func TestCheckLinearizableUndecided(t *testing.T) {
	// Many concurrent indeterminate ops make a large search; a 1ns bound cannot finish it.
	var ops []Op
	for i := range 40 {
		owner := string(rune('a' + i%26))
		ops = append(ops, lockUnknown(i, "x", owner, int64(i)), unlockUnknown(i, "x", owner, int64(i)+1))
	}
	ops = append(ops, finalRead(99, "x", 1000, 1001, "zz"))
	err := CheckLinearizable(ops, LinearizabilityOptions{Timeout: time.Nanosecond})
	if !errors.Is(err, ErrUndecided) || errors.Is(err, ErrNotLinearizable) {
		t.Fatalf("err = %v, want only ErrUndecided", err)
	}
	if !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("undecided lock not named: %v", err)
	}
}
