package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// asUser returns a go-redis client of node i authenticated as user.
func (c *cluster) asUser(i int, user, pass string) *redis.Client {
	c.t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: c.nodes[i].client, Username: user, Password: pass, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 5 * time.Second, PoolSize: 2})
	c.t.Cleanup(func() { rdb.Close() })
	return rdb
}

// lockerEnforced reports whether node i lets user locker (password pw)
// lock orders:* and refuses it users:* with -NOPERM; the error says why
// not.
func lockerEnforced(ctx context.Context, c *cluster, i int) error {
	rdb := c.asUser(i, "locker", "pw")
	if tok, err := lockCmd(ctx, rdb, fmt.Sprintf("orders:%d", i), "svc", "PX", 60000); err != nil || tok <= 0 {
		return fmt.Errorf("node %d: LOCK orders:%d as locker = %d, %v", i, i, tok, err)
	}
	_, err := lockCmd(ctx, rdb, "users:1", "svc")
	if err == nil || err.Error() != "NOPERM No permissions to access a key" {
		return fmt.Errorf("node %d: LOCK users:1 as locker = %v, want NOPERM", i, err)
	}
	if err := rdb.Get(ctx, "orders:1").Err(); err == nil || err.Error() != "NOPERM User locker has no permissions to run the 'get' command" {
		return fmt.Errorf("node %d: GET as locker = %v, want NOPERM", i, err)
	}
	return nil
}

// TestACLUsersAreClusterState: an ACL SETUSER on a follower reaches every
// node through the log, a node that was down gets it from a snapshot, and
// every node still enforces it after all of them restart; an ACL DELUSER
// closes the user's connections on every node.
func TestACLUsersAreClusterState(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{password: "secret", extra: []string{"--snapshot-entries", "20"}})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	f, down := c.others(lead)[0], c.others(lead)[1]
	c.kill(down)

	if err := c.client(f).Do(ctx, "ACL", "SETUSER", "locker", "on", ">pw", "~orders:*", "-@all", "+@lock").Err(); err != nil {
		t.Fatalf("ACL SETUSER on follower %d: %v", f, err)
	}
	for _, i := range []int{lead, f} {
		poll(t, 10*time.Second, fmt.Sprintf("node %d to enforce locker", i), func() bool { return lockerEnforced(ctx, c, i) == nil })
	}
	for i := range 100 { // more entries than --snapshot-entries: the log before them goes
		if _, err := lockCmd(ctx, c.client(lead), fmt.Sprintf("bulk-%d", i), "o"); err != nil {
			t.Fatal(err)
		}
	}
	c.start(down)
	poll(t, 30*time.Second, fmt.Sprintf("node %d to catch up", down), func() bool {
		v, err := c.client(down).Do(ctx, "DBSIZE").Int64()
		return err == nil && v >= 100
	})
	if b, _ := readFile(c.nodes[down].logPath); !strings.Contains(b, "installed snapshot") {
		t.Fatalf("node %d caught up without a snapshot; the test did not test users in a snapshot", down)
	}
	if err := lockerEnforced(ctx, c, down); err != nil {
		t.Fatal(err)
	}

	for i := 1; i <= 3; i++ {
		c.term(i)
	}
	for i := 1; i <= 3; i++ {
		c.start(i)
	}
	c.waitLeader(10*time.Second, nil)
	for i := 1; i <= 3; i++ {
		poll(t, 10*time.Second, fmt.Sprintf("node %d to enforce locker after the restart", i), func() bool {
			err := lockerEnforced(ctx, c, i)
			if err != nil && strings.Contains(err.Error(), "WRONGPASS") {
				t.Fatalf("the user was lost in the restart: %v", err)
			}
			return err == nil
		})
	}

	// An idle connection as locker on each node is closed by ACL DELUSER.
	var conns []*bufio.Reader
	for i := 1; i <= 3; i++ {
		nc, err := net.DialTimeout("tcp", c.nodes[i].client, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		rd := bufio.NewReader(nc)
		nc.Write([]byte(encodeRESP("AUTH", "locker", "pw")))
		if line, _ := rd.ReadString('\n'); line != "+OK\r\n" {
			t.Fatalf("AUTH locker on node %d: %q", i, line)
		}
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		conns = append(conns, rd)
	}
	if n, err := c.client(f).Do(ctx, "ACL", "DELUSER", "locker").Int64(); err != nil || n != 1 {
		t.Fatalf("ACL DELUSER locker = %d, %v", n, err)
	}
	for i, rd := range conns {
		if _, err := rd.ReadByte(); err == nil || strings.Contains(err.Error(), "timeout") {
			t.Fatalf("node %d: the deleted user's connection is still open (%v)", i+1, err)
		}
	}
}

// TestACLWithRedisCLI: redis-cli's --user and --pass (AUTH user pass), on a
// follower.
func TestACLWithRedisCLI(t *testing.T) {
	cli := needRedisCLI(t)
	c, f, host, port := followerCluster(t)
	ctx := context.Background()
	if err := c.client(f).Do(ctx, "ACL", "SETUSER", "monitor", "on", ">pw", "%R~*", "-@all", "+@read", "+ping").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.client(f).Set(ctx, "orders:1", "worker-7", 0).Err(); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		base := []string{"-h", host, "-p", port, "--user", "monitor", "--pass", "pw", "--no-auth-warning"}
		return strings.TrimSpace(runTool(t, nil, true, cli, append(base, args...)...))
	}
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"GET", "orders:1"}, "worker-7"},
		{[]string{"ACL", "WHOAMI"}, "NOPERM User monitor has no permissions to run the 'acl|whoami' command"},
		{[]string{"SET", "orders:1", "x"}, "NOPERM User monitor has no permissions to run the 'set' command"},
		{[]string{"LOCK", "orders:2", "x"}, "NOPERM User monitor has no permissions to run the 'lock' command"},
		{[]string{"OWNER", "orders:1"}, "worker-7"},
	} {
		if got := run(step.args...); !strings.HasSuffix(got, step.want) {
			t.Fatalf("redis-cli --user monitor %q printed %q; want %q", step.args, got, step.want)
		}
	}
}

// TestACLChannelsAcrossTheCluster: channel permissions set on one node
// hold on the others, with go-redis: a subscriber on a follower hears a
// channel it may hear, is refused one it may not, and is disconnected
// when a third node takes the channel away.
func TestACLChannelsAcrossTheCluster(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{password: "secret"})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	f1, f2 := c.others(lead)[0], c.others(lead)[1]
	if err := c.client(f1).Do(ctx, "ACL", "SETUSER", "listener", "on", ">pw", "&news", "+subscribe", "+unsubscribe", "+ping").Err(); err != nil {
		t.Fatalf("ACL SETUSER on node %d: %v", f1, err)
	}
	rdb := c.asUser(f2, "listener", "pw")
	poll(t, 10*time.Second, fmt.Sprintf("node %d to know listener", f2), func() bool { return rdb.Ping(ctx).Err() == nil })

	refused := rdb.Subscribe(ctx, "sports")
	if _, err := refused.Receive(ctx); err == nil || err.Error() != "NOPERM No permissions to access a channel" {
		t.Fatalf("SUBSCRIBE sports as listener: %v; want NOPERM", err)
	}
	refused.Close()

	sub := rdb.Subscribe(ctx, "news")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("SUBSCRIBE news: %v", err)
	}
	if err := c.client(lead).Publish(ctx, "news", "first").Err(); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if m, err := sub.ReceiveMessage(rctx); err != nil || m.Payload != "first" {
		t.Fatalf("the message on news: %v, %v", m, err)
	}

	if err := c.client(lead).Do(ctx, "ACL", "SETUSER", "listener", "resetchannels").Err(); err != nil {
		t.Fatal(err)
	}
	// Node f2 applies the change and closes the subscriber's connection:
	// go-redis's Receive sees the connection end.
	_, err := sub.ReceiveTimeout(rctx, 10*time.Second)
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("the subscriber after losing news: %v; want its connection closed", err)
	}
}
