package script

import (
	"context"
	"fmt"
	"runtime/metrics"
	"sync"
	"time"
)

// heapMetric is the live heap as the runtime counts it at any moment: the
// bytes of every heap object not yet freed by a sweep (live objects and
// garbage the collector has not reclaimed yet).
const heapMetric = "/memory/classes/heap/objects:bytes"

// watchPeriod is how often the watchdog samples the clock and the heap.
const watchPeriod = time.Millisecond

// overrun names the budget a run exhausted.
type overrun int

const (
	overInstructions overrun = iota + 1
	overTime
	overHeap
)

// budget is the context.Context a run's LState carries, and the run's meter.
// gopher-lua calls Done before every VM instruction (mainLoopWithContext)
// and raises an error when the returned channel is closed; every call spends
// one instruction, and so does every step of the pattern matcher and every
// value converted between Lua and RESP (spend). The channel is closed when
// any budget is exhausted: the instructions, the wall-clock timeout, or the
// growth of the process's heap, which the watchdog goroutine samples every
// millisecond. Once closed it stays closed, so a script that catches the
// error with pcall fails again at its next instruction.
//
// Concurrency: Done, spend and left belong to the goroutine running the
// script. stop, Err and overrun may be called from any goroutine (the
// watchdog calls stop). The watchdog is started by watch and has ended when
// the function watch returned has returned.
type budget struct {
	left int64 // instructions still allowed

	// heapBase and heapBytes are the heap at the start of the run and how far
	// it may grow; set by watch before the watchdog starts, then only read.
	heapBase, heapBytes int64
	heapReadAt          time.Time // when heapOver last read the heap

	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	why  overrun // guarded by mu; set once, before done is closed
}

func newBudget(instructions int64) *budget {
	return &budget{left: instructions, done: make(chan struct{})}
}

// Done spends one instruction.
func (b *budget) Done() <-chan struct{} {
	b.left--
	if b.left < 0 {
		b.stop(overInstructions)
	}
	return b.done
}

// spend spends n instructions and reports whether the run may go on.
func (b *budget) spend(n int64) bool {
	b.left -= n
	if b.left < 0 {
		b.stop(overInstructions)
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// stop ends the run for reason why; only the first call has an effect.
func (b *budget) stop(why overrun) {
	b.once.Do(func() {
		b.mu.Lock()
		b.why = why
		b.mu.Unlock()
		close(b.done)
	})
}

// overrun reports which budget ended the run, or 0.
func (b *budget) overrun() overrun {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.why
}

func (b *budget) Err() error {
	switch b.overrun() {
	case 0:
		return nil
	case overInstructions:
		return errInstructions
	case overTime:
		return errTime
	default:
		return errHeap
	}
}

func (b *budget) Deadline() (time.Time, bool) { return time.Time{}, false }
func (b *budget) Value(any) any               { return nil }

var _ context.Context = (*budget)(nil)

// The texts gopher-lua raises inside the script when the channel closes; Run
// replaces them with overrunText once the script has unwound.
var (
	errInstructions = fmt.Errorf("script exceeded its instruction budget")
	errTime         = fmt.Errorf("script exceeded its time budget")
	errHeap         = fmt.Errorf("script exceeded its heap budget")
)

// watch starts the watchdog: every watchPeriod it stops the run if timeout
// has passed since the start or the heap grew by more than heapBytes. The
// returned function stops the watchdog and waits for it to end.
func (b *budget) watch(timeout time.Duration, heapBytes int64) (stopWatching func()) {
	sample := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(sample)
	base := int64(sample[0].Value.Uint64())
	b.heapBase, b.heapBytes = base, heapBytes
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
		tick := time.NewTicker(watchPeriod)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-b.done:
				return
			case <-deadline.C:
				b.stop(overTime)
				return
			case <-tick.C:
				metrics.Read(sample)
				if int64(sample[0].Value.Uint64())-base > heapBytes {
					b.stop(overHeap)
					return
				}
			}
		}
	}()
	return func() {
		close(quit)
		wg.Wait()
	}
}

// syncHeapCheck is the size of a string from which the function building it
// first reads the heap itself (heapOver), instead of leaving it to the
// watchdog, whose next sample may come late on a loaded machine.
const syncHeapCheck = 256 << 10

// heapReadPeriod spaces heapOver's reads of the heap (each costs about
// 0.5 µs), so that a function appending to a long string piece by piece
// (string.gsub) does not read it at every piece.
const heapReadPeriod = 20 * time.Microsecond

// heapOver reads the heap, unless it did less than heapReadPeriod ago, and
// reports whether it grew past the budget, stopping the run if so. It belongs
// to the goroutine running the script.
func (b *budget) heapOver() bool {
	now := time.Now()
	if now.Sub(b.heapReadAt) < heapReadPeriod {
		return false
	}
	b.heapReadAt = now
	sample := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(sample)
	if int64(sample[0].Value.Uint64())-b.heapBase > b.heapBytes {
		b.stop(overHeap)
		return true
	}
	return false
}
