package server

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lockd/lockd/replication"
	"github.com/redis/go-redis/v9"
)

// mlock runs MLOCK through go-redis: the tokens, or nil for a null.
func mlock(t testing.TB, rdb *redis.Client, args ...any) []int64 {
	t.Helper()
	v, err := rdb.Do(context.Background(), append([]any{"MLOCK"}, args...)...).Int64Slice()
	if err == redis.Nil {
		return nil
	}
	if err != nil {
		t.Fatalf("MLOCK %v: %v", args, err)
	}
	return v
}

func TestMLock(t *testing.T) {
	// PROTOCOL.md: MLOCK numnames name [name ...] owner [PX ms|EX s] [WAIT ms] [DELAY ms];
	// MUNLOCK numnames name [name ...] owner.
	srv := startServer(t)
	rdb := newRedis(t, srv)
	ctx := context.Background()

	t.Run("takes every name, tokens in the order given", func(t *testing.T) {
		got := mlock(t, rdb, 2, "a", "b", "alice", "PX", 10000)
		if len(got) != 2 || got[0] <= 0 || got[1] != got[0]+1 {
			t.Fatalf("MLOCK 2 a b alice = %v", got)
		}
		if o, _ := rdb.Do(ctx, "OWNER", "b").Text(); o != "alice" {
			t.Errorf("OWNER b = %q", o)
		}
		again := mlock(t, rdb, 3, "b", "c", "a", "alice")
		if again[0] != got[1] || again[2] != got[0] {
			t.Errorf("re-grant %v does not keep the tokens of %v", again, got)
		}
		if ttl := rdb.PTTL(ctx, "a").Val(); ttl != -1 {
			t.Errorf("re-grant without PX left a's lease at %v", ttl)
		}
	})
	t.Run("or none", func(t *testing.T) {
		if got := mlock(t, rdb, 2, "d", "a", "bob"); got != nil {
			t.Fatalf("MLOCK of a name alice holds = %v", got)
		}
		if n := rdb.Exists(ctx, "d").Val(); n != 0 {
			t.Errorf("a refused MLOCK took d")
		}
	})
	t.Run("MUNLOCK counts the names released", func(t *testing.T) {
		if n, err := rdb.Do(ctx, "MUNLOCK", 4, "a", "b", "c", "d", "alice").Int64(); err != nil || n != 3 {
			t.Fatalf("MUNLOCK = %d, %v; want 3", n, err)
		}
		if n := rdb.Do(ctx, "MUNLOCK", 1, "a", "alice").Val(); n != int64(0) {
			t.Errorf("second MUNLOCK = %v", n)
		}
	})
	t.Run("WAIT: queued in every queue, granted when the last name frees", func(t *testing.T) {
		rdb.Do(ctx, "LOCK", "q1", "bob")
		rdb.Do(ctx, "LOCK", "q2", "bob")
		out := make(chan []int64, 1)
		waiter := newRedis(t, srv)
		go func() {
			v, _ := waiter.Do(ctx, "MLOCK", 2, "q1", "q2", "carol", "WAIT", 10000).Int64Slice()
			out <- v
		}()
		poll(t, "carol to queue", func() bool { return srv.Node().Table().Waiting() == 2 })
		rdb.Do(ctx, "UNLOCK", "q1", "bob")
		// q1 is reserved for carol: free to read, taken by no one else.
		if err := rdb.Do(ctx, "OWNER", "q1").Err(); err != redis.Nil {
			t.Errorf("OWNER of a reserved name: %v", err)
		}
		if err := rdb.Do(ctx, "LOCK", "q1", "dave").Err(); err != redis.Nil {
			t.Errorf("LOCK of a reserved name: %v", err)
		}
		if ok := rdb.SetNX(ctx, "q1", "dave", 0).Val(); ok {
			t.Errorf("SET NX of a reserved name set it")
		}
		rdb.Do(ctx, "UNLOCK", "q2", "bob")
		if v := <-out; len(v) != 2 {
			t.Fatalf("carol's MLOCK answered %v", v)
		}
		if o, _ := rdb.Do(ctx, "OWNER", "q1").Text(); o != "carol" {
			t.Errorf("OWNER q1 = %q", o)
		}
	})
	t.Run("WAIT that runs out answers null and reserves nothing", func(t *testing.T) {
		if got := mlock(t, rdb, 2, "q2", "r", "erin", "WAIT", 50); got != nil {
			t.Fatalf("got %v", got)
		}
		if got := mlock(t, rdb, 1, "r", "frank"); len(got) != 1 {
			t.Errorf("r is still blocked after the wait ran out: %v", got)
		}
	})
}

func TestLockDelay(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.LockDelay = time.Hour })
	rdb := newRedis(t, srv)
	ctx := context.Background()
	expired := func(name string) {
		poll(t, name+"'s lease to run out", func() bool { return rdb.Exists(ctx, name).Val() == 0 })
	}

	t.Run("an expiry leaves the node's default lock-delay", func(t *testing.T) {
		rdb.Do(ctx, "LOCK", "d", "alice", "PX", 50)
		expired("d")
		for _, owner := range []string{"bob", "alice"} {
			if err := rdb.Do(ctx, "LOCK", "d", owner).Err(); err != redis.Nil {
				t.Errorf("LOCK by %s inside the lock-delay: %v", owner, err)
			}
		}
		if got := mlock(t, rdb, 2, "d", "e", "bob"); got != nil {
			t.Errorf("MLOCK inside the lock-delay: %v", got)
		}
		if ok := rdb.SetNX(ctx, "d", "bob", 0).Val(); ok {
			t.Errorf("SET NX inside the lock-delay set")
		}
		err := rdb.Set(ctx, "d", "bob", 0).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "LOCKDELAY d is in its lock-delay for ") {
			t.Errorf("SET inside the lock-delay: %v", err)
		}
	})
	t.Run("DELAY 0 overrides it; UNLOCK leaves none", func(t *testing.T) {
		rdb.Do(ctx, "LOCK", "n", "alice", "PX", 50, "DELAY", 0)
		expired("n")
		if tok, err := rdb.Do(ctx, "LOCK", "n", "bob").Int64(); err != nil || tok <= 0 {
			t.Errorf("LOCK after an expiry without delay: %v %v", tok, err)
		}
		rdb.Do(ctx, "LOCK", "u", "alice", "PX", 10000)
		rdb.Do(ctx, "UNLOCK", "u", "alice")
		if tok, err := rdb.Do(ctx, "LOCK", "u", "bob").Int64(); err != nil || tok <= 0 {
			t.Errorf("LOCK after UNLOCK: %v %v", tok, err)
		}
	})
	t.Run("a waiter is granted when the lock-delay ends", func(t *testing.T) {
		rdb.Do(ctx, "LOCK", "w", "alice", "PX", 50, "DELAY", 100)
		start := time.Now()
		tok, err := rdb.Do(ctx, "LOCK", "w", "bob", "WAIT", 5000).Int64()
		if err != nil || tok <= 0 {
			t.Fatalf("bob's LOCK ... WAIT: %v %v", tok, err)
		}
		if waited := time.Since(start); waited < 150*time.Millisecond {
			t.Errorf("bob was granted %v after asking, inside the lease and lock-delay (150 ms)", waited)
		}
	})
}

func TestMLockErrorsChangeNothing(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.MaxNameLen = 8 })
	rdb := newRedis(t, srv)
	ctx := context.Background()
	rdb.Do(ctx, "LOCK", "held", "alice")
	many := []any{"MLOCK", 65}
	for i := range 65 {
		many = append(many, "n"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	many = append(many, "bob")
	tests := []struct {
		name string
		args []any
		want string
	}{
		{"no names", []any{"MLOCK", 0, "a", "bob"}, "ERR numnames must be between 1 and 64"},
		{"65 names", many, "ERR numnames must be between 1 and 64"},
		{"numnames not an integer", []any{"MLOCK", "x", "a", "bob"}, "ERR value is not an integer or out of range"},
		{"more names than given", []any{"MLOCK", 3, "a", "b", "bob"}, "ERR numnames does not match the number of names given"},
		{"fewer names than given", []any{"MLOCK", 1, "a", "b", "bob"}, "ERR syntax error"},
		{"a repeated name", []any{"MLOCK", 2, "a", "a", "bob"}, "ERR a name is given twice"},
		{"a name too long", []any{"MLOCK", 2, "a", "123456789", "bob"}, "ERR invalid lock name"},
		{"an empty owner", []any{"MLOCK", 1, "a", ""}, "ERR invalid owner"},
		{"a dangling PX", []any{"MLOCK", 1, "a", "bob", "PX"}, "ERR syntax error"},
		{"a zero PX", []any{"MLOCK", 1, "a", "bob", "PX", 0}, "ERR invalid expire time in 'lock' command"},
		{"a negative WAIT", []any{"MLOCK", 1, "a", "bob", "WAIT", -1}, "ERR invalid wait time in 'lock' command"},
		{"a negative DELAY", []any{"MLOCK", 1, "a", "bob", "DELAY", -1}, "ERR invalid delay time in 'lock' command"},
		{"a DELAY over an hour", []any{"LOCK", "a", "bob", "DELAY", 3600001}, "ERR invalid delay time in 'lock' command"},
		{"DELAY twice", []any{"LOCK", "a", "bob", "DELAY", 1, "DELAY", 1}, "ERR syntax error"},
		{"MUNLOCK without owner", []any{"MUNLOCK", 2, "a", "held"}, "ERR numnames does not match the number of names given"},
		{"MUNLOCK with an extra argument", []any{"MUNLOCK", 1, "held", "alice", "x"}, "ERR numnames does not match the number of names given"},
		{"MUNLOCK with a repeated name", []any{"MUNLOCK", 2, "held", "held", "alice"}, "ERR a name is given twice"},
		{"MLOCK too short", []any{"MLOCK", 1, "a"}, "ERR wrong number of arguments for 'mlock' command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := rdb.Do(ctx, tt.args...).Err()
			if err == nil || err.Error() != tt.want {
				t.Errorf("%v: %v, want %q", tt.args, err, tt.want)
			}
			if n := rdb.DBSize(ctx).Val(); n != 1 {
				t.Errorf("%d keys after the error", n)
			}
			if o, _ := rdb.Do(ctx, "OWNER", "held").Text(); o != "alice" {
				t.Errorf("OWNER held = %q", o)
			}
		})
	}
}

func TestMLockACLAndMulti(t *testing.T) {
	srv, admin := aclServer(t)
	locker := as(t, srv, "locker")
	locker.expect("*2\r\n:1\r\n:2\r\n", "MLOCK", "2", "orders:1", "orders:2", "me")
	locker.expect("-NOPERM No permissions to access a key\r\n", "MLOCK", "2", "orders:3", "other", "me")
	locker.expect("-NOPERM No permissions to access a key\r\n", "MUNLOCK", "2", "orders:1", "other", "me")
	locker.expect(":2\r\n", "MUNLOCK", "2", "orders:1", "orders:2", "me")
	locker.expect("$-1\r\n", "OWNER", "orders:3")

	admin.expect("+OK\r\n", "MULTI")
	admin.expect("-ERR Command not allowed inside a transaction: lockd queues only key-space and lock commands\r\n", "MLOCK", "1", "orders:1", "me")
	admin.expect("-EXECABORT Transaction discarded because of previous errors.\r\n", "EXEC")
}

// A node refuses a default lock-delay outside 0..1h.
func TestLockDelayConfigBounds(t *testing.T) {
	for _, d := range []time.Duration{-time.Millisecond, time.Hour + time.Millisecond} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv, err := New(Config{Listener: ln, Node: replication.Config{ID: 1, DataDir: t.TempDir()}, LockDelay: d})
		if err == nil {
			srv.Close()
			t.Errorf("New accepted LockDelay %v", d)
		}
		ln.Close()
	}
}
