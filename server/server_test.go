package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockd/lockd/replication"
	"github.com/redis/go-redis/v9"
)

const noAuth = "-NOAUTH Authentication required.\r\n"
const wrongPass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n"

func TestAuth(t *testing.T) {
	const pass = "s3cret"
	srv := startServer(t, func(c *Config) { c.Password = pass })

	t.Run("before AUTH every command but AUTH, HELLO and QUIT is refused", func(t *testing.T) {
		c := dial(t, srv)
		for _, args := range [][]string{
			{"LOCK", "a", "alice"}, {"LOCK", "a", "alice", "PX", "100"}, {"UNLOCK", "a", "alice"},
			{"RENEW", "a", "alice", "PX", "100"}, {"OWNER", "a"}, {"LOCKINFO", "a"}, {"DBSIZE"},
			{"PING"}, {"PING", "x"}, {"ECHO", "x"}, {"SELECT", "0"}, {"CLIENT", "ID"}, {"CLIENT", "SETNAME", "x"},
			{"COMMAND"}, {"COMMAND", "COUNT"}, {"INFO"}, {"ROLE"}, {"TIME"}, {"lock", "a", "alice"},
		} {
			c.expect(noAuth, args...)
		}
		c.expect("-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n", "HELLO", "3")
		c.expect(wrongPass, "AUTH", "wrong")
		c.expect(wrongPass, "AUTH", "default", "wrong")
		c.expect(wrongPass, "AUTH", "nobody", pass)
		c.expect(wrongPass, "HELLO", "3", "AUTH", "default", "wrong")
		c.expect(wrongPass, "HELLO", "3", "AUTH", "nobody", pass)
		c.expect("-ERR syntax error\r\n", "AUTH", "default", pass, "extra")
		c.expect(noAuth, "OWNER", "a") // none of the failures authenticated, nor switched to RESP3
		c.expect("+OK\r\n", "QUIT")
		c.expectClosed()

		d := dial(t, srv)
		d.expect("+OK\r\n", "AUTH", pass)
		d.expect(":0\r\n", "DBSIZE") // none of the refused LOCKs took effect
	})

	t.Run("AUTH password", func(t *testing.T) {
		c := dial(t, srv)
		c.expect("+OK\r\n", "AUTH", pass)
		c.int("LOCK", "auth1", "alice")
		c.expect(bulk("alice"), "OWNER", "auth1")
		c.expect(wrongPass, "AUTH", "wrong") // a failed AUTH keeps the earlier one
		c.expect("+PONG\r\n", "PING")
	})
	t.Run("AUTH default password", func(t *testing.T) {
		c := dial(t, srv)
		c.expect("+OK\r\n", "auth", "default", pass)
		c.int("LOCK", "auth2", "alice")
	})
	t.Run("HELLO 3 AUTH default password", func(t *testing.T) {
		c := dial(t, srv)
		m, ok := c.value("HELLO", "3", "AUTH", "default", pass, "SETNAME", "me").(map[string]any)
		if !ok || m["proto"] != int64(3) {
			t.Fatalf("HELLO 3 AUTH = %#v", m)
		}
		c.int("LOCK", "auth3", "alice")
		c.expect("_\r\n", "OWNER", "free")
		c.expect(bulk("me"), "CLIENT", "GETNAME")
	})
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("go-redis with Password, Protocol %d", proto), func(t *testing.T) {
			ctx := context.Background()
			rdb := newRedis(t, srv, func(o *redis.Options) { o.Password, o.Protocol = pass, proto })
			name := fmt.Sprintf("goredis-auth-%d", proto)
			tok, err := rdb.Do(ctx, "LOCK", name, "alice", "PX", 60000).Int64()
			if err != nil || tok <= 0 {
				t.Fatalf("LOCK: %d, %v", tok, err)
			}
			if owner, err := rdb.Do(ctx, "OWNER", name).Text(); err != nil || owner != "alice" {
				t.Fatalf("OWNER: %q, %v", owner, err)
			}
			if n, err := rdb.Do(ctx, "UNLOCK", name, "alice").Int64(); err != nil || n != 1 {
				t.Fatalf("UNLOCK: %d, %v", n, err)
			}
		})
	}
	t.Run("go-redis without the password is refused", func(t *testing.T) {
		rdb := newRedis(t, srv)
		err := rdb.Do(context.Background(), "LOCK", "x", "alice").Err()
		if err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
			t.Fatalf("LOCK without password: %v, want NOAUTH", err)
		}
	})
	t.Run("go-redis with a wrong password is refused", func(t *testing.T) {
		rdb := newRedis(t, srv, func(o *redis.Options) { o.Password = "wrong" })
		err := rdb.Do(context.Background(), "LOCK", "x", "alice").Err()
		if err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
			t.Fatalf("LOCK with a wrong password: %v, want WRONGPASS", err)
		}
	})
}

func TestAuthWithoutPassword(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	c.expect("-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n", "AUTH", "anything")
	// As Redis with a nopass default user: HELLO AUTH default <any> is accepted.
	if m, ok := c.value("HELLO", "3", "AUTH", "default", "anything").(map[string]any); !ok || m["proto"] != int64(3) {
		t.Fatalf("HELLO 3 AUTH default anything = %#v", m)
	}
	c.expect(wrongPass, "HELLO", "3", "AUTH", "nobody", "anything")
	c.expect("+PONG\r\n", "PING")
}

func TestMaxClients(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.MaxClients = 2 })
	a, b := dial(t, srv), dial(t, srv)
	a.expect("+PONG\r\n", "PING")
	b.expect("+PONG\r\n", "PING")

	third := dial(t, srv)
	if got := third.reply(); got != "-ERR max number of clients reached\r\n" {
		t.Fatalf("third connection: %q", got)
	}
	third.expectClosed()

	a.expect("+PONG\r\n", "PING")
	b.int("LOCK", "mc", "alice")
	a.expect(bulk("alice"), "OWNER", "mc")

	// A freed slot is available again.
	a.c.Close()
	poll(t, "a freed slot to take a new client", func() bool {
		d := dial(t, srv)
		d.send(encode("PING"))
		_, v, err := d.read()
		d.c.Close()
		return err == nil && v == "PONG"
	})
	b.expect("+PONG\r\n", "PING")
}

func TestGoRedisDefaultOptions(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	// Default options: RESP3 via HELLO 3, CLIENT SETINFO, maintenance
	// notifications in auto mode.
	rdb := newRedis(t, srv)

	tok, err := rdb.Do(ctx, "LOCK", "gr", "alice", "PX", 60000).Int64()
	if err != nil || tok <= 0 {
		t.Fatalf("LOCK: %d, %v", tok, err)
	}
	if again, err := rdb.Do(ctx, "LOCK", "gr", "alice", "PX", 60000).Int64(); err != nil || again != tok {
		t.Fatalf("re-grant: %d, %v; want %d", again, err, tok)
	}
	if err := rdb.Do(ctx, "LOCK", "gr", "bob").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("LOCK by another owner: %v, want redis.Nil", err)
	}
	if owner, err := rdb.Do(ctx, "OWNER", "gr").Text(); err != nil || owner != "alice" {
		t.Fatalf("OWNER: %q, %v", owner, err)
	}
	info, err := rdb.Do(ctx, "LOCKINFO", "gr").Result()
	m, ok := info.(map[any]any)
	if err != nil || !ok || m["owner"] != "alice" || m["token"] != tok {
		t.Fatalf("LOCKINFO: %#v, %v", info, err)
	}
	if ttl, ok := m["ttl_ms"].(int64); !ok || ttl <= 0 || ttl > 60000 {
		t.Fatalf("LOCKINFO ttl_ms: %#v", m["ttl_ms"])
	}
	if n, err := rdb.Do(ctx, "RENEW", "gr", "alice", "EX", 30).Int64(); err != nil || n != 1 {
		t.Fatalf("RENEW: %d, %v", n, err)
	}
	if n, err := rdb.Do(ctx, "UNLOCK", "gr", "alice").Int64(); err != nil || n != 1 {
		t.Fatalf("UNLOCK: %d, %v", n, err)
	}
	if err := rdb.Do(ctx, "OWNER", "gr").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("OWNER of a free lock: %v, want redis.Nil", err)
	}
	if err := rdb.Do(ctx, "LOCKINFO", "gr").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("LOCKINFO of a free lock: %v, want redis.Nil", err)
	}
	if err := rdb.Do(ctx, "LOCK", "gr", "alice", "PX", 0).Err(); err == nil || err.Error() != "ERR invalid expire time in 'lock' command" {
		t.Fatalf("LOCK PX 0: %v", err)
	}

	// The connection handshake reached the server.
	list, err := rdb.ClientList(ctx).Result()
	if err != nil || !strings.Contains(list, "lib-name=go-redis") || !strings.Contains(list, "resp=3") {
		t.Fatalf("CLIENT LIST: %q, %v", list, err)
	}
	// go-redis can read the command table, INFO and the rest.
	cmds, err := rdb.Command(ctx).Result()
	if err != nil || cmds["lock"] == nil || cmds["lock"].Arity != -3 || cmds["lock"].FirstKeyPos != 1 || !cmds["owner"].ReadOnly {
		t.Fatalf("COMMAND: %v %+v", err, cmds["lock"])
	}
	if s, err := rdb.Info(ctx, "replication").Result(); err != nil || !strings.Contains(s, "role:leader") {
		t.Fatalf("INFO replication: %q, %v", s, err)
	}
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE: %d, %v", n, err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := rdb.Time(ctx).Result(); err != nil {
		t.Fatal(err)
	}
}

func TestGoRedisRESP2(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	rdb := newRedis(t, srv, func(o *redis.Options) { o.Protocol = 2 })
	tok, err := rdb.Do(ctx, "LOCK", "gr2", "alice").Int64()
	if err != nil {
		t.Fatal(err)
	}
	got, err := rdb.Do(ctx, "LOCKINFO", "gr2").Slice()
	if err != nil || len(got) != 3 || got[0] != "alice" || got[1] != tok || got[2] != int64(-1) {
		t.Fatalf("LOCKINFO: %#v, %v", got, err)
	}
	if err := rdb.Do(ctx, "OWNER", "free").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("OWNER of a free lock: %v", err)
	}
	list, err := rdb.ClientList(ctx).Result()
	if err != nil || !strings.Contains(list, "resp=2") {
		t.Fatalf("CLIENT LIST: %q, %v", list, err)
	}
}

func TestClose(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	c := dial(t, srv)
	c.int("LOCK", "close", "alice")
	rdb := newRedis(t, srv)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	closeWithin(t, srv, 10*time.Second)
	c.expectClosed()
	if err := rdb.Do(ctx, "OWNER", "close").Err(); err == nil || errors.Is(err, redis.Nil) {
		t.Fatalf("command after Close: %v, want a connection error", err)
	}
	if conn, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second); err == nil {
		conn.Close()
		t.Fatal("the listener still accepts after Close")
	}
	closeWithin(t, srv, 10*time.Second) // a second Close is harmless
}

// closeWithin closes srv and fails the test if Close does not return in d.
func closeWithin(t testing.TB, srv *Server, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(d):
		t.Fatalf("Close did not return within %v", d)
	}
}

// startLeaderless starts node 1 of a two-node cluster whose other member
// never answers, so it never has a leader.
func startLeaderless(t testing.TB, timeout time.Duration) *Server {
	t.Helper()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	cln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{
		Listener: ln,
		Node: replication.Config{
			ID:             1,
			Peers:          map[uint64]string{1: cln.Addr().String(), 2: deadAddr},
			Secret:         "0123456789abcdef-test",
			Listener:       cln,
			DataDir:        t.TempDir(),
			RequestTimeout: timeout,
		},
	})
	if err != nil {
		ln.Close()
		cln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestNoLeader(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv := startLeaderless(t, timeout)
	c := dial(t, srv)

	for _, args := range [][]string{
		{"LOCK", "x", "alice"}, {"LOCK", "x", "alice", "PX", "1000"}, {"UNLOCK", "x", "alice"}, {"RENEW", "x", "alice", "PX", "1000"},
	} {
		start := time.Now()
		c.expect("-TRYAGAIN no leader; retry later\r\n", args...)
		if d := time.Since(start); d > timeout+5*time.Second {
			t.Errorf("%v: answered after %v, request timeout %v", args, d, timeout)
		}
	}
	// Reads are local, but a node that has heard from no leader within an
	// election timeout cannot vouch for its replica: they are refused.
	stale := "-TRYAGAIN no recent contact with a leader; this replica may be stale, retry later or on another node\r\n"
	c.expect(stale, "OWNER", "x")
	c.expect(stale, "LOCKINFO", "x")
	c.expect(stale, "DBSIZE")
	// Argument errors are answered before anything is sent.
	c.expect("-ERR invalid expire time in 'lock' command\r\n", "LOCK", "x", "alice", "PX", "0")

	info := c.value("INFO", "replication").(string)
	if !strings.Contains(info, "\r\nleader_id:0\r\n") || strings.Contains(info, "role:leader") || !strings.Contains(info, "\r\nnode_id:1\r\n") {
		t.Errorf("INFO replication without a leader:\n%s", info)
	}
	role, ok := c.value("ROLE").([]any)
	if !ok || len(role) != 5 || role[0] != "slave" || role[3] != "connect" {
		t.Errorf("ROLE without a leader: %#v", role)
	}
	if m, ok := c.value("HELLO", "3").(map[string]any); !ok || m["role"] != "replica" {
		t.Errorf("HELLO 3 without a leader: %#v", m)
	}
}

// TestCloseWithWaitingRequest closes a node while a LOCK waits for a leader:
// Close returns and the client's connection is closed.
func TestCloseWithWaitingRequest(t *testing.T) {
	srv := startLeaderless(t, 20*time.Second)
	c := dial(t, srv)
	c.send(encode("LOCK", "x", "alice"))
	poll(t, "the LOCK to wait for a leader", func() bool { return srv.Node().Status().Pending == 1 })
	closeWithin(t, srv, 10*time.Second)
	_, v, err := c.read()
	if err == nil {
		// A reply, if any, must say that the node is going away.
		if e, ok := v.(error); !ok || e.Error() != "TRYAGAIN node shutting down; retry on another node" {
			t.Fatalf("waiting LOCK at Close: %#v", v)
		}
		c.expectClosed()
	}
}

// TestCloseAnswersWaitingRequests checks Server.Close's documented contract:
// "stops the node (waiting requests get -TRYAGAIN)".
func TestCloseAnswersWaitingRequests(t *testing.T) {
	srv := startLeaderless(t, 20*time.Second)
	c := dial(t, srv)
	c.send(encode("LOCK", "x", "alice"))
	poll(t, "the LOCK to wait for a leader", func() bool { return srv.Node().Status().Pending == 1 })
	closeWithin(t, srv, 10*time.Second)
	if got := c.reply(); got != "-TRYAGAIN node shutting down; retry on another node\r\n" {
		t.Fatalf("waiting LOCK at Close: %q", got)
	}
	c.expectClosed()
}

func TestProtocolErrorClosesTheConnection(t *testing.T) {
	srv := startServer(t)
	tests := []struct {
		name, send string
	}{
		{"huge multibulk count", "*4611686018427387904\r\n"},
		{"bulk length not a number", "*1\r\n$x\r\n"},
		{"bulk over the size limit", fmt.Sprintf("*2\r\n$4\r\nECHO\r\n$%d\r\n", 1<<30)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, srv)
			c.expect("+PONG\r\n", "PING")
			c.send(tt.send)
			got := c.reply()
			if !strings.HasPrefix(got, "-ERR Protocol error: ") {
				t.Fatalf("got %q, want -ERR Protocol error: ...", got)
			}
			c.expectClosed()
			d := dial(t, srv)
			d.expect("+PONG\r\n", "PING")
			d.expect(":0\r\n", "DBSIZE")
		})
	}
}

// TestClientListDuringCommands runs CLIENT LIST on one connection while
// others run commands, HELLO and SETNAME: under -race it checks that CLIENT
// LIST reads other clients' state safely.
func TestClientListDuringCommands(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	lister := newRedis(t, srv, func(o *redis.Options) { o.Protocol = 2 })
	if err := lister.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr().String(), MaxRetries: -1, Protocol: 2, PoolSize: 1})
			defer rdb.Close()
			for n := 0; !stop.Load(); n++ {
				rdb.Do(ctx, "HELLO", 2+n%2, "SETNAME", fmt.Sprintf("w%d-%d", i, n))
				rdb.Do(ctx, "OWNER", "x")
				rdb.Ping(ctx)
			}
		}()
	}
	for range 200 {
		if err := lister.ClientList(ctx).Err(); err != nil {
			t.Error(err)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
}
