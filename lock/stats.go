package lock

// Stats is what this replica's table decided since it was made: counts
// and histograms for metrics, read at scrape time. They are plain fields
// that Apply changes under the table's write lock (no clock, no I/O: the
// durations are the table's own logical time, the same on every replica);
// Table.Stats copies them under the read lock. They are not part of
// snapshots: Restore keeps the counts, and a node that restarts counts
// from zero, then again the entries it replays after its snapshot.
type Stats struct {
	// Grants counts locks given to an owner: a LOCK or SET NX on a free
	// name, a queued LOCK ... WAIT at the release before it, a SET that
	// gives a held key to another owner; and each hold of a read/write
	// lock or semaphore likewise (shared.go).
	Grants uint64
	// Expiries counts leases that ran out (the lock was released by time,
	// not by its owner).
	Expiries uint64
	// Refusals counts LOCKs (RWLOCKs, SEMLOCKs) answered 0 at once: held
	// by another owner and no WAIT given.
	Refusals uint64
	// WaitTimeouts counts queued LOCK ... WAIT requests that left the
	// queue without the lock: their wait ran out, or they were cancelled.
	WaitTimeouts uint64
	// Wait is how long queued requests waited before their grant; Hold how
	// long locks were held, observed at release (UNLOCK, expiry, DEL, a
	// SET that changes the owner). Both in logical milliseconds; a lock or
	// a wait that came from a snapshot has no known start and is not
	// observed.
	Wait, Hold Histogram
}

// DurationBounds are the upper bounds, in logical milliseconds, of the
// buckets of Stats' histograms, ascending.
var DurationBounds = [...]int64{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 3600000}

// Histogram counts observations of a duration in the buckets of
// DurationBounds.
type Histogram struct {
	// Buckets[i] counts observations above DurationBounds[i-1] and at most
	// DurationBounds[i] (not cumulative); the last counts those above
	// every bound.
	Buckets [len(DurationBounds) + 1]uint64
	Count   uint64
	SumMs   int64
}

// unknownSince marks a hold or a wait whose start is unknown: it was
// restored from a snapshot, which does not carry it.
const unknownSince = -1

// observeSince records the time from since to now, unless since is unknown.
func (h *Histogram) observeSince(since, now int64) {
	if since == unknownSince {
		return
	}
	ms := max(now-since, 0)
	i := 0
	for i < len(DurationBounds) && ms > DurationBounds[i] {
		i++
	}
	h.Buckets[i]++
	h.Count++
	h.SumMs += ms
}

// Stats returns a copy of the table's counts.
func (t *Table) Stats() Stats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.stats
}
