package replication

import (
	"time"

	"github.com/lockd/lockd/internal/datadir"
)

// Observer hears of the events a node's state does not show at scrape
// time, for metrics (package metrics implements it); the rest (leader,
// term, indexes, peers, the table's counts) is read when scraped, through
// Status and Table.
//
// Concurrency: its methods are called on the node's goroutines (the
// appender, the applier's snapshot goroutine, the loop), possibly at once,
// and must return at once.
type Observer interface {
	// LogWrote says bytes were written to the log.
	LogWrote(bytes int)
	// LogSynced says a sync of the log took took and made entries new
	// entries durable (0 when it made only a term or vote durable).
	LogSynced(took time.Duration, entries int)
	// SnapshotSaved says this node made a snapshot of bytes bytes, which
	// took took to encode and write.
	SnapshotSaved(took time.Duration, bytes int)
	// ProposalFailed says raft refused to append an entry the leader
	// proposed (no leader any more, or too many uncommitted bytes); its
	// commands are resent by their senders.
	ProposalFailed()
}

// logObserver passes the log's events to an Observer.
type logObserver struct{ o Observer }

func (l logObserver) Wrote(bytes int)                        { l.o.LogWrote(bytes) }
func (l logObserver) Synced(took time.Duration, entries int) { l.o.LogSynced(took, entries) }

// logObserverOf returns o as the data directory's observer, nil for none.
func logObserverOf(o Observer) datadir.LogObserver {
	if o == nil {
		return nil
	}
	return logObserver{o}
}

// LeaderChanges returns how many times the leader this node knows changed
// since it started: to another node, to none, or from none.
func (n *Node) LeaderChanges() uint64 { return n.pub.leaderChanges.Load() }
