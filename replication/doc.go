// Package replication keeps a lock.Table identical on every node of a lockd
// cluster, with go.etcd.io/raft/v3 as the consensus core.
//
// Its write calls are Execute, Do (Execute with the whole result),
// ExecuteAll (a client's pipeline) and ExecuteWait: they return once this
// node has applied the commands. WaitApplied is the catch-up wait of reads
// (read.go). Execute, Do, ExecuteAll, ExecuteWait, WaitApplied, Status,
// Table and SinceApply may be called from any goroutine, and so may the
// operator's calls: TransferLeader and HandOff (transfer.go), Backup, and
// Restore, which seeds a new node's data directory from a backup file
// (backup.go, backupfile.go).
//
// A node is four goroutines, each a type in a file of its name, and the
// queues between them:
//
//   - the loop (loop.go) owns the raft.RawNode: it alone ticks, steps,
//     proposes and takes Readys, and it never waits for the disk or the
//     network. Its proposer (proposer.go) stamps and batches the commands
//     held while MaxInflight entries await commit, and proposes ticks.
//   - the appender (appender.go) writes and syncs the log (on
//     internal/datadir) and hands raft's responses back to the loop.
//   - the applier (applier.go) applies committed entries to the table,
//     answers the waiting requests (pending.go) and publishes the applied
//     index; every SnapshotEntries entries it starts a snapshot goroutine
//     that encodes and writes the table's view, after which the appender
//     drops the log before it.
//   - the script runner (scripts.go) runs scripts on the leader.
//
// Raft runs with AsyncStorageWrites. The loop hands storage work to the
// appender's and the applier's mailboxes (mailbox.go), which never block
// it and wake their reader once per batch; commands to propose reach the
// loop through a mailbox too, and so do the storage goroutines' responses;
// peers' messages come through stepc, peer reports through reportc, news
// of applies through appliedc, membership change requests through confc
// (membership.go: the members are replicated state, changed one at a
// time by the leader). What readers need (leader, role, term, commit and applied
// index) the loop and the applier publish in one place (published.go).
// The transport, internal/peering, has its own goroutines (one writer per
// peer, one accept loop and one reader per inbound peer connection); they
// reach the node through its peering.Handler (handler.go). All stop on
// Close, and all but the peer links stop when a storage error halts the
// node (Failed).
package replication
