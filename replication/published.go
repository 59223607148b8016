package replication

import (
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
)

// published is what the loop and the applier tell everyone else about the
// node: Execute's waiters, WaitApplied, Status, SinceApply and the handler
// read it; nobody else keeps a copy.
//
// Concurrency: the loop writes leader, role, term, commit and leaderChanges and closes
// changed and tick; the applier writes applied and appliedAt and closes advanced.
// Any goroutine reads.
type published struct {
	start time.Time // origin of the node's monotonic clock

	leader    atomic.Uint64
	role      atomic.Value // raft.StateType
	term      atomic.Uint64
	commit    atomic.Uint64 // what this node knows is committed
	applied   atomic.Uint64
	appliedAt atomic.Int64                  // when the last apply was, in ns since start
	changed   atomic.Pointer[chan struct{}] // closed and replaced at a leader or term change
	advanced  atomic.Pointer[chan struct{}] // closed and replaced after each apply
	tick      atomic.Pointer[chan struct{}] // closed and replaced at each raft tick

	leaderChanges atomic.Uint64 // times the loop saw the leader change, for metrics
}

func (p *published) init(start time.Time) {
	p.start = start
	p.role.Store(raft.StateFollower)
	ch, adv, tick := make(chan struct{}), make(chan struct{}), make(chan struct{})
	p.changed.Store(&ch)
	p.advanced.Store(&adv)
	p.tick.Store(&tick)
}

func (p *published) roleNow() raft.StateType { return p.role.Load().(raft.StateType) }

func (p *published) leading() bool { return p.roleNow() == raft.StateLeader }

// leaderChanged returns a channel closed at the next leader or term change.
func (p *published) leaderChanged() <-chan struct{} { return *p.changed.Load() }

// notifyChange wakes everyone waiting on a leader or term change.
func (p *published) notifyChange() {
	ch := make(chan struct{})
	close(*p.changed.Swap(&ch))
}

// ticked returns a channel closed at the loop's next raft tick: a clock of
// TickInterval's grain for waits that need no better (await's resend and
// request timeout), at the cost of one channel per tick for the node.
func (p *published) ticked() <-chan struct{} { return *p.tick.Load() }

// ticks wakes everyone waiting for the next tick.
func (p *published) ticks() {
	ch := make(chan struct{})
	close(*p.tick.Swap(&ch))
}

// setApplied publishes that the table reflects the log up to index, and
// wakes the readers waiting in WaitApplied.
func (p *published) setApplied(index uint64) {
	p.applied.Store(index)
	p.appliedAt.Store(p.nanos())
	ch := make(chan struct{})
	close(*p.advanced.Swap(&ch))
}

// appliedAdvanced returns a channel closed at the next apply.
func (p *published) appliedAdvanced() <-chan struct{} { return *p.advanced.Load() }

// nanos is the node's monotonic clock: nanoseconds since it started, and
// never 0, which stands for "never".
func (p *published) nanos() int64 { return int64(time.Since(p.start)) + 1 }

// millis is the leader clock in milliseconds: monotonic, from start.
func (p *published) millis() int64 { return time.Since(p.start).Milliseconds() }
