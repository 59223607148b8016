package replication

import (
	"sync"

	"github.com/lockd/lockd/internal/datadir"
)

// idSource hands out request IDs unique across the cluster and across
// restarts: the node id in the top 16 bits, below it a sequence drawn from
// blocks of datadir.IDBlock that are reserved on disk before any of their
// ids is used. A restarted node starts at a fresh block, whatever its clock
// says (a node restarted with its clock near its previous start used to
// reuse ids that the table still remembered).
//
// Concurrency: next may be called from any goroutine.
type idSource struct {
	node    uint64
	reserve func() (uint64, error) // datadir.Dir.ReserveIDs

	mu    sync.Mutex
	seq   uint64 // the next sequence number to hand out
	limit uint64 // end of the reserved block
}

// next returns a new request ID, reserving a block first when the current
// one is used up. It fails only when the reservation cannot be written.
func (s *idSource) next() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seq >= s.limit {
		first, err := s.reserve()
		if err != nil {
			return 0, err
		}
		s.seq, s.limit = first, first+datadir.IDBlock
		if s.seq == 0 {
			s.seq = 1 // id 0 means "no deduplication"
		}
	}
	id := s.node<<48 | s.seq
	s.seq++
	return id, nil
}
