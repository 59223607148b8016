package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// waiters returns INFO keyspace's waiters on rdb's node.
func waiters(t testing.TB, rdb *redis.Client) int {
	t.Helper()
	n, err := strconv.Atoi(infoSection(t, rdb, "keyspace")["waiters"])
	if err != nil {
		t.Fatalf("INFO keyspace waiters: %v", err)
	}
	return n
}

// waitWaiters polls until rdb's node counts n queued requests.
func waitWaiters(t testing.TB, rdb *redis.Client, n int) {
	t.Helper()
	poll(t, 10*time.Second, fmt.Sprintf("waiters:%d", n), func() bool { return waiters(t, rdb) == n })
}

// TestHungUpWaitersAreWithdrawn: clients that hang up, or are killed, while
// their LOCK ... WAIT waits have their requests taken out of the queue and
// their connection slots freed at once, not when the WAIT runs out; a
// waiting client's pipelined commands are answered after the wait, in order.
func TestHungUpWaitersAreWithdrawn(t *testing.T) {
	const maxClients, waiting = 60, 50
	c := startNode(t, "--max-clients", strconv.Itoa(maxClients))
	ctx := context.Background()
	info := oneConn(t, c)
	waitClients(t, info, 1, 5*time.Second)
	holderTok, err := lockCmd(ctx, info, "busy", "holder")
	if err != nil || holderTok <= 0 {
		t.Fatalf("LOCK busy holder = %d, %v", holderTok, err)
	}
	wait := func(conn net.Conn, owner string) {
		t.Helper()
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, encodeRESP("LOCK", "busy", owner, "PX", "30000", "WAIT", "600000")); err != nil {
			t.Fatalf("LOCK ... WAIT by %s: %v", owner, err)
		}
	}

	t.Run("clients that close their sockets", func(t *testing.T) {
		var conns []net.Conn
		for i := range waiting {
			conn := dialRaw(t, c)
			wait(conn, fmt.Sprintf("waiter-%d", i))
			conns = append(conns, conn)
		}
		waitWaiters(t, info, waiting)
		for _, conn := range conns {
			conn.Close()
		}
		waitWaiters(t, info, 0)
		waitClients(t, info, 1, 10*time.Second)
		// Every freed slot takes a new client.
		for i := range maxClients - 1 {
			conn := dialRaw(t, c)
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(conn, "PING\r\n")
			if r, err := readReply(bufio.NewReader(conn)); r != "+PONG" || err != nil {
				t.Fatalf("PING on new connection %d of %d: %q, %v", i+2, maxClients, r, err)
			}
		}
	})
	waitClients(t, info, 1, 10*time.Second)

	t.Run("a client killed by CLIENT KILL ID", func(t *testing.T) {
		conn := dialRaw(t, c)
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		rd := bufio.NewReader(conn)
		io.WriteString(conn, encodeRESP("CLIENT", "ID"))
		id, err := readReply(rd)
		if err != nil {
			t.Fatalf("CLIENT ID: %v", err)
		}
		wait(conn, "killed")
		waitWaiters(t, info, 1)
		if n, err := info.Do(ctx, "CLIENT", "KILL", "ID", id[1:]).Int64(); n != 1 || err != nil {
			t.Fatalf("CLIENT KILL ID %s = %d, %v", id[1:], n, err)
		}
		if replies, closed := readUntilClosed(t, conn, 10*time.Second); len(replies) != 0 || !closed {
			t.Fatalf("killed waiter: replies %q, closed %v; want no reply and a close", replies, closed)
		}
		waitWaiters(t, info, 0)
		waitClients(t, info, 1, 10*time.Second)
	})

	t.Run("a waiting client's pipelined PING is answered after its LOCK", func(t *testing.T) {
		conn := dialRaw(t, c)
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		wait(conn, "pipeliner")
		waitWaiters(t, info, 1)
		io.WriteString(conn, encodeRESP("PING"))
		if n, err := info.Do(ctx, "UNLOCK", "busy", "holder").Int64(); n != 1 || err != nil {
			t.Fatalf("UNLOCK busy holder = %d, %v", n, err)
		}
		rd := bufio.NewReader(conn)
		tok, err := readReply(rd)
		v, perr := strconv.ParseInt(strings.TrimPrefix(tok, ":"), 10, 64)
		if err != nil || !strings.HasPrefix(tok, ":") || perr != nil || v <= holderTok {
			t.Fatalf("LOCK ... WAIT = %q, %v; want a token above %d", tok, err, holderTok)
		}
		if r, err := readReply(rd); r != "+PONG" || err != nil {
			t.Fatalf("PING after the LOCK ... WAIT = %q, %v", r, err)
		}
		if o, err := ownerOf(ctx, info, "busy"); o != "pipeliner" || err != nil {
			t.Fatalf("OWNER busy = %q, %v; want pipeliner", o, err)
		}
	})
}

// TestWaitGrantedWhileCutOffIsOutcomeUnknown: a LOCK ... WAIT queued
// through a follower that is then cut off is granted on the majority side;
// the follower cannot learn of it, and its client must hear that the outcome
// is unknown (or get the token), never "no leader", which promises the
// request did not take effect.
func TestWaitGrantedWhileCutOffIsOutcomeUnknown(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	f := c.others(lead)[0]
	holder := c.client(lead)
	if tok, err := lockCmd(ctx, holder, "cut", "alice", "PX", 60000); tok <= 0 || err != nil {
		t.Fatalf("LOCK cut alice = %d, %v", tok, err)
	}
	conn, err := net.DialTimeout("tcp", c.nodes[f].client, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(conn, encodeRESP("LOCK", "cut", "bob", "PX", "60000", "WAIT", "5000")); err != nil {
		t.Fatal(err)
	}
	waitWaiters(t, c.client(f), 1)
	c.isolate(f)
	if n, err := holder.Do(ctx, "UNLOCK", "cut", "alice").Int64(); n != 1 || err != nil {
		t.Fatalf("UNLOCK cut alice on the majority side = %d, %v", n, err)
	}
	if o, err := ownerOf(ctx, holder, "cut"); o != "bob" || err != nil {
		t.Fatalf("OWNER cut on the majority side = %q, %v; want bob", o, err)
	}
	r, err := readReply(bufio.NewReader(conn))
	if err != nil {
		t.Fatalf("bob's LOCK ... WAIT on the cut-off follower: %v", err)
	}
	if r != "-TRYAGAIN request timed out; outcome unknown" && (r[0] != ':' || r == ":0") {
		t.Fatalf("bob's LOCK ... WAIT on the cut-off follower = %q; he holds the lock: want the outcome-unknown -TRYAGAIN or his token", r)
	}
}

// TestShutdownDuringWaitIsOutcomeUnknown: a node shut down (SIGTERM) while
// a LOCK ... WAIT it sent is queued tells the client that the outcome is
// unknown, not "retry on another node", which would imply nothing was done.
func TestShutdownDuringWaitIsOutcomeUnknown(t *testing.T) {
	c := startNode(t)
	info := oneConn(t, c)
	if tok, err := lockCmd(context.Background(), info, "down", "holder"); tok <= 0 || err != nil {
		t.Fatalf("LOCK down holder = %d, %v", tok, err)
	}
	w := dialRaw(t, c)
	w.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(w, encodeRESP("LOCK", "down", "waiter", "WAIT", "600000"))
	waitWaiters(t, info, 1)
	if rc := c.term(1); rc != 0 {
		t.Fatalf("exit code after SIGTERM = %d; want 0", rc)
	}
	replies, closed := readUntilClosed(t, w, 10*time.Second)
	if len(replies) != 1 || replies[0] != "-TRYAGAIN node shutting down; outcome unknown" || !closed {
		t.Fatalf("queued LOCK ... WAIT at shutdown: replies %q, closed %v; want the outcome-unknown -TRYAGAIN and a close", replies, closed)
	}
}
