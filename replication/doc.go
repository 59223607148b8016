// Package replication keeps a lock.Table identical on every node of a lockd
// cluster, with go.etcd.io/raft/v3 as the consensus core.
//
// It owns the raft node and its loop (loop.go), the storage goroutines that
// keep the log and snapshots in the data directory (threads.go, on
// internal/datadir), its side of the links between nodes (handler.go: what
// internal/peering's Transport brings from peers, and the check of forwarded
// commands; the Transport carries raft messages and forwards to peers), the
// leader's proposer that stamps and batches commands and holds them while
// MaxInflight entries await commit (proposer.go), the pending-request table
// (pending.go), and the catch-up wait of reads (read.go). Its write calls
// are Execute, Do (Execute with the whole result), ExecuteAll (a client's
// pipeline) and ExecuteWait: they return once this node has applied the
// commands.
//
// Goroutines: one owns the raft.RawNode (run): it alone ticks, steps, proposes
// and takes Readys; it never waits for the disk or the network. Raft runs with
// AsyncStorageWrites: an append goroutine writes and syncs the log and hands
// raft's responses back through stepc, an apply goroutine applies committed
// entries and answers their waiters. Every SnapshotEntries entries the apply
// goroutine takes the table's View and starts a snapshot goroutine that
// encodes and writes it; the append goroutine then drops the log before it.
// Others reach run through channels: peers' messages and storage responses
// (stepc), commands to propose (propc), peer reports (reportc), news of
// applied entries (appliedc); the Transport's goroutines (one writer per
// peer, one accept loop and one reader per inbound peer connection) reach it
// through the handler. All stop on Close, and all but the peer links stop
// when a storage error halts the node (Failed). Execute, Do,
// ExecuteAll, ExecuteWait, WaitApplied, Status, Table and SinceApply may be
// called from any goroutine.
package replication
