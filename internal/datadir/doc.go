// Package datadir is a lockd node's data directory: the durable raft state
// (log, hard state, snapshots) and the node's identity.
//
//	LOCK        an OS lock held by the running process (and its pid)
//	node        whose directory this is: cluster id, node id, incarnation,
//	            request ids reserved, peers' incarnations (JSON + CRC line)
//	wal/*.wal   the raft log and hard state, in segments
//	snap/*.snap the newest two snapshots
//
// # Formats
//
// Segments and snapshot files open with a 16-byte header (an 8-byte magic,
// the format version, a CRC-32C of the two) and hold records framed as
// record.go draws: length, CRC-32C of the payload, CRC-32C of those eight
// bytes, the payload, an end mark 0xA5. CRC-32C (Castagnoli) is the only
// checksum in the directory. Log records carry an entry, a hard state, or a
// reset (a snapshot at some index replaced the log).
//
// # The sync rule
//
// One Ready's entries and hard state are appended with one write, and
// several Readys may share it; Flush makes them durable with one fdatasync
// before raft may act on them. A hard state that differs from the last
// synced one only in its commit index is written but not synced by itself:
// the commit index is volatile in raft (a restarted node learns it again
// from the leader, and replication never lets it fall below the snapshot),
// and syncing it cost a second flush per round. Segments are preallocated
// with zeros, so that a sync rarely has file metadata to write and so that
// whatever a torn write did not reach reads as zeros. A segment is synced
// whole before the next one starts.
//
// # The torn-tail rule
//
// A crash can tear only the last write, which was never synced and so never
// acknowledged. When replay meets a bad record it cuts the log there only if
// the record is incomplete (its header or a whole sector of it is zero, its
// end mark is zero, or it runs past the end of the file), it is in the last
// segment, and no valid record follows it anywhere. Anything else (a record
// that is all there but fails its checksum, damage before the last segment,
// a valid record after a bad one) is damage that a crash cannot explain:
// Open fails with a *CorruptError naming the file and offset, and the node
// does not start. A damaged snapshot file is logged and an older one used;
// if the log does not reach back to it, Open fails the same way.
//
// # Concurrency
//
// Write, Flush, Save, ResetLog and Compact belong to one goroutine
// (replication's appender). SaveSnapshot, Identity, ReserveIDs, SkipIDs
// and CheckPeer may be called from any goroutine. Open and Close bracket everything.
package datadir
