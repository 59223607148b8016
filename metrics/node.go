package metrics

import (
	"strconv"

	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/replication"
	"github.com/prometheus/client_golang/prometheus"
)

// nodeCollector reads a node's state when scraped: raft's view
// (replication.Node.Status), its peer links, its clients and its lock
// table (lock.Table.Stats). Nothing is counted on the way for it.
//
// Concurrency: Collect may run on several scrapes at once; everything it
// reads is safe for concurrent use.
type nodeCollector struct {
	node    *replication.Node
	clients func() int
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
}

var (
	hasLeaderDesc     = desc("raft_has_leader", "1 when this node knows a leader, else 0.")
	isLeaderDesc      = desc("raft_is_leader", "1 when this node is the leader, else 0.")
	leaderChangesDesc = desc("raft_leader_changes_total", "Times the leader this node knows changed: to another node, to none, or from none.")
	termDesc          = desc("raft_term", "This node's raft term.")
	commitDesc        = desc("raft_commit_index", "The highest log index this node knows is committed.")
	appliedDesc       = desc("raft_applied_index", "The highest log index this node has applied to its lock table.")
	pendingDesc       = desc("raft_proposals_pending", "Client requests on this node waiting for their result from the log.")

	peerConnectedDesc = desc("peer_connected", "1 while this node's link to the peer is connected, else 0.", "peer")
	peerSentDesc      = desc("peer_frames_sent_total", "Frames (raft messages, forwarded commands, snapshots) written to the peer.", "peer")
	peerDroppedDesc   = desc("peer_frames_dropped_total", "Frames dropped because the peer's queue was full.", "peer")

	clientsDesc = desc("clients_connected", "Client connections open now.")

	locksHeldDesc    = desc("locks_held", "Locks (keys) held in this node's replica of the table.")
	lockWaitersDesc  = desc("lock_waiters", "LOCK ... WAIT requests queued for locks.")
	grantsDesc       = desc("lock_grants_total", "Locks given to an owner, as applied on this node: free locks taken, and handovers to waiters.")
	expiriesDesc     = desc("lock_expiries_total", "Leases that ran out, as applied on this node.")
	refusalsDesc     = desc("lock_refusals_total", "LOCKs answered null at once because another owner held the lock, as applied on this node.")
	waitTimeoutsDesc = desc("lock_wait_timeouts_total", "Queued LOCK ... WAIT requests that left the queue without the lock (wait ran out, or cancelled).")
	waitTimeDesc     = desc("lock_wait_seconds", "How long queued LOCK ... WAIT requests waited before their grant, in the table's replicated time.")
	holdTimeDesc     = desc("lock_hold_seconds", "How long locks were held, observed at their release, in the table's replicated time.")
)

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{hasLeaderDesc, isLeaderDesc, leaderChangesDesc, termDesc, commitDesc, appliedDesc, pendingDesc,
		peerConnectedDesc, peerSentDesc, peerDroppedDesc, clientsDesc,
		locksHeldDesc, lockWaitersDesc, grantsDesc, expiriesDesc, refusalsDesc, waitTimeoutsDesc, waitTimeDesc, holdTimeDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	st := c.node.Status()
	gauge(hasLeaderDesc, bit(st.Leader != 0))
	gauge(isLeaderDesc, bit(st.Role == "leader"))
	counter(leaderChangesDesc, c.node.LeaderChanges())
	gauge(termDesc, float64(st.Term))
	gauge(commitDesc, float64(st.Commit))
	gauge(appliedDesc, float64(st.Applied))
	gauge(pendingDesc, float64(st.Pending))
	for _, p := range st.Peers {
		id := strconv.FormatUint(p.ID, 10)
		gauge(peerConnectedDesc, bit(p.Connected), id)
		counter(peerSentDesc, p.Sent, id)
		counter(peerDroppedDesc, p.Dropped, id)
	}
	gauge(clientsDesc, float64(c.clients()))

	t := c.node.Table()
	gauge(locksHeldDesc, float64(t.Len()))
	gauge(lockWaitersDesc, float64(t.Waiting()))
	s := t.Stats()
	counter(grantsDesc, s.Grants)
	counter(expiriesDesc, s.Expiries)
	counter(refusalsDesc, s.Refusals)
	counter(waitTimeoutsDesc, s.WaitTimeouts)
	ch <- constHistogram(waitTimeDesc, &s.Wait)
	ch <- constHistogram(holdTimeDesc, &s.Hold)
}

// constHistogram turns one of the table's histograms (logical ms, bucket
// counts not cumulative) into a Prometheus histogram in seconds.
func constHistogram(d *prometheus.Desc, h *lock.Histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(lock.DurationBounds))
	cum := uint64(0)
	for i, b := range lock.DurationBounds {
		cum += h.Buckets[i]
		buckets[float64(b)/1000] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count, float64(h.SumMs)/1000, buckets)
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
