package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdKeyPrefix is put before every lock name; concurrency.NewMutex adds a
// "/" and the session's lease id after it.
const etcdKeyPrefix = "/lockbench/"

// etcdTTLSeconds is the session TTL for a -ttl: whole seconds, rounded up
// (etcd leases have a granularity of one second; the server may raise a
// very short TTL to its minimum, about 2 s at default settings).
func etcdTTLSeconds(ttl time.Duration) int {
	return int((ttl + time.Second - 1) / time.Second)
}

// etcdLocker is the standard etcd lock recipe from clientv3/concurrency, as a
// user of etcd writes it: one client and one session (a lease kept alive in
// the background) per worker, reused across acquires; an acquire is
// NewMutex(session, "/lockbench/"+name).TryLock, a release is that mutex's
// Unlock.
//
// TryLock costs one Txn when the lock is free (put our key under the name's
// prefix, read the oldest key) and a Txn plus a Delete (of the key it just
// put) when it is busy; Unlock is one Delete. Every write goes through etcd's
// raft log and is on a majority's disk before it is answered.
//
// The token of a grant is the revision in the header of the granting Txn,
// which for a fresh grant is the create revision of our key, the fencing token
// etcd users rely on. One worker's grants follow each other in real time and
// every acquire or release writes, so these revisions strictly increase and the
// worker's token check (checkToken) applies to etcd as it does to lockd.
//
// An etcdLocker belongs to one worker and is not safe for concurrent use.
type etcdLocker struct {
	cli     *clientv3.Client
	ttl     int             // session TTL in seconds
	keepCtx context.Context // lifetime of session keep-alives: the whole run
	timeout time.Duration

	session *concurrency.Session // nil until the first session is granted
	held    map[string]*concurrency.Mutex
}

// newSession grants a lease under ctx (bounded) and keeps it alive under
// keepCtx. concurrency.NewSession would grant under the keep-alive context,
// which has no per-call bound.
func (l *etcdLocker) newSession(ctx context.Context) error {
	lease, err := l.cli.Grant(ctx, int64(l.ttl))
	if err != nil {
		return fmt.Errorf("lease grant: %w", err)
	}
	s, err := concurrency.NewSession(l.cli, concurrency.WithLease(lease.ID),
		concurrency.WithTTL(l.ttl), concurrency.WithContext(l.keepCtx))
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	l.session = s
	return nil
}

// sessionLost reports whether the session's lease is no longer kept alive
// (it expired or its keep-alive stream failed); the keys under it are or
// will be gone.
func (l *etcdLocker) sessionLost() bool {
	select {
	case <-l.session.Done():
		return true
	default:
		return false
	}
}

func (l *etcdLocker) acquire(ctx context.Context, name, _ string) (acquireResult, error) {
	if l.session == nil || l.sessionLost() {
		// A user's program would start a new session; so does the worker.
		// The old lease is gone, and with it any key this worker had put.
		if err := l.newSession(ctx); err != nil {
			return acquireResult{}, err
		}
	}
	m := concurrency.NewMutex(l.session, etcdKeyPrefix+name)
	err := m.TryLock(ctx)
	if errors.Is(err, concurrency.ErrLocked) {
		return acquireResult{}, nil
	}
	if err != nil {
		l.cleanup(m)
		return acquireResult{}, err
	}
	l.held[name] = m
	return acquireResult{granted: true, token: m.Header().Revision}, nil
}

func (l *etcdLocker) release(ctx context.Context, name, _ string) (bool, bool, error) {
	m, ok := l.held[name]
	if !ok {
		return false, false, nil
	}
	delete(l.held, name)
	// Unlock does not say whether the key was still there; it is unless the
	// session's lease ended, and then etcd has already deleted it.
	lost := l.sessionLost()
	if err := m.Unlock(ctx); err != nil {
		l.cleanup(m)
		return false, false, err
	}
	return !lost, false, nil
}

// cleanup deletes this session's key of a mutex whose TryLock or Unlock
// failed, if it is still there: the session keeps it alive, so unlike a
// lockd or redis lock it would not expire and would block the name for the
// rest of the run. Best effort, bounded by the call timeout.
func (l *etcdLocker) cleanup(m *concurrency.Mutex) {
	key := m.Key()
	if key == "" || key == "\x00" {
		return
	}
	ctx, cancel := context.WithTimeout(l.keepCtx, l.timeout)
	_, _ = l.cli.Delete(ctx, key)
	cancel()
}

// close stops the session's keep-alives, revokes its lease (bounded by the
// call timeout) and closes the client.
func (l *etcdLocker) close() {
	if l.session != nil {
		l.session.Orphan()
		ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
		_, _ = l.cli.Revoke(ctx, l.session.Lease())
		cancel()
	}
	_ = l.cli.Close()
}

// newEtcdLockers makes one client and one session per worker, the worker's
// client talking to its endpoint (round-robin), all in parallel. keepCtx
// bounds the sessions' keep-alives; each grant is bounded by the timeout.
// The returned function releases everything (in parallel, each bounded by
// the timeout).
func newEtcdLockers(keepCtx context.Context, cfg config) ([]locker, func(), error) {
	lg, err := logutil.CreateDefaultZapLogger(zapcore.ErrorLevel)
	if err != nil {
		return nil, nil, err
	}
	lg = lg.Named("etcd-client")
	ls := make([]*etcdLocker, cfg.clients)
	errs := make([]error, cfg.clients)
	var wg sync.WaitGroup
	for i := range ls {
		ep := cfg.endpoints[endpointOf(i, len(cfg.endpoints))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ls[i], errs[i] = newEtcdLocker(keepCtx, cfg, ep, lg)
		}()
	}
	wg.Wait()
	closeAll := func() {
		var wg sync.WaitGroup
		for _, l := range ls {
			if l == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.close()
			}()
		}
		wg.Wait()
		_ = lg.Sync()
	}
	if err := firstError(errs); err != nil {
		closeAll()
		return nil, nil, err
	}
	lockers := make([]locker, len(ls))
	for i, l := range ls {
		lockers[i] = l
	}
	return lockers, closeAll, nil
}

// newEtcdLocker makes one worker's client and session; the session's grant
// is the check that the endpoint answers.
func newEtcdLocker(keepCtx context.Context, cfg config, endpoint string, lg *zap.Logger) (*etcdLocker, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: cfg.timeout,
		Logger:      lg,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", endpoint, err)
	}
	l := &etcdLocker{
		cli:     cli,
		ttl:     etcdTTLSeconds(cfg.ttl),
		keepCtx: keepCtx,
		timeout: cfg.timeout,
		held:    make(map[string]*concurrency.Mutex),
	}
	ctx, cancel := context.WithTimeout(keepCtx, cfg.timeout)
	err = l.newSession(ctx)
	cancel()
	if err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("%s: %w", endpoint, err)
	}
	return l, nil
}

// firstError is the first non-nil error of errs (setup reports one failure,
// not fifty copies of it).
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
