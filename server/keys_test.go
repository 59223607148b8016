package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replies, as the wire carries them.
const (
	okReply    = "+OK\r\n"
	nullReply  = "$-1\r\n"
	syntaxErr  = "-ERR syntax error\r\n"
	notIntErr  = "-ERR value is not an integer or out of range\r\n"
	badNameErr = "-ERR invalid lock name\r\n"
	badValErr  = "-ERR invalid owner\r\n"
	digestErr  = "-ERR IFDEQ and IFDNE (digest conditions) are not supported by lockd; use IFEQ or IFNE\r\n"
)

func expireErr(cmd string) string { return "-ERR invalid expire time in '" + cmd + "' command\r\n" }

// step is one command of a scenario and its exact reply.
type step struct {
	want string
	args []string
}

func do(want string, args ...string) step { return step{want: want, args: args} }

// aToken stands for a fencing token in a step's reply: any positive integer.
const aToken = ":<token>\r\n"

// run sends each step's command in turn and checks its reply.
func (rc *rawConn) run(steps ...step) {
	rc.t.Helper()
	for _, s := range steps {
		if s.want == aToken {
			if n := rc.int(s.args...); n <= 0 {
				rc.t.Fatalf("%q: %d, want a token", s.args, n)
			}
			continue
		}
		rc.expect(s.want, s.args...)
	}
}

// keySpaceServer is a node whose limits the key-space tests state.
func keySpaceServer(t testing.TB) *Server {
	return startServer(t, func(c *Config) {
		c.MaxNameLen = 16
		c.MaxOwnerLen = 8
		c.MaxTTL = time.Hour
	})
}

// scenario is a named sequence of steps, as Redis's docs describe a command.
type scenario struct {
	name  string
	steps []step
}

func runScenarios(t *testing.T, srv *Server, scenarios []scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { dial(t, srv).run(sc.steps...) })
	}
}

func TestSet(t *testing.T) {
	srv := keySpaceServer(t)
	runScenarios(t, srv, []scenario{
		{"SET sets the value whatever it was; GET reads it", []step{
			do(okReply, "SET", "s1", "v"),
			do(bulk("v"), "GET", "s1"),
			do(okReply, "SET", "s1", "w"),
			do(bulk("w"), "GET", "s1"),
		}},
		{"NX sets only a key that does not exist", []step{
			do(okReply, "SET", "s2", "a", "NX"),
			do(nullReply, "SET", "s2", "b", "NX"),
			do(bulk("a"), "GET", "s2"),
		}},
		{"XX sets only a key that exists", []step{
			do(nullReply, "SET", "s3", "a", "XX"),
			do(nullReply, "GET", "s3"),
			do(okReply, "SET", "s3", "a"),
			do(okReply, "SET", "s3", "b", "XX"),
			do(bulk("b"), "GET", "s3"),
		}},
		{"GET replies the old value, or null, whether or not it set", []step{
			do(nullReply, "SET", "s4", "a", "GET"),
			do(bulk("a"), "SET", "s4", "b", "GET"),
			do(bulk("b"), "SET", "s4", "c", "NX", "GET"),
			do(bulk("b"), "GET", "s4"),
		}},
		{"IFEQ sets only over an equal value and never creates; IFNE over another value or none", []step{
			do(nullReply, "SET", "s5", "a", "IFEQ", "a"),
			do(nullReply, "GET", "s5"),
			do(okReply, "SET", "s5", "a", "IFNE", "x"),
			do(nullReply, "SET", "s5", "b", "IFEQ", "x"),
			do(okReply, "SET", "s5", "b", "IFEQ", "a"),
			do(nullReply, "SET", "s5", "c", "IFNE", "b"),
			do(bulk("b"), "SET", "s5", "c", "IFNE", "z", "GET"),
			do(bulk("c"), "GET", "s5"),
		}},
		{"options in any order and case", []step{
			do(nullReply, "set", "s6", "v", "px", "60000", "nx", "get"),
			do(bulk("v"), "SeT", "s6", "w", "Get", "xX", "Ex", "60"),
			do(bulk("w"), "get", "s6"),
		}},
		{"the same option twice: the last one counts, as in Redis", []step{
			do(okReply, "SET", "s7", "v", "EX", "0", "EX", "100"),
			do(integer(100), "TTL", "s7"),
			do(bulk("v"), "SET", "s7", "w", "XX", "xx", "GET", "GET"),
		}},
		{"a deadline already past deletes the key, and the reply is as for a SET", []step{
			do(okReply, "SET", "s8", "v"),
			do(okReply, "SET", "s8", "w", "PXAT", "1"),
			do(integer(0), "EXISTS", "s8"),
			do(nullReply, "SET", "s8", "w", "EXAT", "1", "GET"),
			do(integer(0), "EXISTS", "s8"),
		}},
		{"SET of a lock gives it the value as its owner", []step{
			do(aToken, "LOCK", "s9", "alice"),
			do(bulk("alice"), "GET", "s9"),
			do(okReply, "SET", "s9", "bob", "XX"),
			do(bulk("bob"), "OWNER", "s9"),
			do(integer(0), "UNLOCK", "s9", "alice"),
			do(integer(1), "UNLOCK", "s9", "bob"),
		}},
	})

	t.Run("EX, PX and KEEPTTL; a SET without them drops the TTL", func(t *testing.T) {
		c := dial(t, srv)
		c.run(do(okReply, "SET", "t1", "v", "EX", "100"), do(integer(100), "TTL", "t1"))
		if ms := c.int("PTTL", "t1"); ms <= 99_000 || ms > 100_000 {
			t.Fatalf("PTTL after EX 100 = %d", ms)
		}
		c.run(do(okReply, "SET", "t1", "v"), do(integer(-1), "TTL", "t1"))
		c.run(do(okReply, "SET", "t1", "v", "PX", "5000"), do(okReply, "SET", "t1", "w", "KEEPTTL"), do(bulk("w"), "GET", "t1"))
		if ms := c.int("PTTL", "t1"); ms <= 4000 || ms > 5000 {
			t.Fatalf("PTTL after KEEPTTL = %d; want the 5000 ms lease kept", ms)
		}
	})
	t.Run("EXAT and PXAT are Unix times", func(t *testing.T) {
		c := dial(t, srv)
		at := time.Now().Unix() + 100
		c.run(do(okReply, "SET", "t2", "v", "EXAT", fmt.Sprint(at)), do(integer(at), "EXPIRETIME", "t2"))
		if s := c.int("TTL", "t2"); s < 98 || s > 100 {
			t.Fatalf("TTL after EXAT now+100 = %d", s)
		}
		atMS := time.Now().UnixMilli() + 5000
		c.run(do(okReply, "SET", "t2", "v", "PXAT", fmt.Sprint(atMS)), do(integer(atMS), "PEXPIRETIME", "t2"))
		if ms := c.int("PTTL", "t2"); ms <= 3000 || ms > 5000 {
			t.Fatalf("PTTL after PXAT now+5000 = %d", ms)
		}
	})

	t.Run("errors change nothing", func(t *testing.T) {
		farMS := fmt.Sprint(time.Now().Add(time.Hour + time.Minute).UnixMilli())
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"NX and XX", []string{"NX", "XX"}, syntaxErr},
			{"NX and IFEQ", []string{"NX", "IFEQ", "a"}, syntaxErr},
			{"IFEQ and IFNE", []string{"IFEQ", "a", "IFNE", "b"}, syntaxErr},
			{"XX and IFNE", []string{"IFNE", "a", "XX"}, syntaxErr},
			{"EX and PX", []string{"EX", "10", "PX", "100"}, syntaxErr},
			{"PX and KEEPTTL", []string{"PX", "10", "KEEPTTL"}, syntaxErr},
			{"EXAT and PXAT", []string{"EXAT", "10", "PXAT", "10"}, syntaxErr},
			{"an unknown option", []string{"FOO"}, syntaxErr},
			{"EX without its value", []string{"EX"}, syntaxErr},
			{"IFEQ without its value", []string{"GET", "IFEQ"}, syntaxErr},
			{"options come before their numbers", []string{"EX", "abc", "NX", "XX"}, syntaxErr},
			{"EX not a number", []string{"EX", "abc"}, notIntErr},
			{"PX with a plus sign", []string{"PX", "+5"}, notIntErr},
			{"EX 0", []string{"EX", "0"}, expireErr("set")},
			{"PX -1", []string{"PX", "-1"}, expireErr("set")},
			{"EXAT 0", []string{"EXAT", "0"}, expireErr("set")},
			{"EX overflowing milliseconds", []string{"EX", "9223372036854775807"}, expireErr("set")},
			{"EXAT overflowing milliseconds", []string{"EXAT", "9223372036854775807"}, expireErr("set")},
			{"PX past MaxTTL (lockd)", []string{"PX", "3600001"}, expireErr("set")},
			{"PXAT past MaxTTL (lockd)", []string{"PXAT", farMS}, expireErr("set")},
			{"IFDEQ (lockd)", []string{"IFDEQ", "1234"}, digestErr},
			{"IFDNE (lockd)", []string{"IFDNE", "1234"}, digestErr},
			{"IFEQ value longer than any lockd stores (lockd)", []string{"IFEQ", "123456789"}, badValErr},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := dial(t, srv)
				c.expect(tc.want, append([]string{"SET", "e1", "v"}, tc.args...)...)
				c.expect(integer(0), "EXISTS", "e1")
			})
		}
		c := dial(t, srv)
		c.run(
			do(badValErr, "SET", "e1", ""), // Redis stores an empty string; lockd cannot
			do(badValErr, "SET", "e1", "123456789"),
			do(badNameErr, "SET", "", "v"),
			do(badNameErr, "SET", strings.Repeat("n", 17), "v"),
			do(arityErr("set"), "SET", "e1"),
			do(integer(0), "EXISTS", "e1"),
		)
	})
}

func TestSetNXGetMGet(t *testing.T) {
	srv := keySpaceServer(t)
	runScenarios(t, srv, []scenario{
		{"SETNX sets a key that does not exist and answers 1, else 0", []step{
			do(integer(1), "SETNX", "n1", "a"),
			do(integer(0), "SETNX", "n1", "b"),
			do(bulk("a"), "GET", "n1"),
			do(badValErr, "SETNX", "n1", ""),
			do(arityErr("setnx"), "SETNX", "n1"),
		}},
		{"GET of a key that does not exist is null", []step{
			do(nullReply, "GET", "nosuch"),
			do(badNameErr, "GET", ""),
			do(arityErr("get"), "GET", "a", "b"),
		}},
		{"MGET answers each key's value or null, in order", []step{
			do(okReply, "SET", "m1", "x"),
			do(okReply, "SET", "m2", "y"),
			do("*4\r\n"+bulk("x")+nullReply+bulk("y")+bulk("x"), "MGET", "m1", "nosuch", "m2", "m1"),
			do(badNameErr, "MGET", "m1", ""),
			do(arityErr("mget"), "MGET"),
		}},
	})
	t.Run("RESP3 nulls", func(t *testing.T) {
		c := dial(t, srv)
		c.value("HELLO", "3")
		c.run(
			do("_\r\n", "GET", "nosuch"),
			do("_\r\n", "SET", "n1", "b", "NX"),
			do("*1\r\n_\r\n", "MGET", "nosuch"),
		)
	})
}

func TestDelExists(t *testing.T) {
	srv := keySpaceServer(t)
	runScenarios(t, srv, []scenario{
		{"DEL deletes the keys that exist and counts them", []step{
			do(okReply, "SET", "d1", "a"),
			do(okReply, "SET", "d2", "b"),
			do(integer(2), "DEL", "d1", "d2", "d3", "d1"),
			do(integer(0), "EXISTS", "d1", "d2"),
			do(integer(0), "DEL", "d1"),
		}},
		{"UNLINK is DEL", []step{
			do(okReply, "SET", "u1", "a"),
			do(integer(1), "UNLINK", "u1", "u2"),
			do(integer(0), "EXISTS", "u1"),
		}},
		{"EXISTS counts a key named twice twice", []step{
			do(okReply, "SET", "x1", "a"),
			do(integer(2), "EXISTS", "x1", "x1", "nosuch"),
		}},
		{"DEL of a lock releases it", []step{
			do(aToken, "LOCK", "l1", "alice"),
			do(integer(1), "DEL", "l1"),
			do(nullReply, "OWNER", "l1"),
			do(aToken, "LOCK", "l1", "bob"),
		}},
		{"errors", []step{
			do(badNameErr, "DEL", "d1", ""),
			do(badNameErr, "EXISTS", strings.Repeat("n", 17)),
			do(arityErr("del"), "DEL"),
			do(arityErr("unlink"), "UNLINK"),
			do(arityErr("exists"), "EXISTS"),
		}},
	})
}

func TestExpire(t *testing.T) {
	srv := keySpaceServer(t)
	now := time.Now()
	runScenarios(t, srv, []scenario{
		{"on a key that does not exist: 0", []step{
			do(integer(0), "EXPIRE", "nosuch", "100"),
			do(integer(0), "PEXPIREAT", "nosuch", fmt.Sprint(now.UnixMilli()+5000)),
			do(integer(-2), "TTL", "nosuch"),
			do(integer(-2), "PTTL", "nosuch"),
			do(integer(-2), "EXPIRETIME", "nosuch"),
			do(integer(-2), "PEXPIRETIME", "nosuch"),
		}},
		{"a key without a lease: -1", []step{
			do(okReply, "SET", "p1", "v"),
			do(integer(-1), "TTL", "p1"),
			do(integer(-1), "PTTL", "p1"),
			do(integer(-1), "EXPIRETIME", "p1"),
			do(integer(-1), "PEXPIRETIME", "p1"),
		}},
		{"EXPIRE in seconds, EXPIREAT and PEXPIREAT in Unix time", []step{
			do(okReply, "SET", "x1", "v"),
			do(integer(1), "EXPIRE", "x1", "100"),
			do(integer(100), "TTL", "x1"),
			do(integer(1), "EXPIREAT", "x1", fmt.Sprint(now.Unix()+200)),
			do(integer(now.Unix()+200), "EXPIRETIME", "x1"),
			do(integer(1), "PEXPIREAT", "x1", fmt.Sprint(now.UnixMilli()+300_000)),
			do(integer(now.UnixMilli()+300_000), "PEXPIRETIME", "x1"),
		}},
		{"NX: only a key without a lease; XX: only one with", []step{
			do(okReply, "SET", "x2", "v"),
			do(integer(0), "EXPIRE", "x2", "100", "XX"),
			do(integer(1), "EXPIRE", "x2", "100", "NX"),
			do(integer(0), "EXPIRE", "x2", "200", "NX"),
			do(integer(1), "EXPIRE", "x2", "200", "xx"),
			do(integer(200), "TTL", "x2"),
		}},
		{"GT: only later (no lease is infinite); LT: only earlier", []step{
			do(okReply, "SET", "x3", "v"),
			do(integer(0), "EXPIRE", "x3", "100", "GT"),
			do(integer(1), "EXPIRE", "x3", "100", "LT"),
			do(integer(0), "EXPIRE", "x3", "50", "GT"),
			do(integer(1), "EXPIRE", "x3", "200", "GT"),
			do(integer(0), "EXPIRE", "x3", "300", "LT"),
			do(integer(1), "EXPIRE", "x3", "150", "XX", "LT"),
			do(integer(150), "TTL", "x3"),
		}},
		{"a time at or before now deletes the key", []step{
			do(okReply, "SET", "x4", "v"),
			do(integer(1), "EXPIRE", "x4", "0"),
			do(integer(0), "EXISTS", "x4"),
			do(okReply, "SET", "x4", "v"),
			do(integer(1), "PEXPIRE", "x4", "-5"),
			do(integer(0), "EXISTS", "x4"),
			do(okReply, "SET", "x4", "v"),
			do(integer(1), "EXPIREAT", "x4", "1"),
			do(integer(0), "EXISTS", "x4"),
			do(okReply, "SET", "x4", "v"),
			do(integer(1), "PEXPIREAT", "x4", fmt.Sprint(now.UnixMilli())),
			do(integer(0), "EXISTS", "x4"),
		}},
		{"PERSIST removes the lease", []step{
			do(integer(0), "PERSIST", "nosuch"),
			do(okReply, "SET", "x5", "v"),
			do(integer(0), "PERSIST", "x5"),
			do(integer(1), "EXPIRE", "x5", "100"),
			do(integer(1), "PERSIST", "x5"),
			do(integer(-1), "TTL", "x5"),
		}},
		{"errors change nothing", []step{
			do(okReply, "SET", "x6", "v", "EX", "100"),
			do("-ERR NX and XX, GT or LT options at the same time are not compatible\r\n", "EXPIRE", "x6", "10", "NX", "XX"),
			do("-ERR NX and XX, GT or LT options at the same time are not compatible\r\n", "EXPIRE", "x6", "10", "GT", "NX"),
			do("-ERR GT and LT options at the same time are not compatible\r\n", "PEXPIRE", "x6", "10", "GT", "LT"),
			do("-ERR Unsupported option foo\r\n", "EXPIRE", "x6", "10", "foo"),
			do("-ERR Unsupported option FOO\r\n", "EXPIRE", "x6", "abc", "FOO"), // options come first
			do(notIntErr, "EXPIRE", "x6", "abc"),
			do(expireErr("expire"), "EXPIRE", "x6", "9223372036854775807"),
			do(expireErr("expire"), "EXPIRE", "x6", "3601"), // past MaxTTL (lockd)
			do(expireErr("pexpire"), "pexpire", "x6", "3600001"),
			do(expireErr("expireat"), "EXPIREAT", "x6", fmt.Sprint(now.Unix()+3700)),
			do(expireErr("pexpireat"), "PEXPIREAT", "x6", fmt.Sprint(now.UnixMilli()+3_700_000)),
			do(badNameErr, "EXPIRE", "", "10"),
			do(arityErr("expire"), "EXPIRE", "x6"),
			do(arityErr("ttl"), "TTL"),
			do(arityErr("persist"), "PERSIST", "x6", "x6"),
			do(integer(100), "TTL", "x6"),
		}},
	})
	t.Run("PTTL counts down", func(t *testing.T) {
		c := dial(t, srv)
		c.run(do(okReply, "SET", "c1", "v", "PX", "60000"))
		first := c.int("PTTL", "c1")
		poll(t, "PTTL to count down", func() bool { return c.int("PTTL", "c1") < first })
	})
}

func TestTypeDelexDelifeq(t *testing.T) {
	srv := keySpaceServer(t)
	runScenarios(t, srv, []scenario{
		{"TYPE is string or none", []step{
			do(okReply, "SET", "y1", "v"),
			do("+string\r\n", "TYPE", "y1"),
			do("+none\r\n", "TYPE", "nosuch"),
		}},
		{"DELEX without a condition is DEL of one key", []step{
			do(okReply, "SET", "y2", "v"),
			do(integer(1), "DELEX", "y2"),
			do(integer(0), "DELEX", "y2"),
		}},
		{"DELEX IFEQ deletes only an equal value, IFNE only another", []step{
			do(okReply, "SET", "y3", "v"),
			do(integer(0), "DELEX", "y3", "IFEQ", "w"),
			do(integer(0), "DELEX", "y3", "ifne", "v"),
			do(integer(1), "DELEX", "y3", "IFEQ", "v"),
			do(integer(0), "DELEX", "y3", "IFEQ", "v"),
			do(integer(0), "DELEX", "y3", "IFNE", "w"), // no key: 0
			do(okReply, "SET", "y3", "v"),
			do(integer(1), "DELEX", "y3", "IFNE", "w"),
		}},
		{"DELEX errors", []step{
			do(okReply, "SET", "y4", "v"),
			do(digestErr, "DELEX", "y4", "IFDEQ", "d41d8cd98f00b204"),
			do(digestErr, "DELEX", "y4", "IFDNE", "d41d8cd98f00b204"),
			do(syntaxErr, "DELEX", "y4", "IFEQ"),
			do(syntaxErr, "DELEX", "y4", "FOO", "v"),
			do(syntaxErr, "DELEX", "y4", "IFEQ", "v", "IFNE", "w"),
			do(arityErr("delex"), "DELEX"),
			do(integer(1), "EXISTS", "y4"),
		}},
		{"DELIFEQ deletes a key that holds the value", []step{
			do(okReply, "SET", "y5", "abc123"),
			do(integer(1), "DELIFEQ", "y5", "abc123"),
			do(integer(0), "DELIFEQ", "y5", "abc123"),
			do(okReply, "SET", "y5", "xyz789"),
			do(integer(0), "DELIFEQ", "y5", "abc123"),
			do(arityErr("delifeq"), "DELIFEQ", "y5"),
			do(bulk("xyz789"), "GET", "y5"),
		}},
	})
}

// Redis's other commands are not lockd's.
func TestOtherRedisCommandsAreUnknown(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	for _, args := range [][]string{
		{"INCR", "k"}, {"DECR", "k"}, {"APPEND", "k", "v"}, {"GETSET", "k", "v"}, {"SETEX", "k", "10", "v"},
		{"LPUSH", "k", "v"}, {"HSET", "k", "f", "v"}, {"SADD", "k", "m"}, {"ZADD", "k", "1", "m"},
		{"XADD", "k", "*", "f", "v"}, {"SPUBLISH", "ch", "m"}, {"FLUSHALL"}, {"RENAME", "a", "b"},
	} {
		var b strings.Builder
		fmt.Fprintf(&b, "-ERR unknown command '%s', with args beginning with: ", args[0])
		for _, a := range args[1:min(len(args), 4)] {
			fmt.Fprintf(&b, "'%s' ", a)
		}
		c.expect(b.String()+"\r\n", args...)
	}
	c.expect(integer(0), "DBSIZE")
}

// go-redis's own methods for the key space, as applications call them.
func TestGoRedisKeySpace(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprint("RESP", proto), func(t *testing.T) {
			rdb := newRedis(t, srv, func(o *redis.Options) { o.Protocol = proto })
			k := fmt.Sprint("gr", proto)
			if ok, err := rdb.SetNX(ctx, k, "owner", 30*time.Second).Result(); err != nil || !ok {
				t.Fatalf("SetNX: %v %v", ok, err)
			}
			if ok, err := rdb.SetNX(ctx, k, "other", 30*time.Second).Result(); err != nil || ok {
				t.Fatalf("second SetNX: %v %v", ok, err)
			}
			if v, err := rdb.Get(ctx, k).Result(); err != nil || v != "owner" {
				t.Fatalf("Get: %q %v", v, err)
			}
			if _, err := rdb.Get(ctx, "nosuch").Result(); !errors.Is(err, redis.Nil) {
				t.Fatalf("Get of no key: %v", err)
			}
			if d, err := rdb.TTL(ctx, k).Result(); err != nil || d <= 29*time.Second || d > 30*time.Second {
				t.Fatalf("TTL: %v %v", d, err)
			}
			if ok, err := rdb.PExpire(ctx, k, 5*time.Second).Result(); err != nil || !ok {
				t.Fatalf("PExpire: %v %v", ok, err)
			}
			if n, err := rdb.Exists(ctx, k, k, "nosuch").Result(); err != nil || n != 2 {
				t.Fatalf("Exists: %d %v", n, err)
			}
			if vs, err := rdb.MGet(ctx, k, "nosuch").Result(); err != nil || len(vs) != 2 || vs[0] != "owner" || vs[1] != nil {
				t.Fatalf("MGet: %#v %v", vs, err)
			}
			if typ, err := rdb.Type(ctx, k).Result(); err != nil || typ != "string" {
				t.Fatalf("Type: %q %v", typ, err)
			}
			if n, err := rdb.Del(ctx, k, "nosuch").Result(); err != nil || n != 1 {
				t.Fatalf("Del: %d %v", n, err)
			}
		})
	}
}

// Every command a build func accepts passes validCommand, which the leader
// runs on forwarded commands: nothing a follower's client may send is
// refused by the leader.
func TestBuiltCommandsAreValid(t *testing.T) {
	s := &Server{cfg: Config{MaxNameLen: 16, MaxOwnerLen: 8, MaxTTL: time.Hour}.WithDefaults()}
	now := time.Now()
	in := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).UnixMilli(), 10) }
	for _, args := range [][]string{
		{"LOCK", "k", "o"}, {"LOCK", "k", "o", "PX", "3600000", "WAIT", "5"}, {"UNLOCK", "k", "o"},
		{"RENEW", "k", "o", "EX", "3600"}, {"OWNER", "k"}, {"LOCKINFO", "k"},
		{"SET", "k", "v"}, {"SET", "k", "v", "NX", "GET", "PX", "3600000"}, {"SET", "k", "v", "IFEQ", "12345678", "KEEPTTL"},
		{"SET", "k", "v", "IFNE", "", "PXAT", in(time.Hour)}, {"SET", "k", "v", "XX", "EXAT", "1"},
		{"SETNX", "k", "v"}, {"GET", "k"}, {"DEL", "k", "l", "k"}, {"UNLINK", "k"}, {"EXISTS", "k", "k"},
		{"EXPIRE", "k", "3600", "NX"}, {"PEXPIRE", "k", "-1", "GT"}, {"EXPIREAT", "k", "1", "LT", "XX"},
		{"PEXPIREAT", "k", in(time.Minute)}, {"TTL", "k"}, {"PTTL", "k"}, {"EXPIRETIME", "k"}, {"PEXPIRETIME", "k"},
		{"PERSIST", "k"}, {"TYPE", "k"}, {"DELEX", "k"}, {"DELEX", "k", "IFNE", "v"}, {"DELIFEQ", "k", "v"},
	} {
		spec := commandTable[args[0]]
		bs := make([][]byte, len(args))
		for i, a := range args {
			bs[i] = []byte(a)
		}
		cmd, err := spec.build(s, bs)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if err := s.validCommand(&cmd); err != nil {
			t.Errorf("%q built %+v, which validCommand refuses: %v", args, cmd, err)
		}
	}
}

// COMMAND INFO reports what Redis reports for each key-space command:
// arity, flags, first key, last key, step. Client libraries route by it.
func TestCommandInfoOfTheKeySpace(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	info := func(name string, arity int, flags []string, first, last, step int, cats string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "*1\r\n*10\r\n%s:%d\r\n*%d\r\n", bulk(name), arity, len(flags))
		for _, f := range flags {
			b.WriteString("+" + f + "\r\n")
		}
		fmt.Fprintf(&b, ":%d\r\n:%d\r\n:%d\r\n*%d\r\n", first, last, step, len(strings.Fields(cats)))
		for _, c := range strings.Fields(cats) {
			b.WriteString("+" + c + "\r\n")
		}
		b.WriteString("*0\r\n*0\r\n*0\r\n")
		return b.String()
	}
	w, wf, rf := []string{"write"}, []string{"write", "fast"}, []string{"readonly", "fast"}
	tx := []string{"noscript", "loading", "stale", "fast", "allow_busy"}
	// The ACL categories are Redis's, without @string (lockd has one type).
	for _, want := range []struct {
		name        string
		arity       int
		flags       []string
		first, last int
		cats        string
	}{
		{"set", -3, []string{"write", "denyoom"}, 1, 1, "@write @slow"}, {"setnx", 3, []string{"write", "denyoom", "fast"}, 1, 1, "@write @fast"},
		{"get", 2, rf, 1, 1, "@read @fast"}, {"mget", -2, rf, 1, -1, "@read @fast"}, {"del", -2, w, 1, -1, "@keyspace @write @slow"},
		{"unlink", -2, wf, 1, -1, "@keyspace @write @fast"}, {"exists", -2, rf, 1, -1, "@keyspace @read @fast"},
		{"expire", -3, wf, 1, 1, "@keyspace @write @fast"}, {"pexpire", -3, wf, 1, 1, "@keyspace @write @fast"},
		{"expireat", -3, wf, 1, 1, "@keyspace @write @fast"}, {"pexpireat", -3, wf, 1, 1, "@keyspace @write @fast"},
		{"ttl", 2, rf, 1, 1, "@keyspace @read @fast"}, {"pttl", 2, rf, 1, 1, "@keyspace @read @fast"},
		{"expiretime", 2, rf, 1, 1, "@keyspace @read @fast"}, {"pexpiretime", 2, rf, 1, 1, "@keyspace @read @fast"},
		{"persist", 2, wf, 1, 1, "@keyspace @write @fast"}, {"type", 2, rf, 1, 1, "@keyspace @read @fast"},
		{"delex", -2, wf, 1, 1, "@keyspace @write @fast"}, {"delifeq", 3, wf, 1, 1, "@keyspace @write @fast"},
		{"scan", -2, []string{"readonly"}, 0, 0, "@keyspace @read @slow"}, {"keys", 2, []string{"readonly"}, 0, 0, "@keyspace @read @slow @dangerous"},
		{"multi", 1, tx, 0, 0, "@fast @transaction"}, {"exec", 1, []string{"noscript", "loading", "stale", "skip_slowlog"}, 0, 0, "@slow @transaction"},
		{"discard", 1, tx, 0, 0, "@fast @transaction"}, {"watch", -2, tx, 1, -1, "@fast @transaction"}, {"unwatch", 1, tx, 0, 0, "@fast @transaction"},
	} {
		c.expect(info(want.name, want.arity, want.flags, want.first, want.last, min(want.first, 1), want.cats), "COMMAND", "INFO", want.name)
	}
}
