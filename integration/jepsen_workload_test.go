package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockd/lockd/integration/check"
	"github.com/redis/go-redis/v9"
)

// jepsenOpTimeout bounds every client operation of the suite.
const jepsenOpTimeout = 3 * time.Second

// jepsenClient returns a go-redis client of addr for the suite: no retries,
// the context's deadline honoured, reads bounded by jepsenOpTimeout; over
// TLS with tlsCfg when it is not nil.
func jepsenClient(addr string, tlsCfg *tls.Config) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		TLSConfig:             tlsCfg,
		MaxRetries:            -1,
		DialTimeout:           time.Second,
		ReadTimeout:           jepsenOpTimeout,
		WriteTimeout:          time.Second,
		ContextTimeoutEnabled: true,
		PoolSize:              2,
	})
}

// outcome is how an op's error is recorded.
type outcome int

const (
	outcomeOK      outcome = iota
	outcomeFailed          // certainly not applied
	outcomeUnknown         // may or may not have been applied
)

// classify maps a client error to an outcome. Only replies PROTOCOL.md says
// were not applied, and connections that were never made (the command was
// never sent), are failures; everything else is indeterminate.
func classify(err error) outcome {
	if err == nil || errors.Is(err, redis.Nil) {
		return outcomeOK
	}
	if strings.HasPrefix(err.Error(), "TRYAGAIN no leader") {
		return outcomeFailed
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return outcomeFailed
	}
	return outcomeUnknown
}

// expectedErr says whether err is one the suite expects under faults: a
// -TRYAGAIN, a timeout or a network error. Anything else (an -ERR reply, say)
// is logged as unexpected.
func expectedErr(err error) bool {
	if strings.HasPrefix(err.Error(), "TRYAGAIN") || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "EOF") || strings.Contains(s, "connection reset") ||
		strings.Contains(s, "broken pipe") || strings.Contains(s, "use of closed") ||
		strings.Contains(s, "connection refused") || strings.Contains(s, "i/o timeout")
}

// workload is the state the lock clients share.
type workload struct {
	c       *cluster
	hist    *check.History
	lt      *leaderTracker
	seed    int64
	hot     int   // lock names in use at once
	rotate  int64 // ops per generation of names
	begun   atomic.Int64
	nextPID atomic.Int64 // next porcupine client id for a client that lost an op
	// Linearizable OWNER reads (CLIENT READS LINEARIZABLE) on any node:
	// sent, answered (and checked), refused or timed out (dropped).
	linSent, linOK atomic.Int64

	mu         sync.Mutex
	unexpected []string // first unexpected errors, for the report
	skipped    int      // reads skipped for want of a leader
	reads      []readRecord
}

func (w *workload) noteUnexpected(what string, err error) {
	noteUnexpected(&w.mu, &w.unexpected, what, err)
}

// name returns one of the hot lock names of the current generation.
func (w *workload) name(rng *rand.Rand) string {
	gen := w.begun.Load() / w.rotate
	return fmt.Sprintf("j%d-g%d-k%d", w.seed, gen, rng.Intn(w.hot))
}

// current says whether name belongs to the current generation of names.
func (w *workload) current(name string) bool {
	return strings.HasPrefix(name, fmt.Sprintf("j%d-g%d-", w.seed, w.begun.Load()/w.rotate))
}

// lockClient is one client of the workload: it sends LOCK and UNLOCK (no
// lease) to its home node and OWNER to the current leader. Every other
// client locks as the Redis lock libraries do instead: SET NX PX (a lease
// far longer than the run) and a compare-and-delete script, the one the
// libraries share (run as the table's own command) or another (run by the
// interpreter on the leader), alternately.
type lockClient struct {
	w     *workload
	id    int
	pid   int // porcupine client id; a fresh one after each indeterminate op
	owner string
	home  int
	redis bool // SET NX PX and scripts instead of LOCK and UNLOCK
	nodeConns
	rng  *rand.Rand
	held map[string]bool // locks this client believes it holds
}

func (w *workload) newClient(id int) *lockClient {
	lc := &lockClient{
		w: w, id: id, pid: id, owner: fmt.Sprintf("c%d", id), home: 1 + id%len(w.c.nodes), redis: id%2 == 1,
		nodeConns: dialNodes(w.c), rng: rand.New(rand.NewSource(w.seed*1000 + int64(id))),
		held: map[string]bool{},
	}
	return lc
}

// nodeConns are a Jepsen client's connections to each node, by node id:
// rdbs plain, lin in linearizable read mode.
type nodeConns struct {
	rdbs map[int]*redis.Client
	lin  map[int]*redis.Client
}

// dialNodes makes connections to each node c has now.
func dialNodes(c *cluster) nodeConns {
	n := nodeConns{rdbs: map[int]*redis.Client{}, lin: map[int]*redis.Client{}}
	for i, p := range c.nodes {
		n.rdbs[i] = jepsenClient(p.client, c.clientTLS())
		n.lin[i] = linearizableClient(p.client, c.clientTLS())
	}
	return n
}

func (n nodeConns) close() {
	for _, r := range n.rdbs {
		r.Close()
	}
	for _, r := range n.lin {
		r.Close()
	}
}

// linearizableClient is jepsenClient whose connections are in linearizable
// read mode.
func linearizableClient(addr string, tlsConf *tls.Config) *redis.Client {
	base := jepsenClient(addr, tlsConf)
	opts := *base.Options()
	base.Close()
	opts.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		return cn.Do(ctx, "CLIENT", "READS", "LINEARIZABLE").Err()
	}
	return redis.NewClient(&opts)
}

// run sends ops until ctx is done.
func (lc *lockClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		name := lc.w.name(lc.rng)
		if lc.rng.Intn(3) > 0 {
			// Mostly work on a lock this client holds, so locks change hands.
			if h := lc.holding(); h != "" && lc.w.current(h) {
				name = h
			}
		}
		var o outcome
		switch r := lc.rng.Float64(); {
		case r < 0.125:
			o = lc.read(name)
		case r < 0.25:
			o = lc.linearizableRead(name)
		case lc.held[name] && r < 0.9:
			o = lc.unlock(name)
		default:
			o = lc.lock(name)
		}
		pause := time.Duration(5+lc.rng.Intn(20)) * time.Millisecond
		if o != outcomeOK {
			pause = time.Duration(100+lc.rng.Intn(200)) * time.Millisecond
		}
		wait(ctx, pause)
	}
}

// holding returns a lock this client believes it holds, or "".
func (lc *lockClient) holding() string {
	for n := range lc.held {
		return n
	}
	return ""
}

// finish records an op's error and returns its outcome; after an
// indeterminate op the client continues as a new porcupine client.
func (lc *lockClient) finish(p check.Pending, what string, err error) outcome {
	o := settle(p, what, err, lc.w.noteUnexpected)
	if o == outcomeUnknown {
		lc.pid = int(lc.w.nextPID.Add(1))
	}
	return o
}

// settle finishes p as failed or indeterminate by err (classify; a success
// is finished by its caller with its reply) and passes an error none of the
// suite's clients expect (not null, -TRYAGAIN, a timeout or the network) to
// note. It returns the outcome.
func settle(p check.Pending, what string, err error, note func(what string, err error)) outcome {
	o := classify(err)
	switch o {
	case outcomeFailed:
		p.Failed()
	case outcomeUnknown:
		p.Unknown()
	}
	if err != nil && !errors.Is(err, redis.Nil) && !expectedErr(err) {
		note(what, err)
	}
	return o
}

// noteUnexpected appends what and err to list, under mu, up to 20 of them.
func noteUnexpected(mu *sync.Mutex, list *[]string, what string, err error) {
	mu.Lock()
	defer mu.Unlock()
	if len(*list) < 20 {
		*list = append(*list, fmt.Sprintf("%s: %v", what, err))
	}
}

func (lc *lockClient) lock(name string) outcome {
	if lc.redis {
		return lc.setNX(name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	lc.w.begun.Add(1)
	p := lc.w.hist.Begin(lc.pid, check.KindLock, name, lc.owner)
	tok, err := lockCmd(ctx, lc.rdbs[lc.home], name, lc.owner)
	if err != nil {
		o := lc.finish(p, "LOCK", err)
		if o == outcomeUnknown {
			lc.held[name] = true // maybe: try to release it later
		}
		return o
	}
	p.Locked(tok)
	if tok > 0 {
		lc.held[name] = true
	}
	return outcomeOK
}

// The compare-and-delete releases: the lock libraries' (a fast path in
// lockd) and one only the interpreter runs.
var (
	releaseScript     = redis.NewScript(`if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end`)
	slowReleaseScript = redis.NewScript(`local v = redis.call('GET', KEYS[1]) if v ~= ARGV[1] then return 0 end redis.call('DEL', KEYS[1]) return 1`)
)

// setNX takes name as Redis's lock libraries do.
func (lc *lockClient) setNX(name string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	lc.w.begun.Add(1)
	p := lc.w.hist.Begin(lc.pid, check.KindSetNX, name, lc.owner)
	ok, err := lc.rdbs[lc.home].SetNX(ctx, name, lc.owner, 10*time.Minute).Result()
	if err != nil {
		o := lc.finish(p, "SET NX", err)
		if o == outcomeUnknown {
			lc.held[name] = true
		}
		return o
	}
	p.Set(ok)
	if ok {
		lc.held[name] = true
	}
	return outcomeOK
}

func (lc *lockClient) unlock(name string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	lc.w.begun.Add(1)
	p := lc.w.hist.Begin(lc.pid, check.KindUnlock, name, lc.owner)
	var n int64
	var err error
	switch {
	case !lc.redis:
		n, err = lc.rdbs[lc.home].Do(ctx, "UNLOCK", name, lc.owner).Int64()
	case lc.rng.Intn(2) == 0:
		n, err = releaseScript.Run(ctx, lc.rdbs[lc.home], []string{name}, lc.owner).Int64()
	default:
		n, err = slowReleaseScript.Run(ctx, lc.rdbs[lc.home], []string{name}, lc.owner).Int64()
	}
	if err != nil {
		return lc.finish(p, "UNLOCK", err)
	}
	p.Unlocked(n == 1)
	delete(lc.held, name)
	return outcomeOK
}

// read sends OWNER to the node the tracker says leads, and records it only
// if that node provably led throughout: it says it leads term T before the
// call and again after the reply, and after the reply another node still
// names it leader in term T. Then no other leader can have been elected
// before the reply (it would need that node's vote, or the old leader's, and
// both are still in term T), so no write of a later term can be missed. A
// read that cannot be confirmed is recorded as indeterminate (the checker
// drops it): lockd serves OWNER from the local replica, and a deposed leader
// that does not know it yet is not "the leader" this check is about.
func (lc *lockClient) read(name string) outcome {
	w := lc.w
	lead := w.lt.get()
	var pre map[string]string
	if lead != 0 {
		pre = infoOf(lc.rdbs[lead])
	}
	if pre == nil || pre["role"] != "leader" {
		w.mu.Lock()
		w.skipped++
		w.mu.Unlock()
		return outcomeOK
	}
	term := pre["raft_term"]
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	w.begun.Add(1)
	rec := readRecord{Name: name, Client: lc.pid, Call: w.hist.Now(), Node: lead, Term: term}
	p := w.hist.Begin(lc.pid, check.KindOwner, name, "")
	o, err := ownerOf(ctx, lc.rdbs[lead], name)
	if err != nil {
		return lc.finish(p, "OWNER", err)
	}
	rec.Holder = o
	if post := infoOf(lc.rdbs[lead]); post != nil && post["role"] == "leader" && post["raft_term"] == term {
		rec.LeaderAfter = true
		for j, r := range lc.rdbs {
			if j == lead {
				continue
			}
			if m := infoOf(r); m != nil && m["leader_id"] == strconv.Itoa(lead) && m["raft_term"] == term {
				rec.ConfirmedBy = j
				break
			}
		}
	}
	w.mu.Lock()
	w.reads = append(w.reads, rec)
	w.mu.Unlock()
	if rec.ConfirmedBy == 0 {
		p.Unknown()
		return outcomeOK
	}
	p.Read(o)
	return outcomeOK
}

// linearizableRead sends OWNER in linearizable mode to a node picked at
// random (a follower, the leader, a leader cut off from the others that does
// not know it yet) and records its answer as a plain read: the checker then
// proves it saw every write acknowledged before it was sent. A refused or
// timed-out read is dropped.
func (lc *lockClient) linearizableRead(name string) outcome {
	w := lc.w
	node := 1 + lc.rng.Intn(len(lc.lin))
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	w.begun.Add(1)
	w.linSent.Add(1)
	p := w.hist.Begin(lc.pid, check.KindOwner, name, "")
	o, err := ownerOf(ctx, lc.lin[node], name)
	if err != nil {
		p.Unknown()
		if !expectedErr(err) {
			w.noteUnexpected("OWNER (linearizable)", err)
		}
		return outcomeFailed
	}
	w.linOK.Add(1)
	p.Read(o)
	return outcomeOK
}

// readRecord is what the suite knows of one OWNER read, for the failure files.
type readRecord struct {
	Name        string
	Client      int
	Call        int64 // just before the op's call
	Node        int
	Term        string
	Holder      string
	LeaderAfter bool
	ConfirmedBy int // the node that named Node leader in Term after the read; 0: unconfirmed
}

// infoOf returns the INFO replication fields of a node through rdb, or nil.
func infoOf(rdb *redis.Client) map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	s, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, l := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// leaseWorkload is the end-to-end lease test: clients take leased locks and
// do fenced read-modify-write increments of a store resource; zombies sleep
// past their lease between the read and the write.
type leaseWorkload struct {
	c         *cluster
	hist      *check.History // their LOCKs, for the cluster-wide fencing check
	store     *check.Store
	seed      int64
	resources int
	lease     time.Duration

	grants, zombies, staleReads, staleWrites, errs atomic.Int64
}

func (lw *leaseWorkload) resource(k int) string { return fmt.Sprintf("res-%d", k) }
func (lw *leaseWorkload) lockName(k int) string { return fmt.Sprintf("lease-%d-r%d", lw.seed, k) }

// run is one lease client until ctx is done.
func (lw *leaseWorkload) run(ctx context.Context, id int) {
	rng := rand.New(rand.NewSource(lw.seed*7919 + int64(id)))
	owner := fmt.Sprintf("lease-c%d", id)
	rdb := jepsenClient(lw.c.nodes[1+id%len(lw.c.nodes)].client, lw.c.clientTLS())
	defer rdb.Close()
	px := lw.lease.Milliseconds()
	for ctx.Err() == nil {
		k := rng.Intn(lw.resources)
		name, res := lw.lockName(k), lw.resource(k)
		octx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
		p := lw.hist.Begin(id, check.KindLock, name, owner)
		tok, err := lockCmd(octx, rdb, name, owner, "PX", px)
		cancel()
		if err != nil {
			switch classify(err) {
			case outcomeFailed:
				p.Failed()
			default:
				p.Unknown()
			}
			lw.errs.Add(1)
			wait(ctx, time.Duration(100+rng.Intn(200))*time.Millisecond)
			continue
		}
		p.Locked(tok)
		if tok == 0 {
			wait(ctx, time.Duration(30+rng.Intn(70))*time.Millisecond)
			continue
		}
		lw.grants.Add(1)
		v, err := lw.store.Read(res, tok)
		if err != nil {
			lw.staleReads.Add(1) // the lease ran out before the reply came
			continue
		}
		zombie := rng.Intn(4) == 0
		if zombie {
			lw.zombies.Add(1)
			wait(context.Background(), lw.lease*3/2) // past the lease: someone else may take it
		}
		if err := lw.store.Write(res, tok, func(int64) int64 { return v + 1 }); err != nil {
			lw.staleWrites.Add(1)
			continue
		}
		if !zombie {
			octx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
			rdb.Do(octx, "UNLOCK", name, owner)
			cancel()
		}
		wait(ctx, time.Duration(rng.Intn(30))*time.Millisecond)
	}
}
