package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lockd/lockd/lock"
	"github.com/redis/go-redis/v9"
)

// A pipeline of writes on distinct locks goes to the cluster together: the
// writes share raft entries. One by one, every LOCK would wait for its own
// commit before the next is read, taking an entry each.
func TestPipelinedWritesShareEntries(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	const n = 200
	var b strings.Builder
	for i := range n {
		b.WriteString(encode("LOCK", fmt.Sprintf("pw%d", i), "alice", "PX", "60000"))
	}
	before := srv.Node().Status().Commit
	c.send(b.String())
	seen := map[int64]bool{}
	for i := range n {
		_, v, err := c.read()
		tok, ok := v.(int64)
		if err != nil || !ok || tok <= 0 || seen[tok] {
			t.Fatalf("reply %d: %#v %v; want a new token", i, v, err)
		}
		seen[tok] = true
	}
	entries := srv.Node().Status().Commit - before
	t.Logf("%d pipelined LOCKs in %d entries", n, entries)
	if entries >= n/4 {
		t.Fatalf("%d pipelined LOCKs took %d entries; want them to share entries", n, entries)
	}
	for i := range n {
		c.expect(bulk("alice"), "OWNER", fmt.Sprintf("pw%d", i))
	}
}

// Within a pipeline, commands on the same lock act in order, reads see the
// writes before them, and invalid commands answer in their place.
func TestPipelineKeepsOrder(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	c.send(encode("LOCK", "o1", "alice") +
		encode("LOCK", "o2", "alice") +
		encode("UNLOCK", "o1", "alice") + // same name as the first: after it
		encode("LOCK", "o1", "bob") +
		encode("LOCK", "o2", "bob") + // held by alice: refused
		encode("LOCK", "o3") + // wrong arity
		encode("OWNER", "o1") +
		encode("RENEW", "o2", "alice", "PX", "0") + // invalid TTL
		encode("RENEW", "o2", "alice", "PX", "60000") +
		encode("UNLOCK", "o2", "bob") +
		encode("LOCK", "o4", "carol", "WAIT", "10") +
		encode("OWNER", "o2"))
	_, v1, _ := c.read()
	_, v2, _ := c.read()
	t1, ok1 := v1.(int64)
	t2, ok2 := v2.(int64)
	if !ok1 || !ok2 {
		t.Fatalf("first LOCKs: %#v %#v", v1, v2)
	}
	if got := c.reply(); got != integer(1) {
		t.Fatalf("UNLOCK o1 alice: %q", got)
	}
	_, v3, _ := c.read()
	if t3, ok := v3.(int64); !ok || t3 <= max(t1, t2) {
		t.Fatalf("LOCK o1 bob after the UNLOCK: %#v; want a token above %d", v3, max(t1, t2))
	}
	for _, want := range []string{
		"$-1\r\n",
		"-ERR wrong number of arguments for 'lock' command\r\n",
		bulk("bob"),
		"-ERR invalid expire time in 'renew' command\r\n",
		integer(1),
		integer(0),
	} {
		if got := c.reply(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if _, v, err := c.read(); err != nil || v == nil {
		t.Fatalf("LOCK o4 WAIT 10: %#v %v", v, err)
	}
	if got := c.reply(); got != bulk("alice") {
		t.Fatalf("OWNER o2: %q", got)
	}
}

// Nothing pipelined after QUIT runs.
func TestPipelineStopsAtQuit(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	c.send(encode("LOCK", "q1", "alice") + encode("QUIT") + encode("LOCK", "q2", "alice") + encode("LOCK", "q3", "alice"))
	if _, v, err := c.read(); err != nil || v == nil {
		t.Fatalf("LOCK q1: %#v %v", v, err)
	}
	if got := c.reply(); got != "+OK\r\n" {
		t.Fatalf("QUIT: %q", got)
	}
	c.expectClosed()
	// The same when no write starts the pipeline.
	e := dial(t, srv)
	e.send(encode("PING") + encode("QUIT") + encode("LOCK", "q4", "alice"))
	for _, want := range []string{"+PONG\r\n", "+OK\r\n"} {
		if got := e.reply(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	e.expectClosed()
	d := dial(t, srv)
	d.expect(bulk("alice"), "OWNER", "q1")
	for _, name := range []string{"q2", "q3", "q4"} {
		d.expect("$-1\r\n", "OWNER", name)
	}
}

// go-redis's Pipeline, as clients use it: results come back in order and
// each lock is taken once.
func TestGoRedisPipeline(t *testing.T) {
	srv := startServer(t)
	rdb := newRedis(t, srv)
	ctx := context.Background()
	pipe := rdb.Pipeline()
	var locks []*redis.Cmd
	for i := range 100 {
		locks = append(locks, pipe.Do(ctx, "LOCK", fmt.Sprintf("gp%d", i%50), fmt.Sprintf("o%d", i), "PX", 60000))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	for i, cmd := range locks {
		tok, err := cmd.Int64()
		switch {
		case i < 50 && (err != nil || tok <= 0):
			t.Fatalf("LOCK gp%d for o%d: %d %v; want a token", i%50, i, tok, err)
		case i >= 50 && !errors.Is(err, redis.Nil):
			t.Fatalf("second LOCK gp%d for o%d: %d %v; want nil (held by o%d)", i%50, i, tok, err, i%50)
		}
	}
	for i := range 50 {
		if owner, err := rdb.Do(ctx, "OWNER", fmt.Sprintf("gp%d", i)).Text(); err != nil || owner != fmt.Sprintf("o%d", i) {
			t.Fatalf("OWNER gp%d: %q %v", i, owner, err)
		}
	}
}

// redis-py's and go-redsync's lock, pipelined: SET name token NX PX on many
// names shares raft entries as LOCK does, and each name is taken once.
func TestPipelinedSetNXShareEntries(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	const n = 200
	var b strings.Builder
	for i := range n {
		b.WriteString(encode("SET", fmt.Sprintf("sn%d", i%(n/2)), fmt.Sprint("token", i), "NX", "PX", "60000"))
	}
	before := srv.Node().Status().Commit
	c.send(b.String())
	for i := range n {
		want := okReply
		if i >= n/2 {
			want = nullReply // the name is taken by the first half
		}
		if got := c.reply(); got != want {
			t.Fatalf("reply %d: %q, want %q", i, got, want)
		}
	}
	entries := srv.Node().Status().Commit - before
	t.Logf("%d pipelined SET NX PX in %d entries", n, entries)
	if entries >= n/4 {
		t.Fatalf("%d pipelined SETs took %d entries; want them to share entries", n, entries)
	}
	for i := range n / 2 {
		c.expect(bulk(fmt.Sprint("token", i)), "GET", fmt.Sprintf("sn%d", i))
	}
}

// A write naming a key already in the wave waits for it, whichever of its
// keys it is: every command sees the effects of those before it.
func TestPipelinedMultiKeyWritesKeepOrder(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	c.send(encode("SET", "mk1", "a") + encode("SET", "mk2", "b") +
		encode("DEL", "mk3", "mk2", "mk1") + // names the keys above: after them
		encode("SET", "mk2", "c", "GET") + // after the DEL
		encode("EXISTS", "mk1", "mk2") +
		encode("DELIFEQ", "mk2", "c") + encode("SET", "mk1", "d", "NX"))
	for _, want := range []string{okReply, okReply, integer(2), nullReply, integer(1), integer(1), okReply} {
		if got := c.reply(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// A wave takes no two commands naming a key in common, whichever of a
// command's keys it is (a resend after a leader change may reorder a wave).
func TestWaveRefusesAKeyTwice(t *testing.T) {
	var w wave
	w.add(prepared{cmd: lock.Command{Op: lock.OpSet, Name: "a"}, spec: commandTable["SET"]})
	w.add(prepared{cmd: lock.Command{Op: lock.OpDel, Name: "b", X: &lock.Extra{Keys: []string{"c", "d"}}}, spec: commandTable["DEL"]})
	for _, tc := range []struct {
		cmd  lock.Command
		want bool
	}{
		{lock.Command{Name: "a"}, true},
		{lock.Command{Name: "d"}, true},
		{lock.Command{Name: "e"}, false},
		{lock.Command{Name: "e", X: &lock.Extra{Keys: []string{"f", "a"}}}, true},
		{lock.Command{Name: "e", X: &lock.Extra{Keys: []string{"f", "e"}}}, false}, // its own repeats are one command
	} {
		if got := w.names(&tc.cmd); got != tc.want {
			t.Errorf("%q %+v: %v, want %v", tc.cmd.Name, tc.cmd.X, got, tc.want)
		}
	}
}
