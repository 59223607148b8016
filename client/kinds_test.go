package client_test

import (
	"errors"
	"testing"
	"time"

	"github.com/lockd/lockd/client"
	"github.com/redis/go-redis/v9"
)

// holders is RWINFO's or SEMINFO's owners of name, in grant order.
func holders(t testing.TB, rdb *redis.Client, info, name string) []string {
	t.Helper()
	v, err := rdb.Do(ctxTimeout(t, 5*time.Second), info, name).Slice()
	if err != nil {
		t.Fatalf("%s %s: %v", info, name, err)
	}
	var out []string
	for _, h := range v {
		out = append(out, h.([]any)[0].(string))
	}
	return out
}

// Readers share a read/write lock; a writer waits for them, and a
// Client's own read hold keeps its write request waiting in the Client
// until it unlocks (never the server's mode conflict).
func TestReadWriteLock(t *testing.T) {
	srv := startNode(t)
	rdb := newRedis(t, srv)
	a, b, w := newClient(t, srv), newClient(t, srv), newClient(t, srv)
	ctx := ctxTimeout(t, 10*time.Second)
	ra, err := a.TryReadLock(ctx, "report", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.ReadLock(ctx, "report", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := holders(t, rdb, "RWINFO", "report"); len(got) != 2 || rb.Token() <= ra.Token() {
		t.Fatalf("RWINFO = %v, tokens %d, %d: want two readers, rising tokens", got, ra.Token(), rb.Token())
	}
	if _, err := w.TryWriteLock(ctx, "report", 10*time.Second); !errors.Is(err, client.ErrNotAcquired) {
		t.Fatalf("TryWriteLock while read: %v, want ErrNotAcquired", err)
	}
	// The same namespace is not LOCK's: a LOCK key called report is free.
	unlock(t, mustTryLock(t, w, "report", time.Second))

	got := make(chan *client.Lock, 1)
	go func() {
		l, err := w.WriteLock(ctx, "report", 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	poll(t, "the writer to queue", func() bool { return srv.Node().Table().Waiting() == 1 })
	unlock(t, ra)
	unlock(t, rb)
	lw := <-got
	if lw == nil || lw.Token() <= rb.Token() {
		t.Fatalf("the writer's grant %v: want a token above %d", lw, rb.Token())
	}
	if _, err := a.TryReadLock(ctx, "report", 10*time.Second); !errors.Is(err, client.ErrNotAcquired) {
		t.Fatalf("TryReadLock while written: %v, want ErrNotAcquired", err)
	}
	// w's own read waits for w's write hold to go.
	if _, err := w.TryReadLock(ctx, "report", 10*time.Second); !errors.Is(err, client.ErrNotAcquired) {
		t.Fatalf("TryReadLock of the writer's own Client: %v, want ErrNotAcquired", err)
	}
	unlock(t, lw)
	if got := holders(t, rdb, "RWINFO", "report"); len(got) != 0 {
		t.Fatalf("RWINFO after every unlock = %v", got)
	}
}

// A semaphore's permits are renewed in the background (SEMRENEW) and
// released by Unlock; a limit other than the semaphore's is the server's
// error, not ErrNotAcquired.
func TestSemaphore(t *testing.T) {
	srv := startNode(t)
	rdb := newRedis(t, srv)
	a, b, c := newClient(t, srv), newClient(t, srv), newClient(t, srv)
	ctx := ctxTimeout(t, 10*time.Second)
	pa, err := a.TryAcquire(ctx, "pool", 2, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.Acquire(ctx, "pool", 2, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.TryAcquire(ctx, "pool", 2, time.Second); !errors.Is(err, client.ErrNotAcquired) {
		t.Fatalf("a third permit of 2: %v, want ErrNotAcquired", err)
	}
	if _, err := c.TryAcquire(ctx, "pool", 3, time.Second); err == nil || errors.Is(err, client.ErrNotAcquired) {
		t.Fatalf("a limit of 3 for a semaphore of 2: %v, want the server's error", err)
	}
	// Three leases' worth later both permits are still held: renewed.
	deadline := time.Now().Add(900 * time.Millisecond)
	for time.Now().Before(deadline) {
		if got := holders(t, rdb, "SEMINFO", "pool"); len(got) != 2 {
			t.Fatalf("SEMINFO = %v while both permits are renewed", got)
		}
		time.Sleep(50 * time.Millisecond) // sampling the lease, not ordering events
	}
	if closed(pa.Lost()) || closed(pb.Lost()) {
		t.Fatal("a renewed permit was lost")
	}
	unlock(t, pa)
	pc, err := c.TryAcquire(ctx, "pool", 2, time.Second)
	if err != nil {
		t.Fatalf("a permit after one was released: %v", err)
	}
	unlock(t, pb)
	unlock(t, pc)
}
