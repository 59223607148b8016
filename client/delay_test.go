package client_test

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockd/lockd/client"
	"github.com/redis/go-redis/v9"
)

// takeOne takes name with TryLock, or with TryLockAll when multi.
func takeOne(t testing.TB, c *client.Client, multi bool, name string, ttl time.Duration) *client.Lock {
	t.Helper()
	if multi {
		return mustLockAll(t, c, []string{name}, ttl)[0]
	}
	return mustTryLock(t, c, name, ttl)
}

// expire lets l's lease run out without an Unlock: it closes the go-redis
// client under l's Client, so that RENEW fails, and waits until the server
// shows name free.
func expire(t testing.TB, rdb, under *redis.Client, l *client.Lock) {
	t.Helper()
	under.Close()
	poll(t, "the lease to run out", func() bool { return closed(l.Lost()) && ownerOf(t, rdb, l.Name()) == "" })
}

// A hold taken with WithLockDelay whose lease runs out leaves its name to
// nobody until the delay ends, by LOCK (TryLock) or MLOCK (TryLockAll).
func TestLockDelay(t *testing.T) {
	delayLeft := regexp.MustCompile(`LOCKDELAY .* (\d+) ms`)
	for _, multi := range []bool{false, true} {
		cmd := map[bool]string{false: "LOCK", true: "MLOCK"}[multi]
		t.Run(cmd+" an hour", func(t *testing.T) {
			srv := startNode(t) // no --lock-delay: any delay is the Client's
			rdb := newRedis(t, srv)
			under := newRedis(t, srv)
			l := takeOne(t, client.New(under, client.WithLockDelay(time.Hour)), multi, "d", 300*time.Millisecond)
			expire(t, rdb, under, l)

			other := newClient(t, srv)
			if _, err := other.TryLock(ctxTimeout(t, 5*time.Second), "d", time.Second); !errors.Is(err, client.ErrNotAcquired) {
				t.Fatalf("TryLock by another owner after the lease ran out: %v, want ErrNotAcquired (lock-delay)", err)
			}
			err := rdb.Do(ctxTimeout(t, 5*time.Second), "SET", "d", "v").Err()
			m := delayLeft.FindStringSubmatch(redisText(err))
			if m == nil {
				t.Fatalf("SET d in the delay: %v, want -LOCKDELAY", err)
			}
			if left, _ := strconv.Atoi(m[1]); left <= 59*60*1000 || left > 60*60*1000 {
				t.Fatalf("SET d: %v; want about an hour left", err)
			}
		})
		t.Run(cmd+" ends", func(t *testing.T) {
			srv := startNode(t)
			rdb := newRedis(t, srv)
			under := newRedis(t, srv)
			l := takeOne(t, client.New(under, client.WithLockDelay(200*time.Millisecond)), multi, "d", 300*time.Millisecond)
			expire(t, rdb, under, l)
			other := newClient(t, srv)
			var got *client.Lock
			poll(t, "another owner to get d after the delay", func() bool {
				var err error
				got, err = other.TryLock(ctxTimeout(t, 5*time.Second), "d", time.Second)
				if err != nil && !errors.Is(err, client.ErrNotAcquired) {
					t.Fatal(err)
				}
				return err == nil
			})
			unlock(t, got)
		})
	}
}

// redisText is err's text, "" for none.
func redisText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// WithLockDelay puts DELAY ms, rounded up, on LOCK and MLOCK and on no other
// command (RWLOCK and SEMLOCK refuse it); without it nothing is sent, so the
// node's --lock-delay applies.
func TestLockDelayArguments(t *testing.T) {
	srv := startNode(t)
	cases := []struct {
		name  string
		opts  []client.Option
		delay string // the DELAY sent with LOCK and MLOCK; "" for none
	}{
		{"none", nil, ""},
		{"zero", []client.Option{client.WithLockDelay(0)}, "0"},
		{"sub-millisecond", []client.Option{client.WithLockDelay(1500 * time.Microsecond)}, "2"},
		{"an hour", []client.Option{client.WithLockDelay(time.Hour)}, "3600000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, log := loggedClient(t, srv, tc.opts...)
			ctx := ctxTimeout(t, 5*time.Second)
			for _, take := range []func() (*client.Lock, error){
				func() (*client.Lock, error) { return c.TryLock(ctx, "m", time.Second) },
				func() (*client.Lock, error) { return c.Lock(ctx, "m", time.Second) },
				func() (*client.Lock, error) {
					ls, err := c.TryLockAll(ctx, []string{"m"}, time.Second)
					return firstLock(ls, err)
				},
				func() (*client.Lock, error) {
					ls, err := c.LockAll(ctx, []string{"m"}, time.Second)
					return firstLock(ls, err)
				},
				func() (*client.Lock, error) { return c.TryReadLock(ctx, "rw", time.Second) },
				func() (*client.Lock, error) { return c.WriteLock(ctx, "rw", time.Second) },
				func() (*client.Lock, error) { return c.TryAcquire(ctx, "sem", 2, time.Second) },
				func() (*client.Lock, error) { return c.Acquire(ctx, "sem", 2, time.Second) },
			} {
				l, err := take()
				if err != nil {
					t.Fatalf("take: %v", err)
				}
				unlock(t, l)
			}
			for _, cmd := range log.sent() {
				verb, _, _ := strings.Cut(cmd, " ")
				want := ""
				if verb == "LOCK" || verb == "MLOCK" {
					want = tc.delay
				}
				got := ""
				if _, after, ok := strings.Cut(cmd, " DELAY "); ok {
					got = strings.Fields(after)[0]
				}
				if got != want {
					t.Errorf("sent %q, want DELAY %q", cmd, want)
				}
			}
		})
	}
}

// firstLock is the one Lock of a TryLockAll or LockAll of one name.
func firstLock(locks []*client.Lock, err error) (*client.Lock, error) {
	if err != nil {
		return nil, err
	}
	return locks[0], nil
}
