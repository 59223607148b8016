package integration

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The key space through a follower of a three-node cluster, across the
// leader's death: a key set through a follower keeps its value and a lease
// no longer than it had (and no shorter than it had left) on the new
// leader; then redis-cli drives it as it would drive Redis.
func TestKeySpaceAcrossFailover(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	f := c.others(lead)[0]
	rdb := c.client(f)

	// redis-py's and go-redsync's lock, through a follower.
	if ok, err := rdb.SetNX(ctx, "orders-42", "token-1", 30*time.Second).Result(); err != nil || !ok {
		t.Fatalf("SET NX PX through follower %d: %v, %v", f, ok, err)
	}
	if ok, err := rdb.SetNX(ctx, "orders-42", "token-2", 30*time.Second).Result(); err != nil || ok {
		t.Fatalf("second SET NX PX: %v, %v; want not set", ok, err)
	}
	if v, err := rdb.Get(ctx, "orders-42").Result(); err != nil || v != "token-1" {
		t.Fatalf("GET through the follower right after its SET: %q, %v", v, err)
	}
	if ok, err := rdb.Expire(ctx, "orders-42", 20*time.Second).Result(); err != nil || !ok {
		t.Fatalf("EXPIRE through follower: %v, %v", ok, err)
	}
	expired := time.Now()
	if err := rdb.Set(ctx, "gone", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Del(ctx, "gone", "nosuch").Result(); err != nil || n != 1 {
		t.Fatalf("DEL through follower: %d, %v", n, err)
	}
	// A transaction through the follower: the leader checks what it forwards.
	var get *redis.StringCmd
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "tx", "1", time.Minute)
		get = p.Get(ctx, "orders-42")
		return nil
	}); err != nil || get.Val() != "token-1" {
		t.Fatalf("MULTI/EXEC through follower: %v, %v", err, get)
	}

	killed := time.Now()
	c.kill(lead)
	rest := c.others(lead)
	newLead := c.waitLeader(5*time.Second, rest)
	t.Logf("new leader %d after %v", newLead, time.Since(killed))
	nl := c.client(newLead)
	if v, err := nl.Get(ctx, "orders-42").Result(); err != nil || v != "token-1" {
		t.Fatalf("GET on the new leader: %q, %v", v, err)
	}
	ms, err := nl.PTTL(ctx, "orders-42").Result()
	if err != nil || ms <= 0 || ms > 20*time.Second || ms < 20*time.Second-time.Since(expired) {
		t.Fatalf("PTTL on the new leader: %v, %v; want at most 20s and at least 20s less the %v since EXPIRE", ms, err, time.Since(expired))
	}
	if n, err := nl.Exists(ctx, "gone", "tx").Result(); err != nil || n != 1 {
		t.Fatalf("EXISTS gone tx on the new leader: %d, %v; want 1", n, err)
	}
	if err := nl.Get(ctx, "gone").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET of the deleted key: %v", err)
	}

	t.Run("redis-cli", func(t *testing.T) {
		cli := needRedisCLI(t)
		host, port, _ := strings.Cut(c.nodes[rest[0]].client, ":")
		run := func(args ...string) string {
			t.Helper()
			return strings.TrimSpace(runTool(t, nil, false, cli, append([]string{"-h", host, "-p", port}, args...)...))
		}
		if out := run("SET", "cli", "me", "NX", "EX", "100"); out != "OK" {
			t.Fatalf("redis-cli SET printed %q", out)
		}
		if out := run("SET", "cli", "you", "NX"); out != "" {
			t.Fatalf("redis-cli SET NX of a held key printed %q; want an empty line (null)", out)
		}
		if out := run("GET", "cli"); out != "me" {
			t.Fatalf("redis-cli GET printed %q", out)
		}
		if s, err := strconv.Atoi(run("TTL", "cli")); err != nil || s <= 90 || s > 100 {
			t.Fatalf("redis-cli TTL printed %d, %v", s, err)
		}
		if out := run("DEL", "cli"); out != "1" {
			t.Fatalf("redis-cli DEL printed %q", out)
		}
		if out := run("-3", "GET", "cli"); out != "" {
			t.Fatalf("redis-cli -3 GET of a deleted key printed %q", out)
		}
	})
}
