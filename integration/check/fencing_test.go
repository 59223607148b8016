package check

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestCheckFencing(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		// want lists the (Earlier, Later) op indexes of the expected violations; nil: pass.
		want [][2]int
	}{
		{
			name: "increasing tokens across locks",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				lockOK(1, "y", "b", 20, 30, 2),
				lockOK(2, "z", "c", 40, 50, 9),
			},
		},
		{
			name: "concurrent grants may take tokens in either order",
			ops: []Op{
				lockOK(0, "x", "a", 0, 100, 5),
				lockOK(1, "y", "b", 10, 20, 3),
				lockOK(2, "z", "c", 100, 110, 4), // concurrent with x's return (closed intervals)
			},
		},
		{
			name: "re-grant keeps its old token after larger grants",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 1),
				lockOK(1, "y", "b", 20, 30, 2),
				lockOK(0, "x", "a", 40, 50, 1),
			},
		},
		{
			name: "indeterminate lock may have been the grant",
			ops: []Op{
				lockUnknown(0, "x", "a", 0),
				lockOK(1, "y", "b", 10, 20, 5),
				lockOK(0, "x", "a", 30, 40, 3), // retry returns the first grant's token
			},
		},
		{
			name: "refusals and other ops are ignored",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 4),
				lockOK(1, "x", "b", 20, 30, 0),
				unlockOK(0, "x", "a", 40, 50, true),
				read(1, "x", 60, 70, ""),
			},
		},
		{
			name: "failed locks are ignored",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 5),
				{Client: 1, Kind: KindLock, Name: "y", Owner: "b", Call: 20, Return: 30, Status: StatusFailed, Token: 3},
			},
		},
		{
			name: "smaller token on another lock",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 5),
				lockOK(1, "y", "b", 20, 30, 3),
			},
			want: [][2]int{{0, 1}},
		},
		{
			name: "same retry without the indeterminate op",
			ops: []Op{
				lockOK(1, "y", "b", 10, 20, 5),
				lockOK(0, "x", "a", 30, 40, 3),
			},
			want: [][2]int{{0, 1}},
		},
		{
			name: "token reused by another owner",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 5),
				unlockOK(0, "x", "a", 20, 30, true),
				lockOK(1, "x", "b", 40, 50, 5),
			},
			want: [][2]int{{0, 2}},
		},
		{
			name: "token reused on another lock, concurrently",
			ops: []Op{
				lockOK(0, "x", "a", 0, 50, 5),
				lockOK(1, "y", "b", 10, 60, 5),
			},
			want: [][2]int{{0, 1}},
		},
		{
			name: "non-positive token",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, -1),
			},
			want: [][2]int{{0, 0}},
		},
		{
			name: "one violation per offending grant",
			ops: []Op{
				lockOK(0, "x", "a", 0, 10, 7),
				lockOK(1, "y", "b", 5, 15, 9),
				lockOK(2, "z", "c", 20, 30, 8), // 9 completed before: violation against 9
				lockOK(3, "w", "d", 40, 50, 10),
			},
			want: [][2]int{{1, 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFencing(tt.ops)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("good history rejected: %v", err)
				}
				return
			}
			var ferr *FencingError
			if !errors.As(err, &ferr) || !errors.Is(err, ErrFencing) {
				t.Fatalf("err = %v, want *FencingError", err)
			}
			if len(ferr.Violations) != len(tt.want) {
				t.Fatalf("violations = %v, want %d", ferr.Violations, len(tt.want))
			}
			for i, w := range tt.want {
				v := ferr.Violations[i]
				if !reflect.DeepEqual(v.Earlier, tt.ops[w[0]]) || !reflect.DeepEqual(v.Later, tt.ops[w[1]]) {
					t.Errorf("violation %d = %v, want earlier %v, later %v", i, v, tt.ops[w[0]], tt.ops[w[1]])
				}
				if !strings.Contains(err.Error(), tt.ops[w[1]].String()) {
					t.Errorf("error does not name the later op: %v", err)
				}
			}
			t.Log(err)
		})
	}
}
