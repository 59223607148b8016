package client_test

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

	"github.com/lockd/lockd/client"
	"github.com/lockd/lockd/replication"
	"github.com/lockd/lockd/server"
	"github.com/redis/go-redis/v9"
)

// startNode starts a single-node cluster on a loopback port, waits until it
// leads, and closes it when the test ends. Each opt may change the Config.
func startNode(t testing.TB, opts ...func(*server.Config)) *server.Server {
	t.Helper()
	srv := newNode(t, opts...)
	poll(t, "the single node to lead", func() bool {
		st := srv.Node().Status()
		return st.Role == "leader" && st.Leader == 1 && st.Applied >= st.Commit && st.Applied > 0
	})
	return srv
}

// newNode starts a node without waiting for it to lead.
func newNode(t testing.TB, opts ...func(*server.Config)) *server.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		Listener: ln,
		Node:     replication.Config{ID: 1, DataDir: t.TempDir()},
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// leaderless starts node 1 of a two-node cluster whose node 2 never runs:
// it never leads, and writes fail with -TRYAGAIN after timeout.
func leaderless(t testing.TB, timeout time.Duration) *server.Server {
	t.Helper()
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	return newNode(t, func(c *server.Config) {
		c.Node.Listener = cl
		c.Node.Peers = map[uint64]string{1: cl.Addr().String(), 2: deadAddr}
		c.Node.Secret = "0123456789abcdef-test"
		c.Node.RequestTimeout = timeout
	})
}

// newRedis returns a go-redis client for srv that never retries by itself,
// closed when the test ends. Each opt may change the options.
func newRedis(t testing.TB, srv *server.Server, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: srv.Addr().String(), MaxRetries: -1, ReadTimeout: 5 * time.Second}
	for _, f := range opts {
		f(o)
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// newClient returns a Client over its own go-redis client for srv.
func newClient(t testing.TB, srv *server.Server, opts ...client.Option) *client.Client {
	t.Helper()
	return client.New(newRedis(t, srv), opts...)
}

// poll calls cond until it holds, failing the test after a deadline.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not ordering
	}
}

// ctxTimeout is a context ending after d, cancelled when the test ends.
func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ownerOf reads OWNER name: "" when the lock is free.
func ownerOf(t testing.TB, rdb *redis.Client, name string) string {
	t.Helper()
	s, err := rdb.Do(ctxTimeout(t, 5*time.Second), "OWNER", name).Text()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	if err != nil {
		t.Fatalf("OWNER %s: %v", name, err)
	}
	return s
}

// mustTryLock takes a lock that must be free.
func mustTryLock(t testing.TB, c *client.Client, name string, ttl time.Duration) *client.Lock {
	t.Helper()
	l, err := c.TryLock(ctxTimeout(t, 5*time.Second), name, ttl)
	if err != nil {
		t.Fatalf("TryLock %s: %v", name, err)
	}
	t.Cleanup(func() { l.Unlock(context.Background()) })
	return l
}

// unlock releases l, which must still be held.
func unlock(t testing.TB, l *client.Lock) {
	t.Helper()
	if err := l.Unlock(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Unlock %s: %v", l.Name(), err)
	}
}

// closed reports whether ch is closed now.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// lockCounter is a go-redis hook counting the LOCK commands sent, and those
// with WAIT that have not been answered yet.
type lockCounter struct {
	sent    atomic.Int64
	waiting atomic.Int64
}

func (h *lockCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *lockCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *lockCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if strings.EqualFold(cmd.Name(), "lock") {
			h.sent.Add(1)
			for _, a := range cmd.Args() {
				if s, ok := a.(string); ok && s == "WAIT" {
					h.waiting.Add(1)
					defer h.waiting.Add(-1)
				}
			}
		}
		return next(ctx, cmd)
	}
}

// resp2 makes a go-redis client speak RESP2.
func resp2(o *redis.Options) { o.Protocol = 2 }

// cmdLog is a go-redis hook recording the arguments of every command sent,
// but for go-redis's own HELLO and CLIENT when it connects.
type cmdLog struct {
	mu   sync.Mutex
	cmds [][]any
}

func (h *cmdLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *cmdLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *cmdLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name != "hello" && name != "client" {
			h.mu.Lock()
			h.cmds = append(h.cmds, cmd.Args())
			h.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

// sent is the commands sent so far, each as its arguments printed and
// joined by spaces.
func (h *cmdLog) sent() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, args := range h.cmds {
		out = append(out, strings.TrimSuffix(fmt.Sprintln(args...), "\n"))
	}
	return out
}

// loggedClient returns a Client over its own go-redis client for srv, and
// the log of what it sends.
func loggedClient(t testing.TB, srv *server.Server, opts ...client.Option) (*client.Client, *cmdLog) {
	t.Helper()
	rdb := newRedis(t, srv)
	log := &cmdLog{}
	rdb.AddHook(log)
	return client.New(rdb, opts...), log
}
