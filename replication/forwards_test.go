package replication

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/lockd/lockd/lock"
)

// lockMany has workers goroutines take each locks fresh locks through node
// at once, named prefix-worker-i and owned by prefix-worker, and returns
// the acknowledged ones and what went wrong with the others.
func lockMany(node *Node, prefix string, workers, each int) (acked []ackedLock, failures []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			owner := fmt.Sprintf("%s-%d", prefix, w)
			for i := range each {
				name := fmt.Sprintf("%s-%d", owner, i)
				tok, err := node.Execute(context.Background(), lock.Command{Op: lock.OpLock, Name: name, Owner: owner})
				mu.Lock()
				if err != nil || tok <= 0 {
					failures = append(failures, fmt.Sprintf("LOCK %s = %d, %v", name, tok, err))
				} else {
					acked = append(acked, ackedLock{name, owner, tok})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait() // each Execute ends by its request timeout
	return acked, failures
}

// Many commands forwarded at once through a follower, which sends those
// that queue together in FORWARDS frames, each get their own answer: the
// token of the lock the table holds for their name and owner, a token no
// other command got. So do commands forwarded while the leadership moves
// to the other follower, which the follower sends again to the new leader
// (and which act once).
func TestMemNetConcurrentForwardsGetTheirOwnAnswers(t *testing.T) {
	c := startMemCluster(t, 3, 1, nil)
	lead := waitLeader(t, c.nodes)
	c.connected(t)
	others := c.others(lead)
	f, target := others[0], others[1]
	const workers, each = 48, 8

	acked, failures := lockMany(c.nodes[f], "steady", workers, each)

	type outcome struct {
		acked    []ackedLock
		failures []string
	}
	done := make(chan outcome, 1)
	go func() {
		a, f := lockMany(c.nodes[f], "moving", workers, each)
		done <- outcome{a, f}
	}()
	poll(t, "the moving commands under way", func() bool { return c.nodes[f].pending.len() > 0 })
	if got, err := c.nodes[lead].TransferLeader(context.Background(), target); err != nil || got != target {
		t.Fatalf("TransferLeader(%d) = %d, %v", target, got, err)
	}
	moved := <-done
	acked, failures = append(acked, moved.acked...), append(failures, moved.failures...)
	if len(failures) > 0 {
		t.Fatalf("%d of %d commands failed, first: %s", len(failures), 2*workers*each, failures[0])
	}

	c.converged(t)
	tokens := map[int64]string{}
	for _, a := range acked {
		if other, dup := tokens[a.token]; dup {
			t.Fatalf("token %d answered both %s and %s", a.token, other, a.name)
		}
		tokens[a.token] = a.name
	}
	for id, n := range c.nodes {
		holdsAll(t, id, n, acked)
	}
}
