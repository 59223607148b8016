package metrics

import (
	"time"

	"github.com/lockd/lockd/replication"
	"github.com/lockd/lockd/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// namespace prefixes every lockd metric.
const namespace = "lockd"

// Buckets of the histograms measured in seconds by this package.
var (
	// fsyncBuckets: 100µs (a fast SSD) to 1s (a disk in trouble).
	fsyncBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}
	// commandBuckets: 50µs (a read) to 10s (a LOCK ... WAIT).
	commandBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}
	// snapshotBuckets: 1ms to 30s (a snapshot of millions of locks).
	snapshotBuckets = []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30}
	// entriesBuckets: entries made durable by one sync (group commit).
	entriesBuckets = []float64{0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}
)

// Metrics is one node's metrics: a registry holding the Go runtime's and
// the process's collectors, the counters of events, and (after Watch) the
// collector that reads the node's state when scraped. It implements
// replication.Observer; Commands returns its server.CommandObserver.
//
// Concurrency: its observer methods and scrapes may run on any goroutines
// at once; New, then Watch once, are called by the goroutine that starts
// the node.
type Metrics struct {
	reg *prometheus.Registry

	logBytes       prometheus.Counter
	fsync          prometheus.Histogram
	entriesPerSync prometheus.Histogram
	snapDuration   prometheus.Histogram
	snapSize       prometheus.Gauge
	proposalsFail  prometheus.Counter
	commands       *Commands
}

var _ replication.Observer = (*Metrics)(nil)

// New returns a node's metrics, with nothing to read yet: pass it as
// replication.Config.Observer and its Commands as server.Config.Observer,
// then Watch the server once it runs.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{m.reg}
	m.logBytes = f.counter("log", "written_bytes_total", "Bytes written to the raft log (synced or not yet).")
	m.fsync = f.histogram("log", "fsync_duration_seconds", "How long each sync of the raft log took (none with --fsync never).", fsyncBuckets)
	m.entriesPerSync = f.histogram("log", "entries_per_sync", "Entries each sync of the raft log made durable (0: only a term or vote).", entriesBuckets)
	m.snapDuration = f.histogram("snapshot", "duration_seconds", "How long this node took to encode and write each snapshot of its state.", snapshotBuckets)
	m.snapSize = f.gauge("snapshot", "size_bytes", "Size of the last snapshot this node wrote (0 before its first).")
	m.proposalsFail = f.counter("raft", "proposals_failed_total", "Entries the leader proposed that raft refused (no leader any more, or too many uncommitted bytes); their commands are resent.")
	m.commands = newCommands(m.reg, server.CommandNames())
	return m
}

// Registry returns the registry /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Commands returns the observer of client commands, for server.Config.
func (m *Metrics) Commands() *Commands { return m.commands }

// Watch registers the collector that reads srv's node and clients when
// scraped. Call it once.
func (m *Metrics) Watch(srv *server.Server) {
	m.reg.MustRegister(&nodeCollector{node: srv.Node(), clients: srv.ConnectedClients})
}

// LogWrote implements replication.Observer.
func (m *Metrics) LogWrote(bytes int) { m.logBytes.Add(float64(bytes)) }

// LogSynced implements replication.Observer.
func (m *Metrics) LogSynced(took time.Duration, entries int) {
	m.fsync.Observe(took.Seconds())
	m.entriesPerSync.Observe(float64(entries))
}

// SnapshotSaved implements replication.Observer.
func (m *Metrics) SnapshotSaved(took time.Duration, bytes int) {
	m.snapDuration.Observe(took.Seconds())
	m.snapSize.Set(float64(bytes))
}

// ProposalFailed implements replication.Observer.
func (m *Metrics) ProposalFailed() { m.proposalsFail.Inc() }

// factory makes and registers metrics named lockd_<subsystem>_<name>.
type factory struct{ reg prometheus.Registerer }

func (f factory) counter(sub, name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: sub, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(sub, name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: sub, Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(sub, name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: sub, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}
