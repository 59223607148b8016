package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// sharedDo runs one command through go-redis and returns its value or error.
func sharedDo(t testing.TB, rdb *redis.Client, args ...any) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return rdb.Do(ctx, args...).Result()
}

// sharedInt runs a command that must answer an integer.
func sharedInt(t testing.TB, rdb *redis.Client, args ...any) int64 {
	t.Helper()
	v, err := sharedDo(t, rdb, args...)
	n, ok := v.(int64)
	if err != nil || !ok {
		t.Fatalf("%v = %v, %v; want an integer", args, v, err)
	}
	return n
}

// sharedNull checks that a command answers null.
func sharedNull(t testing.TB, rdb *redis.Client, args ...any) {
	t.Helper()
	if v, err := sharedDo(t, rdb, args...); !errors.Is(err, redis.Nil) {
		t.Fatalf("%v = %v, %v; want null", args, v, err)
	}
}

// holders renders RWINFO or SEMINFO name as "owner/mode/token" strings (the
// mode left out for SEMINFO), checking each ttl_ms is -1 or in [0, maxTTL]
// (0: the lease ran out, and its expiry is not applied yet).
func holders(t testing.TB, rdb *redis.Client, info, name string, maxTTL int64) []string {
	t.Helper()
	v, err := sharedDo(t, rdb, info, name)
	if err != nil {
		t.Fatalf("%s %s: %v", info, name, err)
	}
	var out []string
	for _, h := range v.([]any) {
		f := h.([]any)
		ttl := f[len(f)-1].(int64)
		if ttl != -1 && (ttl < 0 || ttl > maxTTL) {
			t.Errorf("%s %s: holder %v has ttl %d, want -1 or in [0, %d]", info, name, f, ttl, maxTTL)
		}
		parts := make([]string, 0, 3)
		for _, x := range f[:len(f)-1] {
			parts = append(parts, fmt.Sprint(x))
		}
		out = append(out, strings.Join(parts, "/"))
	}
	return out
}

func wantHolders(t testing.TB, rdb *redis.Client, info, name string, want ...string) {
	t.Helper()
	if got := holders(t, rdb, info, name, 600_000); !slices.Equal(got, want) {
		t.Fatalf("%s %s = %q, want %q", info, name, got, want)
	}
}

func TestRWLock(t *testing.T) {
	srv := startServer(t)
	rdb := newRedis(t, srv)

	t.Run("readers share the lock, each with its own token, in grant order", func(t *testing.T) {
		a := sharedInt(t, rdb, "RWLOCK", "rw1", "alice", "READ")
		b := sharedInt(t, rdb, "rwlock", "rw1", "bob", "read", "PX", "60000")
		if a <= 0 || b <= a {
			t.Fatalf("tokens %d, %d: want positive and increasing", a, b)
		}
		wantHolders(t, rdb, "RWINFO", "rw1", fmt.Sprintf("alice/read/%d", a), fmt.Sprintf("bob/read/%d", b))
	})

	t.Run("a writer gets null while readers hold it, and the readers keep it", func(t *testing.T) {
		sharedNull(t, rdb, "RWLOCK", "rw1", "carol", "WRITE")
		if n := len(holders(t, rdb, "RWINFO", "rw1", 60_000)); n != 2 {
			t.Fatalf("%d holders, want 2", n)
		}
	})

	t.Run("a re-grant in the same mode keeps the token and resets the lease", func(t *testing.T) {
		tok := sharedInt(t, rdb, "RWLOCK", "rw2", "alice", "WRITE", "PX", "60000")
		if again := sharedInt(t, rdb, "RWLOCK", "rw2", "alice", "WRITE"); again != tok {
			t.Fatalf("re-grant token %d, want %d", again, tok)
		}
		v, _ := sharedDo(t, rdb, "RWINFO", "rw2")
		if ttl := v.([]any)[0].([]any)[3].(int64); ttl != -1 {
			t.Fatalf("ttl after a re-grant without PX: %d, want -1", ttl)
		}
	})

	t.Run("the other mode is refused with an error and changes nothing", func(t *testing.T) {
		_, err := sharedDo(t, rdb, "RWLOCK", "rw2", "alice", "READ")
		if err == nil || err.Error() != "ERR alice holds rw2 for writing; RWUNLOCK it first" {
			t.Fatalf("err %v", err)
		}
		_, err = sharedDo(t, rdb, "RWLOCK", "rw1", "alice", "WRITE")
		if err == nil || err.Error() != "ERR alice holds rw1 for reading; RWUNLOCK it first" {
			t.Fatalf("err %v", err)
		}
		// With WAIT too: the refusal is the reply, not a null.
		_, err = sharedDo(t, rdb, "RWLOCK", "rw2", "alice", "READ", "WAIT", "1000")
		if err == nil || err.Error() != "ERR alice holds rw2 for writing; RWUNLOCK it first" {
			t.Fatalf("with WAIT: err %v", err)
		}
		if len(holders(t, rdb, "RWINFO", "rw2", 1)) != 1 || srv.Node().Table().Waiting() != 0 {
			t.Fatal("rw2 changed")
		}
	})

	t.Run("RWUNLOCK answers 1 for the holder and 0 for anyone else", func(t *testing.T) {
		if n := sharedInt(t, rdb, "RWUNLOCK", "rw2", "bob"); n != 0 {
			t.Fatalf("RWUNLOCK by a non-holder = %d", n)
		}
		if n := sharedInt(t, rdb, "RWUNLOCK", "rw2", "alice"); n != 1 {
			t.Fatalf("RWUNLOCK by the holder = %d", n)
		}
		wantHolders(t, rdb, "RWINFO", "rw2")
	})

	t.Run("RWRENEW sets the lease of a hold, 0 for a non-holder", func(t *testing.T) {
		sharedInt(t, rdb, "RWLOCK", "rw3", "alice", "READ")
		if n := sharedInt(t, rdb, "RWRENEW", "rw3", "alice", "PX", "5000"); n != 1 {
			t.Fatalf("RWRENEW = %d", n)
		}
		if n := sharedInt(t, rdb, "RWRENEW", "rw3", "bob", "EX", "5"); n != 0 {
			t.Fatalf("RWRENEW by a non-holder = %d", n)
		}
		if got := holders(t, rdb, "RWINFO", "rw3", 5000); len(got) != 1 {
			t.Fatalf("holders %v", got)
		}
	})

	t.Run("a lease runs out", func(t *testing.T) {
		sharedInt(t, rdb, "RWLOCK", "rw4", "alice", "WRITE", "PX", "50")
		poll(t, "rw4's lease to run out", func() bool { return len(holders(t, rdb, "RWINFO", "rw4", 50)) == 0 })
	})

	t.Run("a queued writer is granted when the readers leave, readers behind it wait", func(t *testing.T) {
		sharedInt(t, rdb, "RWLOCK", "rw5", "r1", "READ")
		writer := make(chan any, 1)
		go func() {
			v, err := sharedDo(t, rdb, "RWLOCK", "rw5", "w", "WRITE", "WAIT", "20000", "PX", "30000")
			if err != nil {
				v = err
			}
			writer <- v
		}()
		poll(t, "the writer to queue", func() bool { return srv.Node().Table().Waiting() == 1 })
		sharedNull(t, rdb, "RWLOCK", "rw5", "r2", "READ") // nobody jumps the queue
		sharedInt(t, rdb, "RWUNLOCK", "rw5", "r1")
		if v := <-writer; func() bool { n, ok := v.(int64); return !ok || n <= 0 }() {
			t.Fatalf("queued writer got %v", v)
		}
	})

	t.Run("a client that hangs up while it waits is withdrawn at once", func(t *testing.T) {
		sharedInt(t, rdb, "RWLOCK", "rw7", "holder", "WRITE")
		w := dial(t, srv)
		w.send(encode("RWLOCK", "rw7", "gone", "READ", "WAIT", "600000"))
		poll(t, "gone to queue", func() bool { return srv.Node().Table().Waiting() == 1 })
		w.c.Close()
		poll(t, "gone's request to be withdrawn", func() bool { return srv.Node().Table().Waiting() == 0 })
		sharedInt(t, rdb, "RWUNLOCK", "rw7", "holder")
		wantHolders(t, rdb, "RWINFO", "rw7")
	})

	t.Run("a wait that runs out answers null", func(t *testing.T) {
		sharedInt(t, rdb, "RWLOCK", "rw6", "holder", "WRITE")
		sharedNull(t, rdb, "RWLOCK", "rw6", "late", "READ", "WAIT", "50")
		if n := srv.Node().Table().Waiting(); n != 0 {
			t.Fatalf("Waiting() = %d after the wait ran out", n)
		}
	})

	t.Run("names are apart from the key space", func(t *testing.T) {
		sharedInt(t, rdb, "RWLOCK", "both", "alice", "WRITE")
		if n := sharedInt(t, rdb, "LOCK", "both", "bob"); n <= 0 {
			t.Fatalf("LOCK on a name held as a read/write lock = %d", n)
		}
		keys, err := rdb.Keys(context.Background(), "*").Result()
		if err != nil || slices.Contains(keys, "rw1") {
			t.Fatalf("KEYS = %v, %v: lists a read/write lock", keys, err)
		}
		info, err := rdb.Info(context.Background(), "keyspace").Result()
		if n := srv.Node().Table().SharedLen(); err != nil || !strings.Contains(info, fmt.Sprintf("\r\nshared_locks:%d\r\n", n)) {
			t.Fatalf("INFO keyspace = %q, %v; want shared_locks:%d", info, err, n)
		}
	})
}

func TestSemaphore(t *testing.T) {
	srv := startServer(t)
	rdb := newRedis(t, srv)

	t.Run("permits are granted up to the limit, then null", func(t *testing.T) {
		a := sharedInt(t, rdb, "SEMLOCK", "s1", "a", "2")
		b := sharedInt(t, rdb, "semlock", "s1", "b", "2", "ex", "60")
		sharedNull(t, rdb, "SEMLOCK", "s1", "c", "2")
		wantHolders(t, rdb, "SEMINFO", "s1", fmt.Sprintf("a/%d", a), fmt.Sprintf("b/%d", b))
		if again := sharedInt(t, rdb, "SEMLOCK", "s1", "a", "2"); again != a {
			t.Fatalf("re-grant %d, want %d", again, a)
		}
	})

	t.Run("another limit is refused while the name is held", func(t *testing.T) {
		_, err := sharedDo(t, rdb, "SEMLOCK", "s1", "c", "3")
		if err == nil || err.Error() != "ERR semaphore s1 has limit 2, not 3" {
			t.Fatalf("err %v", err)
		}
	})

	t.Run("the wrong kind is WRONGTYPE both ways", func(t *testing.T) {
		sharedInt(t, rdb, "RWLOCK", "rwname", "a", "READ")
		for _, args := range [][]any{
			{"SEMLOCK", "rwname", "a", "1"}, {"SEMUNLOCK", "rwname", "a"}, {"SEMRENEW", "rwname", "a", "PX", "10"}, {"SEMINFO", "rwname"},
			{"RWLOCK", "s1", "a", "READ"}, {"RWUNLOCK", "s1", "a"}, {"RWRENEW", "s1", "a", "PX", "10"}, {"RWINFO", "s1"},
		} {
			_, err := sharedDo(t, rdb, args...)
			if err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE Operation against a key holding the wrong kind of value") {
				t.Errorf("%v: err %v, want WRONGTYPE", args, err)
			}
		}
	})

	t.Run("SEMUNLOCK and SEMRENEW answer 1 for a holder, 0 for anyone else", func(t *testing.T) {
		if n := sharedInt(t, rdb, "SEMRENEW", "s1", "a", "PX", "60000"); n != 1 {
			t.Fatalf("SEMRENEW = %d", n)
		}
		if n := sharedInt(t, rdb, "SEMRENEW", "s1", "z", "PX", "60000"); n != 0 {
			t.Fatalf("SEMRENEW by a non-holder = %d", n)
		}
		if n := sharedInt(t, rdb, "SEMUNLOCK", "s1", "z"); n != 0 {
			t.Fatalf("SEMUNLOCK by a non-holder = %d", n)
		}
		sharedInt(t, rdb, "SEMUNLOCK", "s1", "a")
		sharedInt(t, rdb, "SEMUNLOCK", "s1", "b")
		wantHolders(t, rdb, "SEMINFO", "s1")
	})

	t.Run("a name nobody holds is forgotten with its limit", func(t *testing.T) {
		if n := sharedInt(t, rdb, "SEMLOCK", "s1", "a", "5"); n <= 0 {
			t.Fatalf("SEMLOCK with a new limit after release = %d", n)
		}
	})

	t.Run("a queued permit is granted on release", func(t *testing.T) {
		sharedInt(t, rdb, "SEMLOCK", "s2", "a", "1")
		got := make(chan any, 1)
		go func() {
			v, err := sharedDo(t, rdb, "SEMLOCK", "s2", "b", "1", "WAIT", "20000")
			if err != nil {
				v = err
			}
			got <- v
		}()
		poll(t, "b to queue", func() bool { return srv.Node().Table().Waiting() == 1 })
		sharedInt(t, rdb, "SEMUNLOCK", "s2", "a")
		if v := <-got; func() bool { n, ok := v.(int64); return !ok || n <= 0 }() {
			t.Fatalf("queued SEMLOCK got %v", v)
		}
	})
}

// TestSharedBadArguments: every bad argument shape gets an error and
// changes nothing.
func TestSharedBadArguments(t *testing.T) {
	srv := startServer(t)
	rdb := newRedis(t, srv)
	sharedInt(t, rdb, "RWLOCK", "held", "alice", "READ", "PX", "600000")
	sharedInt(t, rdb, "SEMLOCK", "sem", "alice", "3", "PX", "600000")
	long := strings.Repeat("x", DefaultMaxNameLen+1)
	longOwner := strings.Repeat("o", DefaultMaxOwnerLen+1)

	tests := []struct {
		args []any
		want string
	}{
		{[]any{"RWLOCK", "held", "bob"}, "ERR wrong number of arguments for 'rwlock' command"},
		{[]any{"RWLOCK", "held", "bob", "SHARED"}, "ERR syntax error"},
		{[]any{"RWLOCK", "held", "bob", "READ", "PX"}, "ERR syntax error"},
		{[]any{"RWLOCK", "held", "bob", "READ", "PX", "10", "PX", "10"}, "ERR syntax error"},
		{[]any{"RWLOCK", "held", "bob", "READ", "PX", "10", "EX", "10"}, "ERR syntax error"},
		{[]any{"RWLOCK", "held", "bob", "READ", "WAIT", "10", "WAIT", "10"}, "ERR syntax error"},
		{[]any{"RWLOCK", "held", "bob", "READ", "NX", "1"}, "ERR syntax error"},
		{[]any{"RWLOCK", "held", "bob", "READ", "PX", "0"}, "ERR invalid expire time in 'rwlock' command"},
		{[]any{"RWLOCK", "held", "bob", "READ", "PX", "-5"}, "ERR invalid expire time in 'rwlock' command"},
		{[]any{"RWLOCK", "held", "bob", "READ", "PX", "abc"}, "ERR value is not an integer or out of range"},
		{[]any{"RWLOCK", "held", "bob", "READ", "EX", "99999999999"}, "ERR invalid expire time in 'rwlock' command"},
		{[]any{"RWLOCK", "held", "bob", "READ", "WAIT", "-1"}, "ERR invalid wait time in 'rwlock' command"},
		{[]any{"RWLOCK", "held", "bob", "READ", "WAIT", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"RWLOCK", "", "bob", "READ"}, "ERR invalid lock name"},
		{[]any{"RWLOCK", long, "bob", "READ"}, "ERR invalid lock name"},
		{[]any{"RWLOCK", "held", "", "READ"}, "ERR invalid owner"},
		{[]any{"RWLOCK", "held", longOwner, "READ"}, "ERR invalid owner"},
		{[]any{"RWUNLOCK", "held"}, "ERR wrong number of arguments for 'rwunlock' command"},
		{[]any{"RWUNLOCK", "held", "alice", "x"}, "ERR wrong number of arguments for 'rwunlock' command"},
		{[]any{"RWUNLOCK", "held", ""}, "ERR invalid owner"},
		{[]any{"RWRENEW", "held", "alice", "PX"}, "ERR wrong number of arguments for 'rwrenew' command"},
		{[]any{"RWRENEW", "held", "alice", "KEEP", "10"}, "ERR syntax error"},
		{[]any{"RWRENEW", "held", "alice", "PX", "0"}, "ERR invalid expire time in 'rwrenew' command"},
		{[]any{"RWINFO"}, "ERR wrong number of arguments for 'rwinfo' command"},
		{[]any{"RWINFO", ""}, "ERR invalid lock name"},
		{[]any{"SEMLOCK", "sem", "bob"}, "ERR wrong number of arguments for 'semlock' command"},
		{[]any{"SEMLOCK", "sem", "bob", "0"}, "ERR invalid semaphore limit: want an integer 1..1024"},
		{[]any{"SEMLOCK", "sem", "bob", "1025"}, "ERR invalid semaphore limit: want an integer 1..1024"},
		{[]any{"SEMLOCK", "sem", "bob", "three"}, "ERR value is not an integer or out of range"},
		{[]any{"SEMLOCK", "sem", "bob", "3", "WAIT"}, "ERR syntax error"},
		{[]any{"SEMLOCK", "sem", "bob", "3", "PX", "0"}, "ERR invalid expire time in 'semlock' command"},
		{[]any{"SEMLOCK", "sem", "bob", "3", "WAIT", "-3"}, "ERR invalid wait time in 'semlock' command"},
		{[]any{"SEMLOCK", "sem", "", "3"}, "ERR invalid owner"},
		{[]any{"SEMUNLOCK", "sem"}, "ERR wrong number of arguments for 'semunlock' command"},
		{[]any{"SEMRENEW", "sem", "alice", "EX", "-1"}, "ERR invalid expire time in 'semrenew' command"},
		{[]any{"SEMRENEW", "sem", "alice", "WAIT", "10"}, "ERR syntax error"},
		{[]any{"SEMINFO", "a", "b"}, "ERR wrong number of arguments for 'seminfo' command"},
	}
	for _, tc := range tests {
		name := fmt.Sprint(tc.args)
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			_, err := sharedDo(t, rdb, tc.args...)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if got := holders(t, rdb, "RWINFO", "held", 600_000); len(got) != 1 || !strings.HasPrefix(got[0], "alice/read/") {
				t.Fatalf("RWINFO held = %v after a refused command", got)
			}
			if got := holders(t, rdb, "SEMINFO", "sem", 600_000); len(got) != 1 || !strings.HasPrefix(got[0], "alice/") {
				t.Fatalf("SEMINFO sem = %v after a refused command", got)
			}
			if n := srv.Node().Table().SharedLen(); n != 2 {
				t.Fatalf("%d shared names after a refused command, want 2", n)
			}
		})
	}
}

// TestSharedACL: the commands are @lock and @write or @read, and key
// patterns apply to the name.
func TestSharedACL(t *testing.T) {
	srv := startServer(t)
	admin := newRedis(t, srv)
	ctx := context.Background()
	if err := admin.Do(ctx, "ACL", "SETUSER", "reader", "on", "nopass", "~app:*", "+@read").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "locker", "on", "nopass", "~app:*", "+@lock").Err(); err != nil {
		t.Fatal(err)
	}
	reader := newRedis(t, srv, func(o *redis.Options) { o.Username, o.Password = "reader", "x" })
	locker := newRedis(t, srv, func(o *redis.Options) { o.Username, o.Password = "locker", "x" })

	if _, err := sharedDo(t, reader, "RWINFO", "app:x"); err != nil {
		t.Errorf("@read RWINFO: %v", err)
	}
	if _, err := sharedDo(t, reader, "SEMLOCK", "app:x", "r", "1"); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Errorf("@read SEMLOCK: %v, want NOPERM", err)
	}
	if _, err := sharedDo(t, locker, "SEMLOCK", "app:x", "l", "1"); err != nil {
		t.Errorf("@lock SEMLOCK: %v", err)
	}
	if _, err := sharedDo(t, locker, "RWLOCK", "other", "l", "READ"); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Errorf("RWLOCK outside the key pattern: %v, want NOPERM", err)
	}
	if n := srv.Node().Table().SharedLen(); n != 1 {
		t.Errorf("%d shared names, want 1 (app:x)", n)
	}
}

// TestSharedKeyspaceNotifications: the read/write lock and semaphore
// commands notify LOCK's events on the name.
func TestSharedKeyspaceNotifications(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.NotifyKeyspaceEvents = "KEA" })
	sub, cl := dial(t, srv), dial(t, srv)
	sub.expect(confirm("subscribe", "__keyspace@0__:job", 1), "SUBSCRIBE", "__keyspace@0__:job")

	cl.int("RWLOCK", "job", "a", "READ")
	if v := cl.value("RWLOCK", "job", "b", "WRITE"); v != nil { // refused: no event
		t.Fatalf("RWLOCK WRITE of a read-held lock = %v, want null", v)
	}
	cl.int("RWRENEW", "job", "a", "PX", "100000")
	cl.int("RWUNLOCK", "job", "a")
	cl.int("SEMLOCK", "job", "a", "2", "PX", "50")
	want := message("__keyspace@0__:job", "grant") + message("__keyspace@0__:job", "expire") +
		message("__keyspace@0__:job", "del") + message("__keyspace@0__:job", "grant") + message("__keyspace@0__:job", "expired")
	if got := sub.reply() + sub.reply() + sub.reply() + sub.reply() + sub.reply(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestSharedInMulti: RWLOCK and its kin queue between MULTI and EXEC and
// run in EXEC's one step; a WAIT there does not wait.
func TestSharedInMulti(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	c.int("RWLOCK", "m", "holder", "WRITE")
	c.expect("+OK\r\n", "MULTI")
	c.expect("+QUEUED\r\n", "RWLOCK", "m", "a", "READ", "WAIT", "600000")
	c.expect("+QUEUED\r\n", "RWUNLOCK", "m", "holder")
	c.expect("+QUEUED\r\n", "RWLOCK", "m", "a", "READ")
	c.expect("+QUEUED\r\n", "SEMLOCK", "m", "a", "1")
	got := c.do("EXEC")
	want := "*4\r\n$-1\r\n:1\r\n:"
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n") {
		t.Fatalf("EXEC = %q, want null, 1, a token, WRONGTYPE", got)
	}
	if n := srv.Node().Table().Waiting(); n != 0 {
		t.Fatalf("Waiting() = %d after EXEC", n)
	}
}

// TestSharedOptionsAnyOrderAndRESP3: options come in any order and case;
// under RESP3 the INFO replies are the same arrays.
func TestSharedOptionsAnyOrderAndRESP3(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	a := c.int("RWLOCK", "o", "a", "read", "wait", "10", "px", "60000")
	b := c.int("SEMLOCK", "s", "b", "1", "Wait", "10", "Ex", "60")
	c.value("HELLO", "3")
	got := c.do("RWINFO", "o")
	if want := fmt.Sprintf("*1\r\n*4\r\n$1\r\na\r\n$4\r\nread\r\n:%d\r\n:", a); !strings.HasPrefix(got, want) {
		t.Fatalf("RWINFO under RESP3 = %q, want it to start %q", got, want)
	}
	got = c.do("SEMINFO", "s")
	if want := fmt.Sprintf("*1\r\n*3\r\n$1\r\nb\r\n:%d\r\n:", b); !strings.HasPrefix(got, want) {
		t.Fatalf("SEMINFO under RESP3 = %q, want it to start %q", got, want)
	}
	c.expect("*0\r\n", "SEMINFO", "free")
}
