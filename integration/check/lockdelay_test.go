package check

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// ms is a history time of n milliseconds.
func ms(n int64) int64 { return n * int64(time.Millisecond) }

// holdOK is LOCK name owner PX px DELAY delay, acknowledged with token.
func holdOK(c int, name, owner string, call, ret, token, px, delay int64) Op {
	op := lockOK(c, name, owner, call, ret, token)
	op.PX, op.Delay = px, delay
	return op
}

// mholdOK is MLOCK names owner PX px DELAY delay, acknowledged with tokens.
func mholdOK(c int, owner string, call, ret int64, names []string, tokens []int64, px, delay int64) Op {
	op := mlockOK(c, owner, call, ret, names, tokens)
	op.PX, op.Delay = px, delay
	return op
}

func TestCheckLockDelay(t *testing.T) {
	hold := holdOK(0, "x", "a", 0, ms(10), 1, 300, 700) // the delay ends at 1000 ms at the earliest
	tests := []struct {
		name      string
		ops       []Op
		want      LockDelaySummary
		violation []int // indices into ops of the grants inside the delay
	}{
		// Legal histories.
		{
			name: "the other owner polls until the delay ends",
			ops: []Op{
				hold,
				lockOK(1, "x", "b", ms(20), ms(30), 0),
				lockOK(1, "x", "b", ms(500), ms(510), 0),
				lockOK(1, "x", "b", ms(990), ms(1005), 2),
				read(2, "x", ms(1010), ms(1011), "b"),
			},
			want: LockDelaySummary{Holds: 1, Grants: 1, MinMargin: 5 * time.Millisecond},
		},
		{
			name: "a released hold has no delay",
			ops:  []Op{hold, unlockOK(0, "x", "a", ms(20), ms(30), true), lockOK(1, "x", "b", ms(40), ms(50), 2)},
		},
		{
			name: "a renewed hold is not judged",
			ops:  []Op{hold, lockOK(0, "x", "a", ms(200), ms(210), 1), lockOK(1, "x", "b", ms(990), ms(995), 2)},
		},
		{
			name: "a hold whose owner's later op is indeterminate is not judged",
			ops:  []Op{hold, unlockUnknown(0, "x", "a", ms(20)), lockOK(1, "x", "b", ms(40), ms(50), 2)},
		},
		{
			name: "an earlier op of the owner does not matter",
			ops: []Op{
				unlockOK(0, "x", "a", 0, ms(5), false),
				holdOK(0, "x", "a", ms(10), ms(20), 1, 300, 700),
				lockOK(1, "x", "b", ms(30), ms(1011), 2), // returned after 1010 ms
			},
			want: LockDelaySummary{Holds: 1, Grants: 1, MinMargin: time.Millisecond},
		},
		{
			name: "a grant concurrent with the hold is not judged",
			ops:  []Op{hold, lockOK(1, "x", "b", ms(5), ms(15), 2)},
			want: LockDelaySummary{Holds: 1},
		},
		{
			name: "a lease without DELAY is no hold",
			ops:  []Op{holdOK(0, "x", "a", 0, ms(10), 1, 300, 0), lockOK(1, "x", "b", ms(400), ms(410), 2)},
		},
		{
			name: "other names are not affected",
			ops:  []Op{hold, lockOK(1, "y", "b", ms(20), ms(30), 2), mlockOK(1, "b", ms(40), ms(50), []string{"y", "z"}, []int64{2, 3})},
			want: LockDelaySummary{Holds: 1},
		},
		{
			name: "failed and indeterminate grants are not judged",
			ops: []Op{
				hold,
				{Client: 1, Kind: KindLock, Name: "x", Owner: "b", Call: ms(20), Return: ms(30), Status: StatusFailed, Token: 2},
				lockUnknown(1, "x", "b", ms(40)),
			},
			want: LockDelaySummary{Holds: 1},
		},

		// Violations.
		{
			name: "LOCK granted inside the delay",
			ops: []Op{
				hold,
				lockOK(1, "x", "b", ms(20), ms(30), 0),
				lockOK(1, "x", "b", ms(900), ms(910), 2),
			},
			want:      LockDelaySummary{Holds: 1, Grants: 1, MinMargin: -90 * time.Millisecond},
			violation: []int{2},
		},
		{
			name:      "LOCK granted inside the lease",
			ops:       []Op{hold, lockOK(1, "x", "b", ms(100), ms(110), 2)},
			want:      LockDelaySummary{Holds: 1, Grants: 1, MinMargin: -890 * time.Millisecond},
			violation: []int{1},
		},
		{
			name:      "MLOCK granted inside the delay",
			ops:       []Op{hold, mlockOK(1, "b", ms(500), ms(510), []string{"y", "x"}, []int64{2, 3})},
			want:      LockDelaySummary{Holds: 1, Grants: 1, MinMargin: -490 * time.Millisecond},
			violation: []int{1},
		},
		{
			name: "MLOCK's hold delays each of its names",
			ops: []Op{
				mholdOK(0, "a", 0, ms(10), []string{"x", "y"}, []int64{1, 2}, 300, 700),
				lockOK(1, "y", "b", ms(400), ms(410), 3),
				mlockOK(1, "b", ms(1000), ms(1010), []string{"x", "y"}, []int64{4, 3}),
			},
			want:      LockDelaySummary{Holds: 2, Grants: 3, MinMargin: -590 * time.Millisecond},
			violation: []int{1},
		},
		{
			name:      "SET NX granted inside the delay",
			ops:       []Op{hold, setOK(1, "x", "b", ms(600), ms(610), true)},
			want:      LockDelaySummary{Holds: 1, Grants: 1, MinMargin: -390 * time.Millisecond},
			violation: []int{1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := make([]Op, len(tt.ops))
			copy(orig, tt.ops)
			sum, err := CheckLockDelay(tt.ops)
			if !reflect.DeepEqual(orig, tt.ops) {
				t.Fatal("ops modified")
			}
			if sum != tt.want {
				t.Errorf("summary = %+v, want %+v", sum, tt.want)
			}
			if len(tt.violation) == 0 {
				if err != nil {
					t.Fatalf("CheckLockDelay: %v", err)
				}
				return
			}
			var lerr *LockDelayError
			if !errors.As(err, &lerr) || !errors.Is(err, ErrLockDelay) {
				t.Fatalf("err = %v, want a *LockDelayError", err)
			}
			if len(lerr.Violations) != len(tt.violation) {
				t.Fatalf("violations = %v, want %d", lerr.Violations, len(tt.violation))
			}
			for i, k := range tt.violation {
				v := lerr.Violations[i]
				if !reflect.DeepEqual(v.Hold, tt.ops[0]) || !reflect.DeepEqual(v.Grant, tt.ops[k]) {
					t.Errorf("violation %d = %v, want the grant %v", i, v, tt.ops[k])
				}
				if !strings.Contains(err.Error(), tt.ops[k].String()) {
					t.Errorf("error does not name the grant: %v", err)
				}
			}
			t.Log(err)
		})
	}
}
