package lock

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// scenario is a sequence of entries and the lock map and logical time they
// must leave behind.
type scenario struct {
	name  string
	steps []step
	locks map[string]Info
	now   int64
}

func runScenarios(t *testing.T, scenarios []scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			tab := NewTable()
			run(t, tab, sc.steps...)
			wantState(t, tab, sc.locks)
			wantNow(t, tab, sc.now)
		})
	}
}

func TestApplyLock(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name:  "a free lock is granted with token 1 in a new table",
			steps: []step{at(1, 1000, lockCmd(1, "a", "x", 0)).returns(res(1, 1))},
			locks: map[string]Info{"a": {Owner: "x", Token: 1}},
		},
		{
			name: "a free lock with a lease gets deadline now+ttl",
			steps: []step{
				at(1, 1000),
				at(1, 1250, lockCmd(1, "a", "x", 30_000)).returns(res(1, 1)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 30_250}},
			now:   250,
		},
		{
			name: "each new grant gets the previous fence plus one, across all names",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0), lockCmd(2, "b", "y", 100), lockCmd(3, "c", "x", 0)).
					returns(res(1, 1), res(2, 2), res(3, 3)),
				at(1, 10, lockCmd(4, "d", "z", 0)).returns(res(4, 4)),
				at(1, 20, unlockCmd(5, "a", "x"), lockCmd(6, "a", "y", 0)).returns(res(5, 1), res(6, 5)),
			},
			locks: map[string]Info{
				"a": {Owner: "y", Token: 5},
				"b": {Owner: "y", Token: 2, Deadline: 100},
				"c": {Owner: "x", Token: 3},
				"d": {Owner: "z", Token: 4},
			},
			now: 20,
		},
		{
			name: "a grant without an ID still raises the fence",
			steps: []step{
				at(1, 0, lockCmd(0, "a", "x", 0)),
				at(1, 0, lockCmd(1, "b", "x", 0)).returns(res(1, 2)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1}, "b": {Owner: "x", Token: 2}},
		},
		{
			name: "the fence survives a release of every lock",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0), unlockCmd(2, "a", "x")).returns(res(1, 1), res(2, 1)),
				at(1, 5, lockCmd(3, "a", "x", 0)).returns(res(3, 2)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 2}},
			now:   5,
		},
		{
			name: "a re-grant to the holder keeps the token and resets the lease to the new ttl",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 500, lockCmd(2, "a", "x", 2000)).returns(res(2, 1)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 2500}},
			now:   500,
		},
		{
			name: "a re-grant may shorten the lease",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 10_000)).returns(res(1, 1)),
				at(1, 500, lockCmd(2, "a", "x", 100)).returns(res(2, 1)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 600}},
			now:   500,
		},
		{
			name: "a re-grant without PX takes the lease away",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 500, lockCmd(2, "a", "x", 0)).returns(res(2, 1)),
				at(1, 100_000, tickCmd()),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1}},
			now:   100_000,
		},
		{
			name: "a re-grant with PX gives a lock without a lease one",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 100, lockCmd(2, "a", "x", 1000)).returns(res(2, 1)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 1100}},
			now:   100,
		},
		{
			name: "lease, no lease and lease again keeps one token and the last lease",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 100, lockCmd(2, "a", "x", 0)).returns(res(2, 1)),
				at(1, 200, lockCmd(3, "a", "x", 5000)).returns(res(3, 1)),
				at(1, 1100, tickCmd()), // past the first lease
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 5200}},
			now:   1100,
		},
		{
			name: "a re-grant in the same batch as the grant returns the same token",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 100), lockCmd(2, "a", "x", 0)).returns(res(1, 1), res(2, 1)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1}},
		},
		{
			name: "a held lock is refused to another owner with value 0 and nothing changes",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 10, lockCmd(2, "a", "y", 0), lockCmd(3, "a", "y", 50_000)).returns(res(2, 0), res(3, 0)),
				at(1, 20, lockCmd(4, "b", "y", 0)).returns(res(4, 2)),
			},
			locks: map[string]Info{
				"a": {Owner: "x", Token: 1, Deadline: 1000},
				"b": {Owner: "y", Token: 2},
			},
			now: 20,
		},
		{
			name: "names and owners are compared exactly",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0), lockCmd(2, "A", "x", 0), lockCmd(3, "a", "X", 0), lockCmd(4, "a ", "x", 0)).
					returns(res(1, 1), res(2, 2), res(3, 0), res(4, 3)),
			},
			locks: map[string]Info{
				"a":  {Owner: "x", Token: 1},
				"A":  {Owner: "x", Token: 2},
				"a ": {Owner: "x", Token: 3},
			},
		},
	})
}

func TestApplyUnlock(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name: "the holder releases: 1, and the lock is gone",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 10, unlockCmd(2, "a", "x")).returns(res(2, 1)),
			},
			locks: map[string]Info{},
			now:   10,
		},
		{
			name: "another owner cannot release: 0, and the lock stays",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 10, unlockCmd(2, "a", "y")).returns(res(2, 0)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 1000}},
			now:   10,
		},
		{
			name:  "a free lock cannot be released: 0",
			steps: []step{at(1, 0, unlockCmd(1, "a", "x")).returns(res(1, 0))},
			locks: map[string]Info{},
		},
		{
			name: "a second release by the former holder: 0",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0), unlockCmd(2, "a", "x"), unlockCmd(3, "a", "x")).
					returns(res(1, 1), res(2, 1), res(3, 0)),
			},
			locks: map[string]Info{},
		},
		{
			name: "a release touches only its own name",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0), lockCmd(2, "b", "x", 0), unlockCmd(3, "a", "x")).
					returns(res(1, 1), res(2, 2), res(3, 1)),
			},
			locks: map[string]Info{"b": {Owner: "x", Token: 2}},
		},
		{
			name: "a lock whose lease ran out cannot be released by its former holder",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 100)).returns(res(1, 1)),
				at(1, 100, unlockCmd(2, "a", "x")).returns(res(2, 0)),
			},
			locks: map[string]Info{},
			now:   100,
		},
	})
}

func TestApplyRenew(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name: "the holder renews: 1, and the deadline is now+ttl",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 700, renewCmd(2, "a", "x", 1000)).returns(res(2, 1)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 1700}},
			now:   700,
		},
		{
			name: "a renewal may shorten the lease",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 60_000)).returns(res(1, 1)),
				at(1, 700, renewCmd(2, "a", "x", 10)).returns(res(2, 1)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 710}},
			now:   700,
		},
		{
			name: "a renewal gives a lock without a lease one",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 700, renewCmd(2, "a", "x", 100)).returns(res(2, 1)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 800}},
			now:   700,
		},
		{
			name: "another owner cannot renew: 0, and the lease is unchanged",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 700, renewCmd(2, "a", "y", 5000)).returns(res(2, 0)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 1000}},
			now:   700,
		},
		{
			name:  "a free lock is never taken by a renewal: 0",
			steps: []step{at(1, 0, renewCmd(1, "a", "x", 1000)).returns(res(1, 0))},
			locks: map[string]Info{},
		},
		{
			name: "a renewal with ttl 0: 0, and the lease is unchanged",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 700, renewCmd(2, "a", "x", 0)).returns(res(2, 0)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 1000}},
			now:   700,
		},
		{
			name: "a renewal with ttl 0 of a lock without a lease: 0, and it stays without one",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 700, renewCmd(2, "a", "x", 0)).returns(res(2, 0)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1}},
			now:   700,
		},
		{
			name: "a renewal with a negative ttl: 0, and the lease is unchanged",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 700, renewCmd(2, "a", "x", -5)).returns(res(2, 0)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 1000}},
			now:   700,
		},
		{
			name: "a lease that ran out cannot be renewed",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 1000, renewCmd(2, "a", "x", 1000)).returns(res(2, 0)),
			},
			locks: map[string]Info{},
			now:   1000,
		},
	})
}

func TestApplyTick(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name: "a tick returns nothing and advances the clock",
			steps: []step{
				at(1, 1000, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 4000, tickCmd()),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1}},
			now:   3000,
		},
		{
			name: "a tick changes no lock and no fence",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 5000)).returns(res(1, 1)),
				at(1, 10, tickCmd(), tickCmd()),
				at(1, 20, lockCmd(2, "b", "x", 0)).returns(res(2, 2)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 5000}, "b": {Owner: "x", Token: 2}},
			now:   20,
		},
		{
			name:  "an empty batch advances the clock like a tick",
			steps: []step{at(1, 1000), at(1, 1500)},
			locks: map[string]Info{},
			now:   500,
		},
		{
			name: "an unknown op returns 0 and changes nothing",
			steps: []step{
				at(1, 0, Command{Op: 0, ID: 1, Name: "a", Owner: "x", TTL: 5}, Command{Op: 99, ID: 2, Name: "a", Owner: "x"}).
					returns(res(1, 0), res(2, 0)),
			},
			locks: map[string]Info{},
		},
	})
}

func TestClock(t *testing.T) {
	type clock struct {
		term  uint64
		stamp int64
		now   int64
	}
	tests := []struct {
		name  string
		steps []step
		want  clock
	}{
		{
			name:  "a new table starts at zero",
			steps: nil,
			want:  clock{},
		},
		{
			name:  "the first batch of the first term sets the reference and leaves Now at 0",
			steps: []step{at(1, 1_700_000_000_000)},
			want:  clock{1, 1_700_000_000_000, 0},
		},
		{
			name:  "Now advances by the stamp differences within a term",
			steps: []step{at(1, 1000), at(1, 1300), at(1, 1300), at(1, 2000)},
			want:  clock{1, 2000, 1000},
		},
		{
			name:  "a stamp going backwards does not move Now back",
			steps: []step{at(1, 1000), at(1, 1500), at(1, 1200)},
			want:  clock{1, 1500, 500},
		},
		{
			name:  "after a stamp went backwards Now counts again from the highest stamp",
			steps: []step{at(1, 1000), at(1, 1500), at(1, 1200), at(1, 1600)},
			want:  clock{1, 1600, 600},
		},
		{
			name:  "negative stamps are stamps like any other",
			steps: []step{at(1, -5000), at(1, -4000)},
			want:  clock{1, -4000, 1000},
		},
		{
			name:  "a new term leaves Now unchanged when the new leader's clock is far behind",
			steps: []step{at(1, 1_000_000), at(1, 1_003_000), at(2, 5)},
			want:  clock{2, 5, 3000},
		},
		{
			name:  "a new term leaves Now unchanged when the new leader's clock is far ahead",
			steps: []step{at(1, 1_000_000), at(1, 1_003_000), at(2, 1<<50)},
			want:  clock{2, 1 << 50, 3000},
		},
		{
			name:  "within the new term Now counts from the new leader's first stamp",
			steps: []step{at(1, 1_000_000), at(1, 1_003_000), at(2, 5), at(2, 105)},
			want:  clock{2, 105, 3100},
		},
		{
			name:  "a skipped term counts zero as well",
			steps: []step{at(1, 0), at(1, 100), at(7, 99_999), at(7, 100_049)},
			want:  clock{7, 100_049, 150},
		},
		{
			name:  "a batch stamped for another term than its entry's is ignored",
			steps: []step{at(1, 0), at(1, 100), at(1, 999_999).inEntry(2)},
			want:  clock{1, 100, 100},
		},
		{
			name:  "a batch stamped for a newer term than its entry's is ignored",
			steps: []step{at(1, 0), at(1, 100), at(2, 999_999).inEntry(1)},
			want:  clock{1, 100, 100},
		},
		{
			name:  "a batch of a lower term than the table's is ignored",
			steps: []step{at(3, 0), at(3, 100), at(2, 999_999)},
			want:  clock{3, 100, 100},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable()
			run(t, tab, tt.steps...)
			term, stamp, now := tab.Clock()
			if got := (clock{term, stamp, now}); got != tt.want {
				t.Errorf("Clock() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestIgnoredBatches(t *testing.T) {
	// Each case starts from a table holding "a" for x with a lease up to
	// 1000 (token 1) and ID 1 remembered, at term 2, stamp 0.
	tests := []struct {
		name string
		s    step
	}{
		{"a batch stamped for an older term than its entry's", at(1, 5000, lockCmd(10, "b", "y", 0), unlockCmd(11, "a", "x"), lockCmd(1, "c", "x", 0)).inEntry(2)},
		{"a batch stamped for a newer term than its entry's", at(3, 5000, lockCmd(10, "b", "y", 0), unlockCmd(11, "a", "x"), lockCmd(1, "c", "x", 0)).inEntry(2)},
		{"a batch of an older term than the table's", at(1, 5000, lockCmd(10, "b", "y", 0), unlockCmd(11, "a", "x"), lockCmd(1, "c", "x", 0))},
	}
	for _, tt := range tests {
		t.Run(tt.name+" has no effect and no result", func(t *testing.T) {
			tab := NewTable()
			run(t, tab, at(2, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)))
			before := tab.Snapshot()
			dst := []Result{res(99, 99)}
			got := tab.Apply(tt.s.entry(), tt.s.batch(), dst)
			if !slices.Equal(got, dst) {
				t.Errorf("Apply returned %v, want dst unchanged %v", got, dst)
			}
			if after := tab.Snapshot(); string(after) != string(before) {
				t.Errorf("the table changed")
			}
			wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 1000}})
			// The ignored requests were not remembered: a retry acts.
			run(t, tab, at(2, 10, lockCmd(10, "b", "y", 0), unlockCmd(11, "a", "x")).returns(res(10, 2), res(11, 1)))
		})
	}
}

func TestLeaseAcrossTerms(t *testing.T) {
	// x takes "a" for 10s at term 1; 4s pass; a new leader takes over.
	// Whatever its clock says, the lease has 6s left from its first entry.
	first := []step{
		at(1, 1_000_000, lockCmd(1, "a", "x", 10_000)).returns(res(1, 1)),
		at(1, 1_004_000),
	}
	tests := []struct {
		name string
		base int64 // the new leader's first stamp
	}{
		{"new leader's clock far behind", 5},
		{"new leader's clock slightly behind", 999_000},
		{"new leader's clock equal", 1_004_000},
		{"new leader's clock far ahead", 1 << 45},
		{"new leader's clock negative", -1 << 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable()
			run(t, tab, first...)
			run(t, tab, at(2, tt.base, lockCmd(2, "a", "y", 0)).returns(res(2, 0)))
			run(t, tab, at(2, tt.base+5_999, lockCmd(3, "a", "y", 0)).returns(res(3, 0)))
			wantState(t, tab, map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 10_000}})
			run(t, tab, at(2, tt.base+6_000, lockCmd(4, "a", "y", 0)).returns(res(4, 2)))
			wantState(t, tab, map[string]Info{"a": {Owner: "y", Token: 2}})
		})
	}
}

func TestExpiry(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name: "a lease that ran out is free for the next LOCK in the batch that advances the clock",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 1000, lockCmd(2, "a", "y", 0)).returns(res(2, 2)),
			},
			locks: map[string]Info{"a": {Owner: "y", Token: 2}},
			now:   1000,
		},
		{
			name: "a lease still runs 1ms before its deadline",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 999, lockCmd(2, "a", "y", 0)).returns(res(2, 0)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 1000}},
			now:   999,
		},
		{
			name: "a lease is gone past its deadline",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 50_000, lockCmd(2, "a", "y", 0)).returns(res(2, 2)),
			},
			locks: map[string]Info{"a": {Owner: "y", Token: 2}},
			now:   50_000,
		},
		{
			name: "the former holder taking it again after expiry gets a new, larger token",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000), lockCmd(2, "b", "x", 0)).returns(res(1, 1), res(2, 2)),
				at(1, 1000, lockCmd(3, "a", "x", 1000)).returns(res(3, 3)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 3, Deadline: 2000}, "b": {Owner: "x", Token: 2}},
			now:   1000,
		},
		{
			name: "OWNER no longer reports a lease after a tick past its deadline",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 1001, tickCmd()),
			},
			locks: map[string]Info{},
			now:   1001,
		},
		{
			name: "a lock without a lease never expires",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, math.MaxInt64, tickCmd()),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1}},
			now:   math.MaxInt64,
		},
		{
			name: "a re-granted lock does not expire at its old deadline",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 500, lockCmd(2, "a", "x", 1000)).returns(res(2, 1)),
				at(1, 1000, lockCmd(3, "a", "y", 0)).returns(res(3, 0)),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 1500}},
			now:   1000,
		},
		{
			name: "a re-granted lock expires at its new deadline",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 500, lockCmd(2, "a", "x", 1000)).returns(res(2, 1)),
				at(1, 1000, tickCmd()),
				at(1, 1500, lockCmd(3, "a", "y", 0)).returns(res(3, 2)),
			},
			locks: map[string]Info{"a": {Owner: "y", Token: 2}},
			now:   1500,
		},
		{
			name: "a renewed lock does not expire at its old deadline",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 900, renewCmd(2, "a", "x", 1000)).returns(res(2, 1)),
				at(1, 1000, tickCmd()),
				at(1, 1899, tickCmd()),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 1900}},
			now:   1899,
		},
		{
			name: "a renewed lock expires at its new deadline",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 900, renewCmd(2, "a", "x", 1000)).returns(res(2, 1)),
				at(1, 1900, tickCmd()),
			},
			locks: map[string]Info{},
			now:   1900,
		},
		{
			name: "a lease shortened by a renewal expires at the shorter deadline",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 60_000)).returns(res(1, 1)),
				at(1, 100, renewCmd(2, "a", "x", 100)).returns(res(2, 1)),
				at(1, 200, tickCmd()),
			},
			locks: map[string]Info{},
			now:   200,
		},
		{
			name: "a lease taken away by a re-grant does not expire at its old deadline",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 10, lockCmd(2, "a", "x", 0)).returns(res(2, 1)),
				at(1, 5000, tickCmd()),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1}},
			now:   5000,
		},
		{
			name: "a released-then-retaken lock is not expired by the first grant's deadline",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 100, unlockCmd(2, "a", "x")).returns(res(2, 1)),
				at(1, 200, lockCmd(3, "a", "y", 5000)).returns(res(3, 2)),
				at(1, 1000, tickCmd()),
			},
			locks: map[string]Info{"a": {Owner: "y", Token: 2, Deadline: 5200}},
			now:   1000,
		},
		{
			name: "a lock retaken by the same owner without a lease is not expired by the first grant's deadline",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 100, unlockCmd(2, "a", "x"), lockCmd(3, "a", "x", 0)).returns(res(2, 1), res(3, 2)),
				at(1, 1000, tickCmd()),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 2}},
			now:   1000,
		},
		{
			name: "a lock retaken with the first grant's deadline expires at it",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(1, 500, unlockCmd(2, "a", "x"), lockCmd(3, "a", "x", 500)).returns(res(2, 1), res(3, 2)),
				at(1, 1000, lockCmd(4, "a", "y", 0)).returns(res(4, 3)),
			},
			locks: map[string]Info{"a": {Owner: "y", Token: 3}},
			now:   1000,
		},
		{
			name: "several leases expiring at once are all freed, others stay",
			steps: []step{
				at(1, 0,
					lockCmd(1, "a", "x", 100),
					lockCmd(2, "b", "x", 300),
					lockCmd(3, "c", "y", 200),
					lockCmd(4, "d", "y", 0),
					lockCmd(5, "e", "z", 301),
					lockCmd(6, "f", "z", 300),
				).returns(res(1, 1), res(2, 2), res(3, 3), res(4, 4), res(5, 5), res(6, 6)),
				at(1, 300, lockCmd(7, "b", "z", 0), lockCmd(8, "e", "x", 0)).returns(res(7, 7), res(8, 0)),
			},
			locks: map[string]Info{
				"b": {Owner: "z", Token: 7},
				"d": {Owner: "y", Token: 4},
				"e": {Owner: "z", Token: 5, Deadline: 301},
			},
			now: 300,
		},
		{
			name: "leases expire only by the clock of the batches of the current term",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
				at(2, 1<<40),
				at(3, 0),
				at(3, 999),
			},
			locks: map[string]Info{"a": {Owner: "x", Token: 1, Deadline: 1000}},
			now:   999,
		},
	})
}

func TestNextDeadline(t *testing.T) {
	tab := NewTable()
	if d, ok := tab.NextDeadline(); ok {
		t.Fatalf("NextDeadline() on a new table = %d, true", d)
	}
	run(t, tab, at(1, 0, lockCmd(1, "a", "x", 500), lockCmd(2, "b", "x", 200), lockCmd(3, "c", "x", 0)).
		returns(res(1, 1), res(2, 2), res(3, 3)))
	if d, ok := tab.NextDeadline(); !ok || d != 200 {
		t.Errorf("NextDeadline() = %d, %v, want 200, true", d, ok)
	}
	run(t, tab, at(1, 200))
	if d, ok := tab.NextDeadline(); !ok || d != 500 {
		t.Errorf("after the first expiry NextDeadline() = %d, %v, want 500, true", d, ok)
	}
	run(t, tab, at(1, 10_000))
	// No lease is left, but request IDs remembered at 0 are, until the
	// dedup window has passed: a tick then lets an idle table forget them.
	if d, ok := tab.NextDeadline(); !ok || d != DedupWindow+1 {
		t.Errorf("after every expiry NextDeadline() = %d, %v; want %d, the end of the dedup window", d, ok, DedupWindow+1)
	}
	run(t, tab, at(1, DedupWindow+1))
	if d, ok := tab.NextDeadline(); ok {
		t.Errorf("after every ID was forgotten NextDeadline() = %d, true", d)
	}
}

// TestHugeTTL: a lease is a number of milliseconds from now; however large,
// it must not end before it has run. (Deadlines are int64 logical ms.)
func TestHugeTTL(t *testing.T) {
	tests := []struct {
		name string
		ttl  int64
	}{
		{"ttl of 100 years", 100 * 365 * 24 * 3600 * 1000},
		{"ttl of MaxInt64/2", math.MaxInt64 / 2},
		{"ttl of MaxInt64", math.MaxInt64},
	}
	for _, tt := range tests {
		for _, op := range []Op{OpLock, OpRenew} {
			t.Run(tt.name+" by "+op.String()+" is still held an hour later", func(t *testing.T) {
				tab := NewTable()
				run(t, tab,
					at(1, 0, lockCmd(1, "a", "x", 1000)).returns(res(1, 1)),
					at(1, 10, Command{Op: op, ID: 2, Name: "a", Owner: "x", TTL: tt.ttl}).returns(res(2, 1)),
					at(1, 10+3600_000, lockCmd(3, "a", "y", 0)).returns(res(3, 0)),
				)
				if info, ok := tab.Get("a"); !ok || info.Owner != "x" {
					t.Errorf("Get(a) = %+v, %v; want held by x", info, ok)
				} else if info.Deadline <= 10 {
					t.Errorf("deadline %d is not after the time of the grant (10)", info.Deadline)
				}
			})
		}
	}
}

// TestMatchesModel applies random logs to the table and to a naive model
// of the contract and compares every result and the whole state after
// every entry.
func TestMatchesModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0x10cd))
			tab, m := NewTable(), newModel()
			for i, e := range randomLog(r, 2000) {
				got := tab.Apply(e.term, &e.batch, nil)
				want := m.apply(e.term, &e.batch)
				if !slices.Equal(got, want) {
					t.Fatalf("entry %d %v: results %v, model says %v", i, e, got, want)
				}
				sameAsModel(t, tab, m)
				if t.Failed() {
					t.Fatalf("entry %d %v: state differs from the model", i, e)
				}
			}
		})
	}
}

func TestApplyAppendsToDst(t *testing.T) {
	tab := NewTable()
	dst := make([]Result, 1, 8)
	dst[0] = res(42, 42)
	got := tab.Apply(1, &Batch{Term: 1, Cmds: []Command{lockCmd(1, "a", "x", 0), tickCmd(), unlockCmd(2, "a", "y")}}, dst)
	want := []Result{res(42, 42), res(1, 1), res(2, 0)}
	if !slices.Equal(got, want) {
		t.Errorf("Apply = %v, want %v", got, want)
	}
}

func BenchmarkApply(b *testing.B) {
	const n = 64
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("orders-%d", i)
	}
	lock, unlock := make([]Command, n), make([]Command, n)
	for i, name := range names {
		lock[i] = lockCmd(0, name, "worker-7f1c", 30_000)
		unlock[i] = unlockCmd(0, name, "worker-7f1c")
	}
	tab := NewTable()
	batch := Batch{Term: 1, Stamp: 1_700_000_000_000}
	var dst []Result
	id := uint64(0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Even batches take the 64 locks, odd ones release them; 1s of
		// leader time between batches keeps the dedup window at 60 batches.
		batch.Cmds = lock
		if i%2 == 1 {
			batch.Cmds = unlock
		}
		for j := range batch.Cmds {
			id++
			batch.Cmds[j].ID = id
		}
		batch.Stamp += 1000
		dst = tab.Apply(1, &batch, dst[:0])
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/cmd")
}

// TestClockNeverGoesBack: however far apart two stamps of a term are, Now
// does not move backwards (and so no lease deadline falls behind it).
func TestClockNeverGoesBack(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"from the smallest stamp to the largest", []step{at(1, math.MinInt64), at(1, math.MaxInt64)}},
		{"from a negative stamp past MaxInt64 away", []step{at(1, -1<<62), at(1, 1<<62)}},
		{"Now at its largest, then more time in the next term", []step{at(1, 0), at(1, math.MaxInt64), at(2, 0), at(2, 10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable()
			prev := int64(0)
			for _, s := range tt.steps {
				run(t, tab, s)
				if _, _, now := tab.Clock(); now < prev {
					t.Fatalf("term %d stamp %d moved Now back from %d to %d", s.term, s.stamp, prev, now)
				} else {
					prev = now
				}
			}
		})
	}
}

func TestLeaseHeapStaysSmallUnderLockUnlock(t *testing.T) {
	tab := NewTable()
	stamp := int64(0)
	for i := range 10_000 {
		name := fmt.Sprintf("n%d", i%10)
		stamp++
		run(t, tab,
			at(1, stamp, lockCmd(0, name, "o", 30_000), renewCmd(0, name, "o", 20_000)),
			at(1, stamp, unlockCmd(0, name, "o")),
		)
		if i%10 == 0 {
			run(t, tab, at(1, stamp, lockCmd(0, "kept", "o", 30_000)))
		}
	}
	if len(tab.leases) != 1 {
		t.Fatalf("after 10,000 leased grants and releases the lease heap holds %d leases; want 1 (the lock still held)", len(tab.leases))
	}
}

// BenchmarkDecodeAndApply is what every node does with an entry of 64
// commands: decode it, then apply it (the same workload as BenchmarkApply).
func BenchmarkDecodeAndApply(b *testing.B) {
	const n = 64
	var lockData, unlockData [][]byte
	id := uint64(0)
	stamp := int64(1_700_000_000_000)
	for i := range 2 * 60 { // 60 s of 1 s apart batches: the dedup window
		batch := Batch{Term: 1}
		for j := range n {
			id++
			name := fmt.Sprintf("orders-%d", j)
			if i%2 == 0 {
				batch.Cmds = append(batch.Cmds, lockCmd(id, name, "worker-7f1c", 30_000))
			} else {
				batch.Cmds = append(batch.Cmds, unlockCmd(id, name, "worker-7f1c"))
			}
		}
		if i%2 == 0 {
			lockData = append(lockData, AppendBatch(nil, &batch))
		} else {
			unlockData = append(unlockData, AppendBatch(nil, &batch))
		}
	}
	tab := NewTable()
	var dst []Result
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Stamps and IDs are rewritten as the batches are reused, so the
		// table sees new requests 1 s apart.
		data := lockData[(i/2)%len(lockData)]
		if i%2 == 1 {
			data = unlockData[(i/2)%len(unlockData)]
		}
		batch, err := DecodeBatch(data)
		if err != nil {
			b.Fatal(err)
		}
		stamp += 1000
		batch.Stamp = stamp
		for j := range batch.Cmds {
			id++
			batch.Cmds[j].ID = id
		}
		dst = tab.Apply(1, &batch, dst[:0])
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/cmd")
}

// BenchmarkApplyLockbench applies what lockbench sends: 50 clients, each
// taking a random one of 10,000 names with a 30 s lease and releasing it,
// 64 commands to an entry 10 ms apart. Unlike BenchmarkApply, the table
// holds a few dozen locks among thousands of names that come and go.
func BenchmarkApplyLockbench(b *testing.B) {
	const clients, names, n = 50, 10_000, 64
	r := rand.New(rand.NewPCG(1, 1))
	held := make([]string, clients) // the name each client holds, or ""
	cmds := make([]Command, 1<<16)
	for i := range cmds {
		c := r.IntN(clients)
		owner := fmt.Sprint("client-", c)
		if held[c] == "" {
			held[c] = fmt.Sprint("lockbench:", r.IntN(names))
			cmds[i] = lockCmd(0, held[c], owner, 30_000)
		} else {
			cmds[i] = unlockCmd(0, held[c], owner)
			held[c] = ""
		}
	}
	tab := NewTable()
	batch := Batch{Term: 1, Stamp: 1_700_000_000_000, Cmds: make([]Command, n)}
	var dst []Result
	id, next := uint64(0), 0
	b.ReportAllocs()
	for b.Loop() {
		for j := range batch.Cmds {
			id++
			batch.Cmds[j] = cmds[next]
			batch.Cmds[j].ID = id
			next = (next + 1) % len(cmds)
		}
		batch.Stamp += 10
		dst = tab.Apply(1, &batch, dst[:0])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/cmd")
}
