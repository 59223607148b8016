package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// cycle is one take and release of a lock by one benchmark worker; it
// reports what went wrong, or nil.
type cycle func(ctx context.Context, rdb *redis.Client, name, owner string) error

// benchCycles runs cycle from parallel go-redis clients (64 connections,
// parallelism 4), each worker with its own owner and 64 names of its own, on
// one node with fsync as given.
func benchCycles(b *testing.B, fsync bool, setup func(context.Context, *redis.Client) error, cyc cycle) {
	srv := startServer(b, func(c *Config) { c.Node.NoFsync = !fsync })
	rdb := newRedis(b, srv, func(o *redis.Options) { o.PoolSize = 64 })
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	if setup != nil {
		if err := setup(ctx, rdb); err != nil {
			b.Fatal(err)
		}
	}
	var workers atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		owner := fmt.Sprintf("owner-%d", workers.Add(1))
		for i := 0; pb.Next(); i++ {
			if err := cyc(ctx, rdb, fmt.Sprintf("%s-lock-%d", owner, i%64), owner); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// lockCycle takes name with LOCK (and the extra arguments) and releases it
// with UNLOCK.
func lockCycle(extra ...any) cycle {
	return func(ctx context.Context, rdb *redis.Client, name, owner string) error {
		args := append([]any{"LOCK", name, owner, "PX", 30000}, extra...)
		if tok, err := rdb.Do(ctx, args...).Int64(); err != nil || tok <= 0 {
			return fmt.Errorf("%v: %d, %v", args, tok, err)
		}
		if n, err := rdb.Do(ctx, "UNLOCK", name, owner).Int64(); err != nil || n != 1 {
			return fmt.Errorf("UNLOCK %s: %d, %v", name, n, err)
		}
		return nil
	}
}

// setNXCycle takes name with SET NX PX, as the Redis lock libraries do, and
// releases it with release.
func setNXCycle(release func(ctx context.Context, rdb *redis.Client, name, owner string) *redis.Cmd) cycle {
	return func(ctx context.Context, rdb *redis.Client, name, owner string) error {
		if ok, err := rdb.SetNX(ctx, name, owner, 30*time.Second).Result(); err != nil || !ok {
			return fmt.Errorf("SET %s NX: %v, %v", name, ok, err)
		}
		if n, err := release(ctx, rdb, name, owner).Int64(); err != nil || n != 1 {
			return fmt.Errorf("release %s: %d, %v", name, n, err)
		}
		return nil
	}
}

// BenchmarkLockUnlock measures the RESP command path end to end: parallel
// go-redis clients each LOCK and UNLOCK their own names on one node (every
// LOCK and UNLOCK goes through the raft log, fsynced by default).
func BenchmarkLockUnlock(b *testing.B) {
	for _, fsync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", fsync), func(b *testing.B) { benchCycles(b, fsync, nil, lockCycle()) })
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
	benchCycles(b, false, nil, lockCycle("WAIT", 1000))
}

// BenchmarkSetNXDelIfEq is BenchmarkLockUnlock's fsync=false as the Redis
// lock libraries send it: SET name token NX PX to take, DELIFEQ to release.
func BenchmarkSetNXDelIfEq(b *testing.B) {
	benchCycles(b, false, nil, setNXCycle(func(ctx context.Context, rdb *redis.Client, name, owner string) *redis.Cmd {
		return rdb.Do(ctx, "DELIFEQ", name, owner)
	}))
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
			release := redis.NewScript(tc.body)
			load := func(ctx context.Context, rdb *redis.Client) error { return release.Load(ctx, rdb).Err() }
			benchCycles(b, false, load, setNXCycle(func(ctx context.Context, rdb *redis.Client, name, owner string) *redis.Cmd {
				return release.EvalSha(ctx, rdb, []string{name}, owner)
			}))
		})
	}
}
