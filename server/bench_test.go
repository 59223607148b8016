package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkLockUnlock measures the RESP command path end to end: parallel
// go-redis clients each LOCK and UNLOCK their own names on one node (every
// LOCK and UNLOCK goes through the raft log, fsynced by default).
func BenchmarkLockUnlock(b *testing.B) {
	for _, fsync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", fsync), func(b *testing.B) {
			srv := startServer(b, func(c *Config) { c.Node.NoFsync = !fsync })
			rdb := newRedis(b, srv, func(o *redis.Options) { o.PoolSize = 64 })
			ctx := context.Background()
			if err := rdb.Ping(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			var workers atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				owner := fmt.Sprintf("owner-%d", workers.Add(1))
				for i := 0; pb.Next(); i++ {
					name := fmt.Sprintf("%s-lock-%d", owner, i%64)
					tok, err := rdb.Do(ctx, "LOCK", name, owner, "PX", 30000).Int64()
					if err != nil || tok <= 0 {
						b.Errorf("LOCK %s: %d, %v", name, tok, err)
						return
					}
					if n, err := rdb.Do(ctx, "UNLOCK", name, owner).Int64(); err != nil || n != 1 {
						b.Errorf("UNLOCK %s: %d, %v", name, n, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkPipelinedLockUnlock is one go-redis client pipelining 64 LOCKs of
// distinct names, then their 64 UNLOCKs; one op is one LOCK and its UNLOCK.
func BenchmarkPipelinedLockUnlock(b *testing.B) {
	srv := startServer(b)
	rdb := newRedis(b, srv)
	ctx := context.Background()
	const depth = 64
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += depth {
		n := min(depth, b.N-done)
		for _, op := range []string{"LOCK", "UNLOCK"} {
			pipe := rdb.Pipeline()
			cmds := make([]*redis.Cmd, n)
			for i := range cmds {
				cmds[i] = pipe.Do(ctx, op, fmt.Sprintf("pipelined-%d", i), "owner")
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
			for i, c := range cmds {
				if v, err := c.Int64(); err != nil || v <= 0 {
					b.Fatalf("%s pipelined-%d: %d, %v", op, i, v, err)
				}
			}
		}
	}
}

// BenchmarkLockWaitUnlock is BenchmarkLockUnlock's fsync=false with LOCK ...
// WAIT on free names: each LOCK is granted at once, and pays for the watch
// of its connection (a goroutine, a read-ahead buffer, three deadlines).
func BenchmarkLockWaitUnlock(b *testing.B) {
	srv := startServer(b, func(c *Config) { c.Node.NoFsync = true })
	rdb := newRedis(b, srv, func(o *redis.Options) { o.PoolSize = 64 })
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	var workers atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		owner := fmt.Sprintf("owner-%d", workers.Add(1))
		for i := 0; pb.Next(); i++ {
			name := fmt.Sprintf("%s-lock-%d", owner, i%64)
			tok, err := rdb.Do(ctx, "LOCK", name, owner, "PX", 30000, "WAIT", 1000).Int64()
			if err != nil || tok <= 0 {
				b.Errorf("LOCK %s ... WAIT: %d, %v", name, tok, err)
				return
			}
			if n, err := rdb.Do(ctx, "UNLOCK", name, owner).Int64(); err != nil || n != 1 {
				b.Errorf("UNLOCK %s: %d, %v", name, n, err)
				return
			}
		}
	})
}

// BenchmarkSetNXDelIfEq is BenchmarkLockUnlock's fsync=false as the Redis
// lock libraries send it: SET name token NX PX to take, DELIFEQ to release.
func BenchmarkSetNXDelIfEq(b *testing.B) {
	srv := startServer(b, func(c *Config) { c.Node.NoFsync = true })
	rdb := newRedis(b, srv, func(o *redis.Options) { o.PoolSize = 64 })
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	var workers atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		owner := fmt.Sprintf("owner-%d", workers.Add(1))
		for i := 0; pb.Next(); i++ {
			name := fmt.Sprintf("%s-lock-%d", owner, i%64)
			if ok, err := rdb.SetNX(ctx, name, owner, 30*time.Second).Result(); err != nil || !ok {
				b.Errorf("SET %s NX: %v, %v", name, ok, err)
				return
			}
			if n, err := rdb.Do(ctx, "DELIFEQ", name, owner).Int64(); err != nil || n != 1 {
				b.Errorf("DELIFEQ %s: %d, %v", name, n, err)
				return
			}
		}
	})
}

// BenchmarkReleaseScript takes a lock with SET NX PX and releases it with a
// compare-and-delete script by EVALSHA, fsync off: once the one the lock
// libraries send (a fast path: the table's own conditional delete), once
// another that does the same in the interpreter (run on the leader, its
// effects replicated).
func BenchmarkReleaseScript(b *testing.B) {
	for _, tc := range []struct{ name, body string }{
		{"fast path", casRelease},
		{"interpreter", `local v = redis.call('GET', KEYS[1]) if v ~= ARGV[1] then return 0 end redis.call('DEL', KEYS[1]) return 1`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := startServer(b, func(c *Config) { c.Node.NoFsync = true })
			rdb := newRedis(b, srv, func(o *redis.Options) { o.PoolSize = 64 })
			ctx := context.Background()
			release := redis.NewScript(tc.body)
			if err := release.Load(ctx, rdb).Err(); err != nil {
				b.Fatal(err)
			}
			var workers atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				owner := fmt.Sprintf("owner-%d", workers.Add(1))
				for i := 0; pb.Next(); i++ {
					name := fmt.Sprintf("%s-lock-%d", owner, i%64)
					if ok, err := rdb.SetNX(ctx, name, owner, 30*time.Second).Result(); err != nil || !ok {
						b.Errorf("SET %s NX: %v, %v", name, ok, err)
						return
					}
					if n, err := release.EvalSha(ctx, rdb, []string{name}, owner).Int64(); err != nil || n != 1 {
						b.Errorf("release %s: %d, %v", name, n, err)
						return
					}
				}
			})
		})
	}
}
