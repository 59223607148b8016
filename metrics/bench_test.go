package metrics

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockd/lockd/server"
	"github.com/redis/go-redis/v9"
)

// BenchmarkCommandObserver measures what the metrics add to each client
// command: Commands.Command from parallel goroutines.
func BenchmarkCommandObserver(b *testing.B) {
	c := New().Commands()
	lock := 0
	for i, name := range server.CommandNames() {
		if name == "lock" {
			lock = i
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Command(lock, server.ResultOK, 150*time.Microsecond)
		}
	})
}

// BenchmarkLockUnlockObserved is server's BenchmarkLockUnlock (fsync off:
// the disk's noise hides less) without and with the command observer:
// parallel go-redis clients LOCK and UNLOCK their own names on one node.
func BenchmarkLockUnlockObserved(b *testing.B) {
	for _, observed := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", observed), func(b *testing.B) {
			n := startNode(b, func(c *server.Config) {
				c.Node.NoFsync = true
				if !observed {
					c.Observer = nil
				}
			})
			rdb := redis.NewClient(&redis.Options{Addr: n.srv.Addr().String(), PoolSize: 64})
			b.Cleanup(func() { rdb.Close() })
			ctx := context.Background()
			var workers atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				owner := fmt.Sprintf("owner-%d", workers.Add(1))
				for i := 0; pb.Next(); i++ {
					name := fmt.Sprintf("%s-lock-%d", owner, i%64)
					if err := rdb.Do(ctx, "LOCK", name, owner, "PX", 30000).Err(); err != nil {
						b.Error(err)
						return
					}
					if err := rdb.Do(ctx, "UNLOCK", name, owner).Err(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
