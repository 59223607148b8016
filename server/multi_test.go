package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

const (
	queued    = "+QUEUED\r\n"
	execAbort = "-EXECABORT Transaction discarded because of previous errors.\r\n"
	notInTx   = "-ERR Command not allowed inside a transaction: lockd queues only key-space and lock commands\r\n"
)

func TestMultiFollowsRedis(t *testing.T) {
	srv := keySpaceServer(t)
	runScenarios(t, srv, []scenario{
		{"commands are queued, then run in order by EXEC", []step{
			do(okReply, "MULTI"),
			do(queued, "SET", "m1", "a"),
			do(queued, "GET", "m1"),
			do(queued, "SET", "m1", "b", "GET"),
			do(queued, "EXISTS", "m1", "nosuch"),
			do("*4\r\n"+okReply+bulk("a")+bulk("a")+integer(1), "EXEC"),
			do(bulk("b"), "GET", "m1"),
		}},
		{"an empty transaction answers an empty array", []step{
			do(okReply, "MULTI"),
			do("*0\r\n", "EXEC"),
		}},
		{"MULTI cannot be nested, and the transaction goes on", []step{
			do(okReply, "MULTI"),
			do("-ERR MULTI calls can not be nested\r\n", "MULTI"),
			do(queued, "SET", "m2", "a"),
			do("*1\r\n"+okReply, "EXEC"),
		}},
		{"EXEC and DISCARD without MULTI", []step{
			do("-ERR EXEC without MULTI\r\n", "EXEC"),
			do("-ERR DISCARD without MULTI\r\n", "DISCARD"),
		}},
		{"DISCARD drops the queued commands", []step{
			do(okReply, "MULTI"),
			do(queued, "SET", "m3", "a"),
			do(okReply, "DISCARD"),
			do(nullReply, "GET", "m3"),
			do("-ERR EXEC without MULTI\r\n", "EXEC"),
		}},
		{"WATCH inside MULTI is refused, and the transaction goes on", []step{
			do(okReply, "MULTI"),
			do("-ERR WATCH inside MULTI is not allowed\r\n", "WATCH", "m4"),
			do(queued, "SET", "m4", "a"),
			do("*1\r\n"+okReply, "EXEC"),
		}},
		{"an error while queueing discards the transaction at EXEC", []step{
			do(okReply, "MULTI"),
			do(queued, "SET", "m5", "a"),
			do("-ERR unknown command 'INCR', with args beginning with: 'm5' \r\n", "INCR", "m5"),
			do(arityErr("set"), "SET", "m5"),
			do(syntaxErr, "SET", "m5", "b", "NX", "XX"), // Redis finds this at EXEC; lockd at once
			do(execAbort, "EXEC"),
			do(nullReply, "GET", "m5"),
			do("-ERR EXEC without MULTI\r\n", "EXEC"),
		}},
		{"a command that is not a key-space or lock command is refused inside MULTI", []step{
			do(okReply, "MULTI"),
			do(notInTx, "PING"),
			do(notInTx, "SCAN", "0"),
			do(queued, "SET", "m6", "a"),
			do(execAbort, "EXEC"),
			do(nullReply, "GET", "m6"),
		}},
		{"UNWATCH is queued and answers OK", []step{
			do(okReply, "MULTI"),
			do(queued, "UNWATCH"),
			do(queued, "SET", "m7", "a"),
			do("*2\r\n"+okReply+okReply, "EXEC"),
		}},
	})

	t.Run("lock commands' replies", func(t *testing.T) {
		c := dial(t, srv)
		c.run(do(okReply, "MULTI"), do(queued, "LOCK", "m9", "alice", "PX", "60000"), do(queued, "LOCK", "m9", "bob"),
			do(queued, "LOCKINFO", "m9"), do(queued, "UNLOCK", "m9", "alice"))
		v, ok := c.value("EXEC").([]any)
		if !ok || len(v) != 4 {
			t.Fatalf("EXEC = %#v", v)
		}
		tok, _ := v[0].(int64)
		info, _ := v[2].([]any)
		if tok <= 0 || v[1] != nil || len(info) != 3 || info[0] != "alice" || info[1] != tok || info[2] != int64(60000) || v[3] != int64(1) {
			t.Fatalf("EXEC = %#v; want [token, nil, [alice token 60000], 1]", v)
		}
		c.value("HELLO", "3")
		c.run(do(okReply, "MULTI"), do(queued, "LOCK", "m9", "carol"), do(queued, "LOCKINFO", "m9"))
		v, _ = c.value("EXEC").([]any)
		if m, ok := v[1].(map[string]any); len(v) != 2 || !ok || m["owner"] != "carol" || m["ttl_ms"] != int64(-1) {
			t.Fatalf("EXEC under RESP3 = %#v; want LOCKINFO as a map", v)
		}
	})

	t.Run("LOCK ... WAIT inside MULTI does not wait", func(t *testing.T) {
		c := dial(t, srv)
		c.int("LOCK", "w1", "bob")
		c.run(do(okReply, "MULTI"), do(queued, "LOCK", "w1", "alice", "WAIT", "600000"), do("*1\r\n"+nullReply, "EXEC"))
		if n := srv.Node().Table().Waiting(); n != 0 {
			t.Fatalf("%d requests wait after the transaction", n)
		}
	})

	t.Run("a transaction has at most 1024 commands", func(t *testing.T) {
		c := dial(t, srv)
		var b strings.Builder
		b.WriteString(encode("MULTI"))
		for i := range maxTxCommands + 1 {
			b.WriteString(encode("SET", fmt.Sprint("big", i), "v"))
		}
		c.send(b.String())
		c.run() // nothing to send: read the replies
		if got := c.reply(); got != okReply {
			t.Fatalf("MULTI: %q", got)
		}
		for i := range maxTxCommands {
			if got := c.reply(); got != queued {
				t.Fatalf("command %d: %q", i, got)
			}
		}
		if got := c.reply(); !strings.HasPrefix(got, "-ERR transaction too big") {
			t.Fatalf("command %d: %q; want too big", maxTxCommands, got)
		}
		c.run(do(execAbort, "EXEC"), do(integer(0), "EXISTS", "big0"))
	})

	t.Run("QUIT inside MULTI closes the connection", func(t *testing.T) {
		c := dial(t, srv)
		c.run(do(okReply, "MULTI"), do(queued, "SET", "q1", "v"), do(okReply, "QUIT"))
		c.expectClosed()
		dial(t, srv).expect(nullReply, "GET", "q1")
	})
}

func TestWatch(t *testing.T) {
	srv := keySpaceServer(t)
	for _, proto := range []string{"2", "3"} {
		aborted := map[string]string{"2": "*-1\r\n", "3": "_\r\n"}[proto]
		t.Run("RESP"+proto, func(t *testing.T) {
			c, other := dial(t, srv), dial(t, srv)
			c.value("HELLO", proto)
			k := "w" + proto
			c.run(do(okReply, "SET", k, "a"), do(okReply, "WATCH", k))
			other.run(do(okReply, "SET", k, "b"))
			c.run(do(okReply, "MULTI"), do(queued, "SET", k, "c"), do(aborted, "EXEC"), do(bulk("b"), "GET", k))

			// EXEC forgot the watch: the next transaction runs.
			other.run(do(okReply, "SET", k, "d"))
			c.run(do(okReply, "MULTI"), do(queued, "SET", k, "e"), do("*1\r\n"+okReply, "EXEC"))

			// A watched key that did not change lets EXEC run.
			c.run(do(okReply, "WATCH", k, "nosuch"+proto), do(okReply, "MULTI"), do(queued, "GET", k), do("*1\r\n"+bulk("e"), "EXEC"))

			// A key created after WATCH saw it absent aborts EXEC.
			c.run(do(okReply, "WATCH", "new"+proto))
			other.run(do(okReply, "SET", "new"+proto, "x"))
			c.run(do(okReply, "MULTI"), do(queued, "DEL", "new"+proto), do(aborted, "EXEC"), do(integer(1), "EXISTS", "new"+proto))

			// A key deleted after WATCH aborts EXEC.
			c.run(do(okReply, "WATCH", k))
			other.run(do(integer(1), "DEL", k))
			c.run(do(okReply, "MULTI"), do(queued, "SET", k, "f"), do(aborted, "EXEC"), do(map[string]string{"2": nullReply, "3": "_\r\n"}[proto], "GET", k))

			// UNWATCH and DISCARD forget the watches.
			c.run(do(okReply, "WATCH", k), do(okReply, "UNWATCH"))
			other.run(do(okReply, "SET", k, "g"))
			c.run(do(okReply, "MULTI"), do(queued, "SET", k, "h"), do("*1\r\n"+okReply, "EXEC"))
			c.run(do(okReply, "WATCH", k), do(okReply, "MULTI"), do(okReply, "DISCARD"))
			other.run(do(okReply, "SET", k, "i"))
			c.run(do(okReply, "MULTI"), do(queued, "SET", k, "j"), do("*1\r\n"+okReply, "EXEC"))
		})
	}
	t.Run("a watched key whose lease runs out aborts EXEC", func(t *testing.T) {
		c := dial(t, srv)
		c.run(do(okReply, "SET", "exp", "v", "PX", "100"), do(okReply, "WATCH", "exp"))
		poll(t, "the lease to run out", func() bool { return c.do("EXISTS", "exp") == integer(0) })
		c.run(do(okReply, "MULTI"), do(queued, "SET", "exp", "w"), do("*-1\r\n", "EXEC"))
	})
	t.Run("errors", func(t *testing.T) {
		c := dial(t, srv)
		c.run(do(arityErr("watch"), "WATCH"), do(badNameErr, "WATCH", "ok", ""), do(arityErr("unwatch"), "UNWATCH", "x"))
		watch := func(from, to int) []string {
			keys := []string{"WATCH"}
			for i := from; i < to; i++ {
				keys = append(keys, fmt.Sprint("k", i))
			}
			return keys
		}
		c.run(do(okReply, watch(0, 1000)...), do(okReply, watch(0, 1000)...), // watching a key again adds nothing
			do(fmt.Sprintf("-ERR too many watched keys: at most %d keys and %d bytes of names\r\n", maxWatched, maxWatchBytes), watch(1000, 1025)...),
			do(okReply, watch(1000, 1024)...))
	})
}

// go-redis's transactions, as applications use them.
func TestGoRedisTransactions(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprint("RESP", proto), func(t *testing.T) {
			rdb := newRedis(t, srv, func(o *redis.Options) { o.Protocol = proto })
			other := newRedis(t, srv)
			k := fmt.Sprint("tx", proto)

			var set *redis.StatusCmd
			var get *redis.StringCmd
			var exp *redis.BoolCmd
			_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				set = p.Set(ctx, k, "1", 0)
				get = p.Get(ctx, k)
				exp = p.Expire(ctx, k, 60_000_000_000)
				return nil
			})
			if err != nil || set.Val() != "OK" || get.Val() != "1" || !exp.Val() {
				t.Fatalf("TxPipelined: %v; %v %v %v", err, set, get, exp)
			}

			// Check-and-set with WATCH: another client's write in between
			// makes EXEC fail, and the function is run again.
			tries := 0
			update := func(tx *redis.Tx) error {
				tries++
				v, err := tx.Get(ctx, k).Result()
				if err != nil {
					return err
				}
				if tries == 1 {
					if err := other.Set(ctx, k, v+"-other", 0).Err(); err != nil {
						return err
					}
				}
				_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, k, v+"-mine", 0)
					return nil
				})
				return err
			}
			if err := rdb.Watch(ctx, update, k); !errors.Is(err, redis.TxFailedErr) {
				t.Fatalf("Watch with a write in between: %v; want %v", err, redis.TxFailedErr)
			}
			if err := rdb.Watch(ctx, update, k); err != nil {
				t.Fatalf("Watch again: %v", err)
			}
			if v := rdb.Get(ctx, k).Val(); v != "1-other-mine" {
				t.Fatalf("after the second try: %q", v)
			}
		})
	}
}

// A pipeline holding a transaction: MULTI's commands are queued, not sent
// in a wave, and the pipeline's order holds.
func TestPipelinedTransaction(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	c.send(encode("SET", "pt1", "a") + encode("SET", "pt2", "a") + encode("MULTI") + encode("SET", "pt1", "b") +
		encode("GET", "pt1") + encode("EXEC") + encode("SET", "pt2", "c") + encode("MGET", "pt1", "pt2"))
	for _, want := range []string{okReply, okReply, okReply, queued, queued, "*2\r\n" + okReply + bulk("b"), okReply,
		"*2\r\n" + bulk("b") + bulk("c")} {
		if got := c.reply(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}
