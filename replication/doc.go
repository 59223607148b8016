// Package replication keeps a lock.Table identical on every node of a lockd
// cluster, with go.etcd.io/raft/v3 as the consensus core.
//
// It owns the raft node and its Ready loop, the durable log and snapshots
// (storage.go), the internal RESP stream between nodes (peer.go for the
// outbound side, inbound.go for the cluster port), the leader's proposer that
// stamps and batches commands (proposer.go), and the pending-request table
// (pending.go). Its one write call is Execute: it returns once this node has
// applied the command.
//
// Goroutines: one owns the raft.RawNode (run): it alone ticks, steps,
// proposes, calls Ready and Advance, writes the log and applies entries;
// nothing it does blocks on the network. Others reach it through channels:
// peers' messages (stepc), commands to propose (propc), peer reports
// (reportc). One writer per peer, one accept loop and one reader per inbound
// peer connection; all stop on Close. Execute, Status, Table and SinceApply
// may be called from any goroutine.
package replication
