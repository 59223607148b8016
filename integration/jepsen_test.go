// The Jepsen-style suite: concurrent clients lock, unlock and read a few hot
// lock names while a nemesis kills, pauses and partitions nodes; at the end
// every node is killed and restarted, every lock is read once more, and the
// history is checked for linearizability (with durability), fencing order,
// and, through a fenced store, that leases plus fencing tokens lose no
// acknowledged write even with zombie clients. Clients of read/write locks
// and semaphores run alongside, checked against their own model
// (jepsen_shared_test.go).
//
// CI runs TestJepsenShort (about a minute; skipped under -short) and
// TestJepsenShortTLS (half a minute, TLS on both ports):
//
//	go test -count=1 -run TestJepsenShort ./integration/
//	go test -race -count=1 -run TestJepsenShort ./integration/
//	LOCKD_JEPSEN_SEED=42 go test -count=1 -run TestJepsenShort ./integration/   # replay a seed's schedule
//	LOCKD_JEPSEN_TLS=1 go test -count=1 -run TestJepsenShort ./integration/     # TLS on both ports
//
// With LOCKD_JEPSEN_TLS=1 (here and in the soak) the nodes serve clients on
// TLS only and speak to each other over mutual TLS (clusterOpts.tls): every
// client of the suite, and the harness's probes, use TLS.
//
// The soak runs the same suite for each seed, for as long as asked:
//
//	LOCKD_SOAK=1 LOCKD_SOAK_DURATION=10m LOCKD_SOAK_SEEDS=1,2,3 go test -run TestJepsenSoak -timeout 2h ./integration/
//
// On a failure the history (JSON lines), porcupine's HTML visualization and
// the nodes' logs are kept in $TMPDIR/lockd-jepsen-<seed>/ and the path is
// printed; a passing run removes that directory. The seed fixes the nemesis
// schedule and every client's choices, not the timing of the run.
package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockd/lockd/integration/check"
	"github.com/redis/go-redis/v9"
)

// jepsenConfig sizes one run of the suite.
type jepsenConfig struct {
	seed         int64
	duration     time.Duration // of the workload under the nemesis
	clients      int           // lock clients (LOCK/UNLOCK/OWNER, no lease)
	leaseClients int           // clients of the end-to-end lease test
	hot          int           // lock names in use at once
	rotate       int64         // ops before the suite moves to fresh names
	linTimeout   time.Duration // per-lock bound of the linearizability search
	tls          bool          // TLS on both ports (LOCKD_JEPSEN_TLS)
}

func defaultJepsenConfig(seed int64, d time.Duration) jepsenConfig {
	return jepsenConfig{
		seed: seed, duration: d, clients: 12, leaseClients: 4, hot: 3, rotate: 500,
		linTimeout: 30 * time.Second, tls: os.Getenv("LOCKD_JEPSEN_TLS") != "",
	}
}

func TestJepsenShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the Jepsen suite takes about a minute; skipped under -short")
	}
	seed := time.Now().UnixNano() % 100000
	if s := os.Getenv("LOCKD_JEPSEN_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("LOCKD_JEPSEN_SEED=%q: %v", s, err)
		}
		seed = v
	}
	runJepsen(t, defaultJepsenConfig(seed, 40*time.Second))
}

// TestJepsenShortTLS is the short suite with TLS on both ports: clients on
// TLS only, peers on mutual TLS (LOCKD_JEPSEN_TLS=1 does the same for the
// other runs).
func TestJepsenShortTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("the Jepsen suite takes about a minute; skipped under -short")
	}
	cfg := defaultJepsenConfig(time.Now().UnixNano()%100000, 30*time.Second)
	cfg.tls = true
	runJepsen(t, cfg)
}

func TestJepsenSoak(t *testing.T) {
	if os.Getenv("LOCKD_SOAK") == "" {
		t.Skip("set LOCKD_SOAK=1 (and LOCKD_SOAK_DURATION, LOCKD_SOAK_SEEDS) to run the soak")
	}
	d := 10 * time.Minute
	if s := os.Getenv("LOCKD_SOAK_DURATION"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("LOCKD_SOAK_DURATION=%q: %v", s, err)
		}
		d = v
	}
	seeds := []int64{1}
	if s := os.Getenv("LOCKD_SOAK_SEEDS"); s != "" {
		seeds = nil
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				t.Fatalf("LOCKD_SOAK_SEEDS=%q: %v", s, err)
			}
			seeds = append(seeds, v)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			cfg := defaultJepsenConfig(seed, d)
			cfg.linTimeout = 2 * time.Minute
			runJepsen(t, cfg)
		})
	}
}

// runJepsen runs the whole suite once: cluster, workload under the nemesis,
// recovery, final reads, checks, report.
func runJepsen(t *testing.T, cfg jepsenConfig) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("lockd-jepsen-%d", cfg.seed))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d; workload %v; %d lock clients on %d hot names (fresh names every %d ops), %d lease clients; TLS on both ports: %v; failure artifacts go to %s",
		cfg.seed, cfg.duration, cfg.clients, cfg.hot, cfg.rotate, cfg.leaseClients, cfg.tls, dir)

	quietRedisLogger.Do(func() { redis.SetLogger(discardLogger{}) })
	c := startCluster(t, 3, clusterOpts{extra: []string{"--request-timeout", "2s", "--notify-keyspace-events", "Egx$"}, tls: cfg.tls})
	hist := check.NewHistory()
	leaseHist := hist.Sibling() // one clock: CheckFencing checks both together
	store := check.NewStore()

	var wg, trackWG sync.WaitGroup // clients; the leader tracker
	ctx, stop := context.WithCancel(context.Background())
	trackCtx, cancelTrack := context.WithCancel(context.Background())
	stopTrack := func() { cancelTrack(); trackWG.Wait() }
	stopAll := func() { stop(); wg.Wait(); stopTrack() }
	t.Cleanup(stopAll) // on t.Fatal: before the cluster is torn down

	var w *workload // set below; read by the failure cleanup after the clients stopped
	// On failure, keep what explains it.
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
			return
		}
		writeHistory(t, filepath.Join(dir, "history.jsonl"), hist.Ops())
		writeHistory(t, filepath.Join(dir, "lease-history.jsonl"), leaseHist.Ops())
		if w != nil {
			writeReads(t, filepath.Join(dir, "reads.jsonl"), w.reads)
		}
		for i, p := range c.nodes {
			copyFile(p.logPath, filepath.Join(dir, fmt.Sprintf("lockd-%d.log", i)))
		}
		t.Logf("seed %d failed: history, visualization and node logs kept in %s", cfg.seed, dir)
	})

	// One subscriber per node records the keyspace events (jepsen_notify_test.go).
	notes, err := startNotifier(c, hist)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(notes.stop)

	lt := &leaderTracker{c: c}
	lt.lead.Store(int64(lt.poll()))
	trackWG.Go(func() { lt.run(trackCtx) })

	w = &workload{c: c, hist: hist, lt: lt, seed: cfg.seed, hot: cfg.hot, rotate: cfg.rotate}
	w.nextPID.Store(int64(cfg.clients - 1))
	for i := range cfg.clients {
		lc := w.newClient(i)
		wg.Go(func() { defer lc.close(); lc.run(ctx) })
	}
	lw := &leaseWorkload{c: c, hist: leaseHist, store: store, seed: cfg.seed, resources: 2, lease: time.Second}
	for i := range cfg.leaseClients {
		wg.Go(func() { lw.run(ctx, i) })
	}
	mw := startMutexWorkload(t, ctx, &wg, c, hist, cfg.seed, dir)       // jepsen_mutex_test.go
	sw := startSharedWorkload(t, ctx, &wg, c, cfg, dir, hist.Sibling()) // jepsen_shared_test.go

	// The nemesis runs here, on the test goroutine.
	nem := newNemesis(t, c, lt, cfg.seed)
	nemCtx, nemStop := context.WithTimeout(context.Background(), cfg.duration)
	nem.run(nemCtx)
	nemStop()
	stop()
	wg.Wait() // clients are done; the tracker still runs

	// Recovery: everything healed and running, then every node killed and
	// restarted on its data, so the final reads prove durability.
	nem.heal()
	nem.settleMembers() // the added member may lead: removed, it steps down
	c.waitLeader(20*time.Second, nil)
	notes.settle(20 * time.Second)
	notes.stop()
	t.Logf("recovery: kill -9 all nodes, restart them all")
	for i := 1; i <= 3; i++ {
		c.kill(i)
	}
	for i := 1; i <= 3; i++ {
		c.start(i)
	}
	lead := c.waitLeader(20*time.Second, nil)
	waitConverged(t, c, 20*time.Second)
	stopTrack()
	t.Logf("recovery: node %d leads; all nodes applied the whole log", lead)

	names := usedNames(hist.Ops())
	leader := jepsenClient(c.nodes[lead].client, c.clientTLS())
	defer leader.Close()
	err = hist.FinalReads(int(w.nextPID.Add(1)), names, finalOwner(leader))
	if err != nil {
		t.Errorf("final reads: %v", err)
	}

	// Checks.
	ops := hist.Ops()
	leaseOps := leaseHist.Ops()
	checkStart := time.Now()
	linErr := check.CheckLinearizable(ops, check.LinearizabilityOptions{
		Timeout:           cfg.linTimeout,
		VisualizationPath: filepath.Join(dir, "linearizability.html"),
		RequireFinalReads: true,
	})
	checkTook := time.Since(checkStart)
	// The same check without the OWNER reads taken during the run (the final
	// reads stay): tells a stale read on the leader apart from a lost, doubled
	// or reordered grant or release.
	var writeOps []check.Op
	for _, op := range ops {
		if op.Kind != check.KindOwner || op.Final {
			writeOps = append(writeOps, op)
		}
	}
	writesErr := check.CheckLinearizable(writeOps, check.LinearizabilityOptions{
		Timeout:           cfg.linTimeout,
		VisualizationPath: filepath.Join(dir, "linearizability-without-reads.html"),
		RequireFinalReads: true,
	})
	if linErr != nil {
		verdict := "linearizable"
		if writesErr != nil {
			verdict = "NOT linearizable either"
		}
		t.Logf("REPORT seed %d: without the reads during the run (LOCK/UNLOCK + final reads), the history is %s", cfg.seed, verdict)
	}
	fenceErr := check.CheckFencing(slices.Concat(ops, leaseOps, sw.hist.Ops()))
	incErr := store.CheckIncrements()

	report(t, cfg, w, lw, nem, ops, leaseOps, names, checkTook)
	mw.check(t, leader, cfg.seed, cfg.linTimeout, dir, slices.Concat(ops, leaseOps, sw.hist.Ops()))
	sw.verify(t, leader, cfg.linTimeout)
	if summary, err := notes.check(ops); err != nil {
		t.Errorf("notifications: %v", err)
	} else {
		t.Logf("REPORT seed %d: notifications: %s", cfg.seed, summary)
	}

	if linErr != nil {
		if errors.Is(linErr, check.ErrUndecided) && !errors.Is(linErr, check.ErrNotLinearizable) {
			t.Errorf("linearizability NOT PROVEN (search ran out of time, not a bug by itself): %v", linErr)
		} else {
			t.Errorf("linearizability: %v", linErr)
		}
		if writesErr != nil && !errors.Is(linErr, check.ErrUndecided) {
			t.Errorf("linearizability without the reads: %v", writesErr)
		}
	}
	if fenceErr != nil {
		t.Errorf("fencing: %v", fenceErr)
	}
	if incErr != nil {
		t.Errorf("fenced store: %v", incErr)
	}
	if _, rejected := store.Totals(); rejected == 0 {
		t.Errorf("the fenced store rejected no zombie write (%d zombies): the lease scenario did not happen", lw.zombies.Load())
	}
	if len(w.unexpected) > 0 {
		t.Errorf("unexpected errors (not -TRYAGAIN, timeout or network):\n  %s", strings.Join(w.unexpected, "\n  "))
	}
}

// finalOwner returns a final read: name's owner through leader, asked up
// to five times.
func finalOwner(leader *redis.Client) func(name string) (string, error) {
	return func(name string) (string, error) {
		var err error
		for range 5 {
			rctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
			var o string
			o, err = ownerOf(rctx, leader, name)
			cancel()
			if err == nil {
				return o, nil
			}
		}
		return "", err
	}
}

// quietRedisLogger silences go-redis's own log ("failed to dial after 5
// attempts" for every client of a killed node); the suite records every
// error itself.
var quietRedisLogger sync.Once

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

// waitConverged polls until every node answers with the same commit and
// applied index, so the leader's replica holds the whole log before it is read.
func waitConverged(t testing.TB, c *cluster, timeout time.Duration) {
	t.Helper()
	poll(t, timeout, "every node to apply the same, whole log", func() bool {
		var want string
		for i := 1; i <= len(c.nodes); i++ {
			m := c.info(i)
			if m == nil || m["commit_index"] != m["applied_index"] {
				return false
			}
			if i == 1 {
				want = m["applied_index"]
			} else if m["applied_index"] != want {
				return false
			}
		}
		return true
	})
}

// usedNames returns every lock name of the history, sorted.
func usedNames(ops []check.Op) []string {
	set := map[string]bool{}
	for _, op := range ops {
		set[op.Name] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// report logs the numbers of a run.
func report(t testing.TB, cfg jepsenConfig, w *workload, lw *leaseWorkload, nem *nemesis,
	ops, leaseOps []check.Op, names []string, checkTook time.Duration) {
	t.Helper()
	byKind := map[string]int{}
	unknownByName := map[string]int{}
	var indeterminate, final int
	for _, op := range ops {
		if op.Final {
			final++
			continue
		}
		byKind[fmt.Sprintf("%s/%s", op.Kind, op.Status)]++
		if op.Status == check.StatusUnknown && op.Kind != check.KindOwner {
			indeterminate++
			unknownByName[op.Name]++
		}
	}
	maxUnknown := 0
	for _, n := range unknownByName {
		maxUnknown = max(maxUnknown, n)
	}
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, byKind[k]))
	}
	var nems []string
	total := 0
	for _, k := range nemesisKinds {
		nems = append(nems, fmt.Sprintf("%s=%d", k, nem.counts[k]))
		total += nem.counts[k]
	}
	accepted, rejected := lw.store.Totals()
	t.Logf("REPORT seed %d: %d ops checked (+%d final reads) on %d lock names: %s",
		cfg.seed, len(ops)-final, final, len(names), strings.Join(kinds, " "))
	t.Logf("REPORT seed %d: indeterminate LOCK/UNLOCK %d (at most %d on one name); reads skipped without a leader %d; linearizability check took %v",
		cfg.seed, indeterminate, maxUnknown, w.skipped, checkTook.Round(time.Millisecond))
	confirmed := 0
	for _, r := range w.reads {
		if r.ConfirmedBy != 0 {
			confirmed++
		}
	}
	t.Logf("REPORT seed %d: OWNER reads on the leader: %d sent, %d confirmed leader throughout (checked), %d unconfirmed (recorded indeterminate)",
		cfg.seed, len(w.reads), confirmed, len(w.reads)-confirmed)
	t.Logf("REPORT seed %d: linearizable OWNER reads on random nodes: %d sent, %d answered (checked), %d refused or timed out",
		cfg.seed, w.linSent.Load(), w.linOK.Load(), w.linSent.Load()-w.linOK.Load())
	t.Logf("REPORT seed %d: nemesis events %d: %s; members added %d, removed %d (%d of them voters by then)", cfg.seed, total, strings.Join(nems, " "), nem.added, nem.removed, nem.voters)

	t.Logf("REPORT seed %d: lease test: %d LOCK PX ops, %d grants, %d zombies; store accepted %d writes, rejected %d stale writes and %d stale reads (clients saw %d/%d); lease LOCK errors %d",
		cfg.seed, len(leaseOps), lw.grants.Load(), lw.zombies.Load(), accepted, rejected, lw.rejectedReads(), lw.staleWrites.Load(), lw.staleReads.Load(), lw.errs.Load())
}

// rejectedReads sums the store's rejected reads over the lease resources.
func (lw *leaseWorkload) rejectedReads() int64 {
	var n int64
	for k := range lw.resources {
		n += lw.store.Resource(lw.resource(k)).RejectedReads
	}
	return n
}

// jsonOp is an Op as one line of the history file.
type jsonOp struct {
	check.Op
	KindName   string `json:"kind_name"`
	StatusName string `json:"status_name"`
}

func writeHistory(t testing.TB, path string, ops []check.Op) {
	f, err := os.Create(path)
	if err != nil {
		t.Logf("history not written: %v", err)
		return
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, op := range ops {
		enc.Encode(jsonOp{Op: op, KindName: op.Kind.String(), StatusName: op.Status.String()})
	}
}

func writeReads(t testing.TB, path string, reads []readRecord) {
	f, err := os.Create(path)
	if err != nil {
		t.Logf("reads not written: %v", err)
		return
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, r := range reads {
		enc.Encode(r)
	}
}

func copyFile(from, to string) {
	in, err := os.Open(from)
	if err != nil {
		return
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return
	}
	defer out.Close()
	io.Copy(out, in)
}
