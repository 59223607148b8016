// Package metrics is lockd's instrumentation: Prometheus metrics of one
// node, and its HTTP endpoints /metrics, /livez and /readyz.
//
// Most metrics are read when scraped, from the state the node keeps anyway
// (replication.Node.Status, lock.Table.Stats, Server.ConnectedClients):
// nothing is counted twice and the hot paths pay nothing for them. What no
// state shows is counted as it happens, through small hooks: the log's
// writes and syncs, snapshots and failed proposals (replication.Observer),
// and every client command (server.CommandObserver, whose counters and
// histograms are resolved once per command name, not looked up per
// command). docs/operations.md lists every metric and what to alert on.
//
// Concurrency: a Metrics is safe for concurrent use; its hooks are called
// from the node's and the connections' goroutines at once. The HTTP server
// (Serve) runs until its Close.
package metrics
