// Command lockbench measures lock throughput and latency against lockd or,
// for comparison, against redis-server using the single-instance Redis lock
// recipe, or against etcd using its standard lock recipe (clientv3/concurrency).
//
// Each of -clients workers loops until the deadline: it picks one of -names
// lock names at random, acquires it (lockd: LOCK name owner PX ttl; redis:
// SET name owner NX PX ttl, then WAIT n 1000 if -wait-replicas n; etcd:
// Mutex.TryLock) and, when granted, releases it (lockd: UNLOCK name owner;
// redis: EVALSHA of a compare-and-delete script, then WAIT; etcd:
// Mutex.Unlock). Workers are spread round-robin over -endpoints; for lockd
// and redis each endpoint has one go-redis client whose pool holds a
// connection per worker; for etcd each worker has its own etcd client and
// session (see etcdLocker). Latencies go into HDR histograms (1 µs..1 h,
// 3 significant digits).
//
// With -pipeline N > 1 (lockd and redis without -wait-replicas) a worker
// instead picks N distinct names at random, sends their N acquires in one
// go-redis pipeline and then the releases of the granted ones in another.
// Counts stay per command (each grant is one acquire, each null one busy);
// each answered command is recorded with its pipeline's round-trip time, so
// the latencies reported are per pipeline of N.
//
// With -server-pids (Linux) lockbench reads each server process's CPU time
// (utime+stime in /proc/<pid>/stat) at the start and at the end of the
// measured window and reports the servers' CPU per granted acquire (which is
// per LOCK+UNLOCK cycle: each grant is released once), per answered command,
// and each process's share; in lockd mode it also reads commit_index from
// INFO replication of the first endpoint at the same two instants and
// reports the raft entries committed, commands per entry and each process's
// CPU per entry. A server process that is gone at either instant leaves the
// CPU unmeasured, says why, and fails the run.
//
// Exit status: 0 when something succeeded, 1 when every operation failed,
// setup failed or the servers' CPU could not be measured, 2 for bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "lockbench:", err)
		return 2
	}

	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	// The whole run, setup included, ends by this deadline whatever happens;
	// closing etcd sessions afterwards may take one more -timeout.
	hardLimit := time.Duration(len(cfg.endpoints))*cfg.timeout + cfg.warmup + cfg.duration + 2*cfg.timeout + time.Second
	if len(cfg.serverPids) > 0 {
		hardLimit += 2 * cfg.timeout // getconf and the first INFO, in newWindowMeter
	}
	ctx, cancel := context.WithTimeout(sigCtx, hardLimit)
	defer cancel()

	var meter *windowMeter
	if len(cfg.serverPids) > 0 {
		if meter, err = newWindowMeter(ctx, cfg); err != nil {
			fmt.Fprintln(stderr, "lockbench: -server-pids:", err)
			return 1
		}
		defer meter.close()
	}

	lockers, closeLockers, err := newLockers(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "lockbench:", err)
		return 1
	}
	defer closeLockers()

	names := make([]string, cfg.names)
	for i := range names {
		names[i] = cfg.prefix + strconv.Itoa(i)
	}
	shards := make([]*histShard, min(cfg.clients, 64))
	for i := range shards {
		shards[i] = &histShard{acquire: newHist(), release: newHist()}
	}
	workers := make([]*worker, cfg.clients)
	for i := range workers {
		workers[i] = &worker{
			l:         lockers[i],
			owner:     uuid.NewString(),
			names:     names,
			rng:       rand.New(rand.NewPCG(cfg.seed+uint64(i), uint64(i))),
			timeout:   cfg.timeout,
			hist:      shards[i%len(shards)],
			uncertain: make(map[string]struct{}),
			pipeline:  cfg.pipeline,
		}
		if cfg.pipeline > 1 {
			p, ok := lockers[i].(pipeliner)
			if !ok { // config.validate allows -pipeline only where it is
				fmt.Fprintf(stderr, "lockbench: -mode %s cannot pipeline\n", cfg.mode)
				return 1
			}
			workers[i].p = p
		}
	}

	begin := time.Now()
	from := begin.Add(cfg.warmup)
	stop := from.Add(cfg.duration)
	if meter != nil {
		meter.start(ctx, from, stop)
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx, from, stop)
		}()
	}
	wg.Wait()

	interrupted := sigCtx.Err() != nil
	window := cfg.duration
	if now := time.Now(); now.Before(stop) { // interrupted early
		window = max(now.Sub(from), 0)
	}
	var total counters
	for _, w := range workers {
		total.merge(&w.c)
	}
	acquire, release := newHist(), newHist()
	for _, s := range shards {
		acquire.Merge(s.acquire)
		release.Merge(s.release)
	}
	rep := buildReport(cfg, &total, acquire, release, window, interrupted)
	if meter != nil {
		if rep.ServerCPU, err = meter.buildServerCPU(meter.result(), &total); err != nil {
			rep.ServerCPUError = err.Error()
		}
	}
	if cfg.jsonOut {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeHuman(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "lockbench:", err)
		return 1
	}
	if rep.allFailed() {
		fmt.Fprintln(stderr, "lockbench: no operation succeeded")
		return 1
	}
	if rep.ServerCPUError != "" {
		fmt.Fprintln(stderr, "lockbench: server CPU not measured:", rep.ServerCPUError)
		return 1
	}
	return 0
}

// newLockers makes one locker per worker, spread round-robin over the
// endpoints, and checks that every endpoint answers; the function it returns
// releases them, bounded by the call timeout.
func newLockers(ctx context.Context, cfg config) ([]locker, func(), error) {
	if cfg.mode == modeEtcd {
		return newEtcdLockers(ctx, cfg)
	}
	clients := make([]*redis.Client, len(cfg.endpoints))
	for i, n := range workersPerEndpoint(cfg.clients, len(cfg.endpoints)) {
		clients[i] = newClient(cfg, cfg.endpoints[i], n)
	}
	closeAll := func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}
	perEndpoint, err := setup(ctx, cfg, clients)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	lockers := make([]locker, cfg.clients)
	for w := range lockers {
		lockers[w] = perEndpoint[endpointOf(w, len(perEndpoint))]
	}
	return lockers, closeAll, nil
}

// newClient makes the go-redis client for one endpoint, with a connection per
// worker and no retries (a retry would hide errors and distort latency).
func newClient(cfg config, addr string, workers int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		Password:              cfg.password,
		Protocol:              cfg.protocol,
		PoolSize:              workers,
		PoolTimeout:           cfg.timeout,
		DialTimeout:           cfg.timeout,
		DialerRetries:         1,
		ReadTimeout:           cfg.timeout,
		WriteTimeout:          cfg.timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DisableIdentity:       true,
	})
}

// setup checks that every endpoint answers PING and builds its locker; in
// redis mode it loads the release script on every endpoint.
func setup(ctx context.Context, cfg config, clients []*redis.Client) ([]locker, error) {
	ttlMs := cfg.ttl.Milliseconds()
	lockers := make([]locker, len(clients))
	for i, c := range clients {
		cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		err := c.Ping(cctx).Err()
		if err == nil && cfg.mode == modeRedis {
			var sha string
			sha, err = c.ScriptLoad(cctx, compareAndDelete).Result()
			lockers[i] = redisLocker{rdb: c, ttlMs: ttlMs, sha: sha, waitReplicas: cfg.waitReplicas}
		} else {
			lockers[i] = lockdLocker{rdb: c, ttlMs: ttlMs}
		}
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.endpoints[i], err)
		}
	}
	return lockers, nil
}
