package integration

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkOwnerRead measures OWNER on a three-node cluster (fsync on),
// from 8 parallel clients, in each read mode, on the leader and on a
// follower: the time per read and the servers' CPU per read (all three
// processes, from /proc, at 100 ticks a second: run with -benchtime 3s or
// more).
//
//	go test -run '^$' -bench OwnerRead -benchtime 3s ./integration/
func BenchmarkOwnerRead(b *testing.B) {
	c := startCluster(b, 3, clusterOpts{})
	lead := c.waitLeader(10*time.Second, nil)
	follower := lead%3 + 1
	ctx := context.Background()
	if _, err := lockCmd(ctx, c.client(lead), "k", "me"); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"local", "linearizable"} {
		for _, where := range []struct {
			name string
			node int
		}{{"leader", lead}, {"follower", follower}} {
			b.Run(mode+"/"+where.name, func(b *testing.B) {
				rdb := redis.NewClient(&redis.Options{
					Addr: c.nodes[where.node].client, PoolSize: 8,
					OnConnect: func(ctx context.Context, cn *redis.Conn) error {
						return cn.Do(ctx, "CLIENT", "READS", mode).Err()
					},
				})
				defer rdb.Close()
				if err := rdb.Do(ctx, "OWNER", "k").Err(); err != nil {
					b.Fatal(err)
				}
				before := c.serversCPU(b)
				b.ResetTimer()
				b.SetParallelism(4) // 4 goroutines per GOMAXPROCS: 8 on this machine
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := rdb.Do(ctx, "OWNER", "k").Err(); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(c.serversCPU(b)-before)*1e4/float64(b.N), "server-µs/op")
			})
		}
	}
}

// serversCPU sums the CPU ticks (1/100 s) the cluster's processes used.
func (c *cluster) serversCPU(tb testing.TB) int64 {
	var n int64
	for _, p := range c.nodes {
		p.mu.Lock()
		pid := p.cmd.Process.Pid
		p.mu.Unlock()
		n += cpuTicks(tb, pid)
	}
	return n
}
