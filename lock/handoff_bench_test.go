package lock

import (
	"fmt"
	"testing"
)

// BenchmarkHandOff measures a release that hands the lock to the head of a
// queue of 1,000 waiters, with one more request queued each time to keep
// the queue's length: the path lock-delays and multi-locks run through
// (settle).
func BenchmarkHandOff(b *testing.B) {
	const queue = 1000
	tab := NewTable()
	owners := make([]string, queue+1)
	for i := range owners {
		owners[i] = fmt.Sprint("owner-", i)
	}
	id := uint64(0)
	batch := func(cmds ...Command) {
		for i := range cmds {
			id++
			cmds[i].ID = id
		}
		tab.Apply(1, &Batch{Term: 1, Stamp: 1, Cmds: cmds}, nil)
	}
	batch(lockCmd(0, "a", owners[0], 0))
	for i := 1; i <= queue; i++ {
		batch(waitCmd(0, "a", owners[i], 0, 1<<40))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		holder, next := owners[i%len(owners)], owners[(i+len(owners)-1)%len(owners)]
		batch(unlockCmd(0, "a", holder), waitCmd(0, "a", next, 0, 1<<40))
	}
}
