package integration

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Every node delivers each PUBLISH, and the keyspace notifications of its
// own apply, to its own subscribers: a subscriber on any node sees a
// message published on any other, and a lock granted on the leader and
// expiring there, in the same order as every other subscriber.
func TestPubSubAcrossNodes(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{extra: []string{"--notify-keyspace-events", "KEA"}})
	ctx := context.Background()
	leader := c.waitLeader(10*time.Second, nil)
	var subs []*redis.PubSub
	for i := 1; i <= 3; i++ {
		ps := c.client(i).Subscribe(ctx, "news")
		t.Cleanup(func() { ps.Close() })
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatalf("node %d: SUBSCRIBE: %v", i, err)
		}
		if err := ps.PSubscribe(ctx, "__keyevent@0__:*"); err != nil {
			t.Fatal(err)
		}
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatalf("node %d: PSUBSCRIBE: %v", i, err)
		}
		subs = append(subs, ps)
	}
	follower := leader%3 + 1
	// PUBLISH answers the receivers on the node that answers it: one.
	if n, err := c.client(follower).Publish(ctx, "news", "first").Result(); err != nil || n != 1 {
		t.Fatalf("PUBLISH on node %d = %d, %v; want 1 (its own subscriber)", follower, n, err)
	}
	if _, err := lockCmd(ctx, c.client(leader), "job", "me", "PX", 200); err != nil {
		t.Fatal(err)
	}
	if err := c.client(leader).Publish(ctx, "news", "second").Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"news first", "__keyevent@0__:grant job", "news second", "__keyevent@0__:expired job"}
	for i, ps := range subs {
		var got []string
		for len(got) < len(want) {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			m, err := ps.ReceiveMessage(rctx)
			cancel()
			if err != nil {
				t.Fatalf("node %d: after %q: %v", i+1, got, err)
			}
			got = append(got, m.Channel+" "+m.Payload)
		}
		if !slices.Equal(got, want) {
			t.Errorf("node %d received %q, want %q", i+1, got, want)
		}
	}
}

// redis-py and ioredis subscribe on one node while the script publishes
// and locks through another.
func TestPubSubClients(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{extra: []string{"--notify-keyspace-events", "Egx"}})
	leader := c.waitLeader(10*time.Second, nil)
	follower := leader%3 + 1
	sh, sp, _ := strings.Cut(c.nodes[follower].client, ":")
	ph, pp, _ := strings.Cut(c.nodes[leader].client, ":")
	check := func(t *testing.T, out, from string) {
		t.Helper()
		want := "confirmed 2\nmessage news hello from " + from + "\nevent __keyevent@0__:grant\nevent __keyevent@0__:expired\ndone ok\n"
		if out != want {
			t.Fatalf("got:\n%s\nwant:\n%s", out, want)
		}
	}
	t.Run("redis-py", func(t *testing.T) {
		needRedisPy(t)
		script, _ := filepath.Abs(filepath.Join("clients", "pubsub_check.py"))
		out := runTool(t, nil, false, redisPyPython, script, sh, sp, ph, pp, "py-job")
		check(t, out, "py")
	})
	t.Run("ioredis", func(t *testing.T) {
		node := needIoredis(t)
		script, _ := filepath.Abs(filepath.Join("clients", "pubsub_check.js"))
		out := runTool(t, nil, false, node, script, sh, sp, ph, pp, "io-job")
		check(t, out, "io")
	})
}
