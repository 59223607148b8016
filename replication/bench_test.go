package replication

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lockd/lockd/lock"
)

// BenchmarkFollowerWrite measures one client's writes through a follower of
// a three-node cluster on loopback (fsync on, raft tick 100 ms), one at a
// time, and reports their latency's median and 90th percentile. A write
// that waits for something unrelated to it (a tick, a heartbeat) shows in
// p90 as tens of milliseconds: a follower that stepped its own storage
// responses only at its next round had p90 65-70 ms here against 1.1 ms.
func BenchmarkFollowerWrite(b *testing.B) {
	nodes := testCluster(b, 3, func(c *Config) { c.TickInterval = 100 * time.Millisecond })
	lead := waitLeader(b, nodes)
	f := uint64(1)
	if f == lead {
		f = 2
	}
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := nodes[f].Execute(ctx, lock.Command{Op: lock.OpLock, Name: fmt.Sprint("k", i), Owner: "o"}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds()), "p90-us")
}
