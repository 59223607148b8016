package server

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

const (
	casRelease = `if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end`
	noScript   = "-NOSCRIPT No matching script. Please use EVAL.\r\n"
)

func TestEvalFollowsRedis(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	c.run(
		do(okReply, "SET", "k", "me", "PX", "30000"),
		do(integer(0), "EVAL", casRelease, "1", "k", "someone"),
		do(bulk("me"), "GET", "k"),
		do(integer(1), "EVAL", casRelease, "1", "k", "me"),
		do(nullReply, "GET", "k"),
		// Lua to RESP: numbers truncate, true is 1, false and nil are null,
		// tables are arrays up to the first nil, ok/err fields are status/error.
		do(integer(3), "EVAL", "return 3.99", "0"),
		do(integer(1), "EVAL", "return true", "0"),
		do(nullReply, "EVAL", "return false", "0"),
		do("*3\r\n:1\r\n$1\r\na\r\n*1\r\n:2\r\n", "EVAL", "return {1,'a',{2},nil,4}", "0"),
		do("+fine\r\n", "EVAL", "return redis.status_reply('fine')", "0"),
		do("-MYERR custom\r\n", "EVAL", "return redis.error_reply('MYERR custom')", "0"),
		do("*2\r\n$2\r\nk1\r\n$2\r\na1\r\n", "EVAL", "return {KEYS[1], ARGV[1]}", "1", "k1", "a1"),
		do(bulk(shaOf("abc def")), "EVAL", "return redis.sha1hex('abc def')", "0"),
		// Replies of redis.call to Lua: null is false, status is {ok=...}.
		do(bulk("boolean"), "EVAL", "return type(redis.call('get', KEYS[1]))", "1", "nope"),
		do(bulk("OK"), "EVAL", "return redis.call('set', KEYS[1], 'v')['ok']", "1", "k2"),
		do("-ERR Number of keys can't be greater than number of args\r\n", "EVAL", "return 1", "2", "a"),
		do("-ERR Number of keys can't be negative\r\n", "EVAL", "return 1", "-1"),
		do(notIntErr, "EVAL", "return 1", "x"),
	)
}

// An unknown SHA is answered exactly as Redis does, so that clients fall
// back to EVAL; a script EVAL ran or SCRIPT LOAD loaded is known after.
func TestEvalSHAAndScriptLoad(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	sha := "3b6c0e6e2d6f0a7a6f0a1e1e4e4bca43e1eb0d10"
	c.run(
		do(noScript, "EVALSHA", sha, "0"),
		do(bulk(shaOf("return 'loaded'")), "SCRIPT", "LOAD", "return 'loaded'"),
		do(bulk("loaded"), "EVALSHA", shaOf("return 'loaded'"), "0"),
		do(bulk("loaded"), "EVALSHA", strings.ToUpper(shaOf("return 'loaded'")), "0"),
		do("*2\r\n:1\r\n:0\r\n", "SCRIPT", "EXISTS", shaOf("return 'loaded'"), sha),
		do(noScript, "EVALSHA", shaOf("return 'by eval'"), "0"),
		do(bulk("by eval"), "EVAL", "return 'by eval'", "0"),
		do(bulk("by eval"), "EVALSHA", shaOf("return 'by eval'"), "0"),
		do(okReply, "SCRIPT", "FLUSH"),
		do(noScript, "EVALSHA", shaOf("return 'by eval'"), "0"),
		do("-NOTBUSY No scripts in execution right now.\r\n", "SCRIPT", "KILL"),
	)
	// go-redis's Script.Run sends EVALSHA, then EVAL on NOSCRIPT.
	rdb := newRedis(t, srv)
	s := redis.NewScript("return ARGV[1] .. '!'")
	if v, err := s.Run(context.Background(), rdb, nil, "hi").Text(); v != "hi!" || err != nil {
		t.Fatalf("Script.Run = %q, %v", v, err)
	}
}

func shaOf(body string) string {
	return fmt.Sprintf("%x", sha1Sum(body))
}

// Every bad script, call or budget is an -ERR, and a failed script leaves
// none of its writes behind: scripts are all or nothing.
func TestBadScriptsChangeNothing(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	c.run(do(okReply, "SET", "k", "before"))
	for _, tc := range []struct {
		name, body, want string
	}{
		{"syntax error", "return (", "ERR Error compiling script"},
		{"runtime error", "redis.call('set', KEYS[1], 'x') error('boom')", "boom"},
		{"unknown command", "redis.call('set', KEYS[1], 'x') return redis.call('incr', KEYS[1])", "Unknown Redis command called from script"},
		{"wrong arity", "redis.call('set', KEYS[1], 'x') return redis.call('get')", "Wrong number of args calling Redis command from script"},
		{"a table as an argument", "redis.call('set', KEYS[1], 'x') return redis.call('get', {})", "Lua redis lib command arguments must be strings or integers"},
		{"a command error", "redis.call('set', KEYS[1], 'x') return redis.call('set', KEYS[1], 'x', 'PX', '-1')", "invalid expire time"},
		{"not allowed in scripts", "return redis.call('lock', KEYS[1], 'me')", "not allowed from script"},
		{"an endless loop", "redis.call('set', KEYS[1], 'x') while true do end", "ERR"},
		{"endless recursion", "redis.call('set', KEYS[1], 'x') local function f() return f() + 1 end return f()", "ERR"},
		{"a global write", "redis.call('set', KEYS[1], 'x') x = 1", "ERR"},
		{"a value too long", "return redis.call('set', KEYS[1], string.rep('v', 100000))", "invalid owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := c.do("EVAL", tc.body, "1", "k")
			if !strings.HasPrefix(got, "-") || !strings.Contains(got, tc.want) {
				t.Fatalf("EVAL %q = %q; want an error with %q", tc.body, got, tc.want)
			}
			c.expect(bulk("before"), "GET", "k")
		})
	}
	c.expect(bulk("ERR This Redis command is not allowed from script"), "EVAL", "return redis.pcall('eval', 'return 1', '0')['err']", "0")
}

// Scripts that read a key and write it again, sent by many clients at once,
// lose no update: a script's effects apply only over what it read.
func TestConcurrentScriptsAreAtomic(t *testing.T) {
	srv := startServer(t)
	rdb := newRedis(t, srv)
	ctx := context.Background()
	appendX := redis.NewScript(`local v = redis.call('get', KEYS[1]) or '' redis.call('set', KEYS[1], v .. 'x') return #v + 1`)
	const clients, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := appendX.Run(ctx, rdb, []string{"counter"}).Err(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, "counter").Result(); len(v) != clients*each || err != nil {
		t.Fatalf("after %d appends the value has %d bytes (%v); updates were lost", clients*each, len(v), err)
	}
}

func TestEvalRO(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	c.run(
		do(okReply, "SET", "k", "v"),
		do(bulk("v"), "EVAL_RO", "return redis.call('get', KEYS[1])", "1", "k"),
		do(bulk("v"), "EVALSHA_RO", shaOf("return redis.call('get', KEYS[1])"), "1", "k"),
	)
	got := c.do("EVAL_RO", "return redis.call('del', KEYS[1])", "1", "k")
	if !strings.Contains(got, "Write commands are not allowed from read-only scripts") {
		t.Fatalf("a write in EVAL_RO = %q", got)
	}
	c.expect(bulk("v"), "GET", "k")
}

// Replies as go-redis sees them, RESP2 and RESP3.
func TestEvalThroughGoRedis(t *testing.T) {
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprint("RESP", proto), func(t *testing.T) {
			srv := startServer(t)
			rdb := newRedis(t, srv, func(o *redis.Options) { o.Protocol = proto })
			ctx := context.Background()
			if err := rdb.Set(ctx, "k", "me", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if n, err := rdb.Eval(ctx, casRelease, []string{"k"}, "me").Int64(); n != 1 || err != nil {
				t.Fatalf("release = %d, %v", n, err)
			}
			if _, err := rdb.Eval(ctx, "return redis.call('get', KEYS[1])", []string{"k"}).Result(); !errors.Is(err, redis.Nil) {
				t.Fatalf("a null reply = %v; want redis.Nil", err)
			}
		})
	}
}

func sha1Sum(s string) [20]byte { return sha1.Sum([]byte(s)) }
