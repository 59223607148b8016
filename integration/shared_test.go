package integration

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSharedWaiterSurvivesLeaderKill: a reader queued (RWLOCK ... READ
// WAIT) through a follower behind a writer is granted, with a later token,
// when the writer releases after the leader was killed: the queue is in
// the replicated table, not on the leader. A semaphore waiter queued the
// same way is granted too.
func TestSharedWaiterSurvivesLeaderKill(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	rest := c.others(lead)
	f := rest[0]
	holder := c.client(rest[1])
	wtok, err := holder.Do(ctx, "RWLOCK", "rw", "writer", "WRITE", "PX", 60000).Int64()
	if err != nil || wtok <= 0 {
		t.Fatalf("RWLOCK rw writer WRITE = %d, %v", wtok, err)
	}
	stok, err := holder.Do(ctx, "SEMLOCK", "sem", "first", 1, "PX", 60000).Int64()
	if err != nil || stok <= 0 {
		t.Fatalf("SEMLOCK sem first 1 = %d, %v", stok, err)
	}

	queue := func(args ...string) *bufio.Reader {
		conn, err := net.DialTimeout("tcp", c.nodes[f].client, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(60 * time.Second))
		if _, err := io.WriteString(conn, encodeRESP(args...)); err != nil {
			t.Fatal(err)
		}
		return bufio.NewReader(conn)
	}
	reader := queue("RWLOCK", "rw", "reader", "READ", "PX", "60000", "WAIT", "40000")
	waitWaiters(t, c.client(f), 1)
	second := queue("SEMLOCK", "sem", "second", "1", "WAIT", "40000")
	waitWaiters(t, c.client(f), 2)

	c.kill(lead)
	c.waitLeader(10*time.Second, rest)
	// An unlock retried after an outcome-unknown TRYAGAIN may answer 0
	// (the first try released it); the grants below prove it went through.
	for _, u := range [][]any{{"RWUNLOCK", "rw", "writer"}, {"SEMUNLOCK", "sem", "first"}} {
		poll(t, 20*time.Second, "the unlock to go through the new leader", func() bool {
			_, err = holder.Do(ctx, u...).Int64()
			return err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN")
		})
		if err != nil {
			t.Fatalf("%v after the leader was killed: %v", u, err)
		}
	}
	for _, w := range []struct {
		name  string
		rd    *bufio.Reader
		after int64
	}{{"reader", reader, wtok}, {"second", second, stok}} {
		r, err := readReply(w.rd)
		tok, perr := strconv.ParseInt(strings.TrimPrefix(r, ":"), 10, 64)
		if err != nil || !strings.HasPrefix(r, ":") || perr != nil || tok <= max(wtok, stok) {
			t.Fatalf("%s's queued request = %q, %v; want a token above %d", w.name, r, err, max(wtok, stok))
		}
	}
	info, err := c.client(f).Do(ctx, "RWINFO", "rw").Slice()
	if err != nil || len(info) != 1 || info[0].([]any)[0] != "reader" || info[0].([]any)[1] != "read" {
		t.Fatalf("RWINFO rw on the follower = %v, %v; want the reader alone", info, err)
	}
}
