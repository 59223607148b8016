package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Modes of operation.
const (
	modeLockd = "lockd" // LOCK / UNLOCK against lockd
	modeRedis = "redis" // SET NX PX / compare-and-delete script against redis-server
	modeEtcd  = "etcd"  // concurrency.Mutex TryLock / Unlock against etcd (v3 API)
)

// config is everything one run needs. Defaults live in parseFlags.
type config struct {
	endpoints    []string      // host:port (etcd: client URLs without scheme), workers are spread over them round-robin
	clients      int           // number of concurrent workers
	names        int           // number of distinct lock names
	duration     time.Duration // measured window
	warmup       time.Duration // run before the window; nothing recorded
	ttl          time.Duration // lease of every acquire (PX); etcd: session TTL, rounded up to seconds
	timeout      time.Duration // bound on every network call
	mode         string        // modeLockd, modeRedis or modeEtcd
	waitReplicas int           // redis mode: WAIT n 1000 after each write
	password     string        // lockd and redis only
	jsonOut      bool
	seed         uint64       // worker i uses seed+i
	protocol     int          // RESP version go-redis negotiates (2 or 3); unused by etcd
	prefix       string       // lock name prefix
	pipeline     int          // lockd, redis: commands per pipeline (1: one command per round trip)
	serverPids   []serverProc // server processes whose CPU time is measured in the window
}

// maxPipeline bounds -pipeline.
const maxPipeline = 1000

// parseFlags turns the command line into a validated config.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("lockbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoints := fs.String("endpoints", "127.0.0.1:6379", "comma-separated host:port list; workers are spread over them round-robin")
	fs.IntVar(&c.clients, "clients", 50, "number of concurrent clients (workers)")
	fs.IntVar(&c.names, "names", 10000, "number of distinct lock names")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured duration")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "warm-up before the measured window (not recorded)")
	fs.DurationVar(&c.ttl, "ttl", 30*time.Second, "lease of each lock (sent as PX milliseconds; etcd: session TTL, rounded up to whole seconds)")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "timeout of every network call")
	fs.StringVar(&c.mode, "mode", modeLockd, "lockd (LOCK/UNLOCK), redis (SET NX PX / compare-and-delete) or etcd (concurrency.Mutex TryLock/Unlock, one session per client)")
	fs.IntVar(&c.waitReplicas, "wait-replicas", 0, "redis mode: send WAIT <n> 1000 after each write")
	fs.StringVar(&c.password, "password", "", "password (AUTH); lockd and redis modes only")
	fs.BoolVar(&c.jsonOut, "json", false, "print the result as one JSON object")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed; worker i uses seed+i")
	fs.IntVar(&c.protocol, "protocol", 3, "RESP protocol version to negotiate (2 or 3)")
	fs.StringVar(&c.prefix, "prefix", "lockbench:", "prefix of every lock name")
	fs.IntVar(&c.pipeline, "pipeline", 1, "commands per round trip: with N > 1 each worker sends acquires of N distinct random names in one pipeline, "+
		"then the releases of the granted ones in another; every command's latency is recorded as its pipeline's round trip "+
		"(latency per pipeline of N). 1 to 1000; lockd and redis modes, not with -wait-replicas")
	serverPids := fs.String("server-pids", "", "comma-separated pids, or name=pid pairs, of the server processes (Linux): report their CPU time "+
		"in the measured window (/proc/<pid>/stat) per acquire (= per LOCK+UNLOCK cycle) and per command, and each one's share; in lockd mode also the raft entries "+
		"committed in the window (commit_index of INFO replication on the first endpoint) and the CPU per entry of each process")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	eps, err := splitEndpoints(*endpoints)
	if err != nil {
		return c, err
	}
	c.endpoints = eps
	if c.serverPids, err = parseServerPids(*serverPids); err != nil {
		return c, err
	}
	return c, c.validate()
}

// validate reports the first setting that cannot work.
func (c config) validate() error {
	switch {
	case len(c.endpoints) == 0:
		return errors.New("-endpoints: at least one endpoint is needed")
	case c.clients < 1:
		return errors.New("-clients must be at least 1")
	case c.names < 1:
		return errors.New("-names must be at least 1")
	case c.duration <= 0:
		return errors.New("-duration must be positive")
	case c.warmup < 0:
		return errors.New("-warmup must not be negative")
	case c.ttl < time.Millisecond:
		return errors.New("-ttl must be at least 1ms")
	case c.timeout <= 0:
		return errors.New("-timeout must be positive")
	case c.mode != modeLockd && c.mode != modeRedis && c.mode != modeEtcd:
		return fmt.Errorf("-mode must be %q, %q or %q, not %q", modeLockd, modeRedis, modeEtcd, c.mode)
	case c.waitReplicas < 0:
		return errors.New("-wait-replicas must not be negative")
	case c.waitReplicas > 0 && c.mode != modeRedis:
		return errors.New("-wait-replicas applies to -mode redis only")
	case c.waitReplicas > 0 && c.timeout <= waitTimeout:
		return fmt.Errorf("-timeout must exceed the %v WAIT timeout", waitTimeout)
	case c.password != "" && c.mode == modeEtcd:
		return errors.New("-password applies to -mode lockd and redis only")
	case c.protocol != 2 && c.protocol != 3:
		return errors.New("-protocol must be 2 or 3")
	case c.pipeline < 1 || c.pipeline > maxPipeline:
		return fmt.Errorf("-pipeline must be between 1 and %d", maxPipeline)
	case c.pipeline > 1 && c.mode == modeEtcd:
		return errors.New("-pipeline > 1 applies to -mode lockd and redis only (etcd locks one name per call)")
	case c.pipeline > 1 && c.waitReplicas > 0:
		return errors.New("-pipeline > 1 cannot be combined with -wait-replicas (WAIT follows each single write)")
	case c.pipeline > c.names:
		return fmt.Errorf("-pipeline (%d) must not exceed -names (%d): a pipeline locks distinct names", c.pipeline, c.names)
	}
	return nil
}

// splitEndpoints parses "host:port[,host:port...]", ignoring blanks around commas.
func splitEndpoints(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(part); err != nil {
			return nil, fmt.Errorf("-endpoints: %q: %v", part, err)
		}
		out = append(out, part)
	}
	if len(out) == 0 {
		return nil, errors.New("-endpoints: at least one endpoint is needed")
	}
	return out, nil
}

// endpointOf is the endpoint index that worker w uses (round-robin).
func endpointOf(w, endpoints int) int { return w % endpoints }

// workersPerEndpoint counts the workers each endpoint serves under endpointOf.
func workersPerEndpoint(clients, endpoints int) []int {
	n := make([]int, endpoints)
	for w := 0; w < clients; w++ {
		n[endpointOf(w, endpoints)]++
	}
	return n
}
