package replication

import (
	"sync"

	"github.com/lockd/lockd/lock"
)

// pending is the table of requests this node is waiting on, keyed by request
// ID. Execute registers and cancels; the applier resolves when it
// applies a command with that ID.
type pending struct {
	mu sync.Mutex
	m  map[uint64]chan lock.Result
}

func (p *pending) init() { p.m = make(map[uint64]chan lock.Result) }

// register returns the channel on which id's results will arrive: one
// result, or for a queued LOCK ... WAIT any number of lock.Queued and then
// the final one.
func (p *pending) register(id uint64) <-chan lock.Result {
	ch := make(chan lock.Result, 2)
	p.mu.Lock()
	p.m[id] = ch
	p.mu.Unlock()
	return ch
}

// cancel forgets id; a later result for it has no waiter.
func (p *pending) cancel(id uint64) {
	p.mu.Lock()
	delete(p.m, id)
	p.mu.Unlock()
}

// resolve delivers id's result to its waiter, if any. It never blocks; only
// the applier calls it. A lock.Queued result keeps the request
// registered for its final result, which is never dropped.
func (p *pending) resolve(r lock.Result) {
	id, v := r.ID, r.Value
	p.mu.Lock()
	ch := p.m[id]
	if v != lock.Queued {
		delete(p.m, id)
	}
	p.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- r:
		return
	default:
	}
	if v == lock.Queued {
		return // the waiter has heard it already
	}
	select {
	case <-ch: // make room: what is buffered is only Queued
	default:
	}
	ch <- r
}

// len returns the number of waiting requests.
func (p *pending) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}
