package lock

import "testing"

// bucketOf returns the index of the Histogram bucket that counts ms.
func bucketOf(ms int64) int {
	for i, b := range DurationBounds {
		if ms <= b {
			return i
		}
	}
	return len(DurationBounds)
}

// histogramOf returns a Histogram holding the observations ms.
func histogramOf(ms ...int64) Histogram {
	var h Histogram
	for _, m := range ms {
		h.Buckets[bucketOf(m)]++
		h.Count++
		h.SumMs += m
	}
	return h
}

func TestStatsCountWhatApplyDecided(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		want  Stats
	}{
		{
			name: "a grant, a refusal, a release after 40ms",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 10, lockCmd(2, "a", "y", 0)).returns(res(2, 0)),
				at(1, 40, unlockCmd(3, "a", "x")).returns(res(3, 1)),
			},
			want: Stats{Grants: 1, Refusals: 1, Hold: histogramOf(40)},
		},
		{
			name: "a lease runs out",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 100)).returns(res(1, 1)),
				at(1, 100, tickCmd()).returns(),
			},
			want: Stats{Grants: 1, Expiries: 1, Hold: histogramOf(100)},
		},
		{
			name: "a waiter is granted after 30ms, another gives up",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 10, waitCmd(2, "a", "y", 0, 1000)).returns(res(2, Queued)),
				at(1, 20, waitCmd(4, "a", "z", 0, 5)).returns(res(4, Queued)),
				at(1, 25, tickCmd()).returns(res(4, 0)),
				at(1, 40, unlockCmd(5, "a", "x")).returns(res(5, 1), res(2, 2)),
			},
			want: Stats{Grants: 2, WaitTimeouts: 1, Wait: histogramOf(30), Hold: histogramOf(40)},
		},
		{
			name: "a retried LOCK is recalled, not counted again",
			steps: []step{
				at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
				at(1, 5, lockCmd(1, "a", "x", 0)).returns(res(1, 1)),
			},
			want: Stats{Grants: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable()
			run(t, tab, tt.steps...)
			if got := tab.Stats(); got != tt.want {
				t.Fatalf("Stats() = %+v\nwant       %+v", got, tt.want)
			}
		})
	}
}

func TestStatsDoNotObserveHoldsRestoredFromASnapshot(t *testing.T) {
	src := NewTable()
	run(t, src, at(1, 0, lockCmd(1, "a", "x", 0)).returns(res(1, 1)))
	dst := NewTable()
	if err := dst.Restore(src.View().Encode()); err != nil {
		t.Fatal(err)
	}
	run(t, dst, at(1, 50, unlockCmd(2, "a", "x")).returns(res(2, 1)))
	if got := dst.Stats(); got != (Stats{}) {
		t.Fatalf("Stats() = %+v after releasing a restored lock; want nothing observed (its start is unknown)", got)
	}
}
