package integration

import (
	"bufio"
	"context"
	"io"
	"net"
	"regexp"
	"testing"
	"time"
)

// TestMLockQueuedOnFollowerSurvivesLeaderKill: an MLOCK ... WAIT sent to a
// follower is queued in the replicated table, one of its names is freed
// (and so reserved for it), the leader is killed, and when the last name
// frees under the new leader the request is granted all its names at
// once, answered on the follower with both tokens.
func TestMLockQueuedOnFollowerSurvivesLeaderKill(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	f := c.others(lead)[0]
	holder := c.client(lead)
	for _, name := range []string{"m1", "m2"} {
		if tok, err := lockCmd(ctx, holder, name, "alice", "PX", 60000); tok <= 0 || err != nil {
			t.Fatalf("LOCK %s alice = %d, %v", name, tok, err)
		}
	}
	conn, err := net.DialTimeout("tcp", c.nodes[f].client, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(conn, encodeRESP("MLOCK", "2", "m1", "m2", "bob", "PX", "60000", "WAIT", "40000")); err != nil {
		t.Fatal(err)
	}
	waitWaiters(t, c.client(f), 2) // one request, in both queues
	if n, err := holder.Do(ctx, "UNLOCK", "m1", "alice").Int64(); n != 1 || err != nil {
		t.Fatalf("UNLOCK m1 alice = %d, %v", n, err)
	}
	if o, err := ownerOf(ctx, holder, "m1"); o != "" || err != nil {
		t.Fatalf("OWNER m1 reserved for bob = %q, %v; want none", o, err)
	}
	newLead := killLeader(t, c, f)
	// alice's UNLOCK of m2 under the new leader, again until it is known to
	// be done (a try whose outcome is unknown may have released it).
	rdb := c.client(newLead)
	poll(t, 10*time.Second, "UNLOCK m2 alice under the new leader", func() bool {
		if n, err := rdb.Do(ctx, "UNLOCK", "m2", "alice").Int64(); err == nil && n == 1 {
			return true
		}
		o, err := ownerOf(ctx, rdb, "m2")
		return err == nil && o != "alice"
	})
	r, err := readReply(bufio.NewReader(conn))
	if err != nil {
		t.Fatalf("bob's MLOCK on the follower: %v", err)
	}
	if !regexp.MustCompile(`^\[:[1-9][0-9]* :[1-9][0-9]*\]$`).MatchString(r) {
		t.Fatalf("bob's MLOCK on the follower = %q; want the array of his two tokens", r)
	}
	for _, name := range []string{"m1", "m2"} {
		if o, err := ownerOf(ctx, rdb, name); o != "bob" || err != nil {
			t.Errorf("OWNER %s = %q, %v; want bob", name, o, err)
		}
	}
}
