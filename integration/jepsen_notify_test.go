package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lockd/lockd/integration/check"
	"github.com/redis/go-redis/v9"
)

// The notification check of the Jepsen suite: one subscriber per node
// listens to every keyspace event (__keyevent@0__:*) from a start marker,
// published through the log once all are subscribed, to an end marker
// published after the run, before the final restart. A subscriber's record
// stops at the first disconnection (a killed node, a snapshot installed).
// Then:
//   - order: of any two records, one is a prefix of the other (every node
//     delivers the same events in the same, the log's, order);
//   - completeness: a record that reached the end marker unbroken holds,
//     for every lock name, a grant event for every token LOCK acknowledged,
//     a set event for every SET NX acknowledged and a del event for every
//     release acknowledged (at least: an indeterminate op may have acted).

const notifyMarker = "jepsen-marker"

// notifyWatcher records one node's events.
type notifyWatcher struct {
	node int
	rdb  *redis.Client
	ps   *redis.PubSub

	mu      sync.Mutex
	started bool // the start marker arrived
	ended   bool // the end marker arrived, the record unbroken
	broken  bool // disconnected after the start: the record stops there
	events  []string
}

// startNotifyWatchers subscribes one watcher per node and publishes the
// start marker once all are subscribed. Each watcher's goroutine runs until
// ctx ends.
func startNotifyWatchers(ctx context.Context, c *cluster, wg *sync.WaitGroup) ([]*notifyWatcher, error) {
	var ws []*notifyWatcher
	for i := 1; i <= len(c.nodes); i++ {
		rdb := jepsenClient(c.nodes[i].client, c.clientTLS())
		ps := rdb.Subscribe(ctx, notifyMarker)
		err := func() error {
			if _, err := ps.Receive(ctx); err != nil {
				return fmt.Errorf("node %d: SUBSCRIBE: %w", i, err)
			}
			if err := ps.PSubscribe(ctx, "__keyevent@0__:*"); err != nil {
				return err
			}
			if _, err := ps.Receive(ctx); err != nil {
				return fmt.Errorf("node %d: PSUBSCRIBE: %w", i, err)
			}
			return nil
		}()
		if err != nil {
			ps.Close()
			rdb.Close()
			return nil, err // the watchers started stop with ctx
		}
		w := &notifyWatcher{node: i, rdb: rdb, ps: ps}
		ws = append(ws, w)
		wg.Go(func() { w.run(ctx) })
	}
	return ws, publishMarker(c, "start")
}

// publishMarker publishes a marker through whichever node takes it.
func publishMarker(c *cluster, what string) error {
	var err error
	for range 20 {
		for i := 1; i <= len(c.nodes); i++ {
			rdb := jepsenClient(c.nodes[i].client, c.clientTLS())
			pctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
			err = rdb.Publish(pctx, notifyMarker, what).Err()
			cancel()
			rdb.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond) // between rounds of retries, not ordering
	}
	return fmt.Errorf("PUBLISH %s marker: %w", what, err)
}

// run records until ctx ends and the watcher is closed (stopWatchers):
// go-redis's Receive does not watch ctx while it waits.
func (w *notifyWatcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		msg, err := w.ps.Receive(ctx)
		w.mu.Lock()
		switch m := msg.(type) {
		case nil:
			if err != nil && w.started && !w.ended {
				w.broken = true
			}
		case *redis.Subscription:
			if w.started {
				w.broken = true // a resubscription after a disconnection
			}
		case *redis.Message:
			switch {
			case m.Channel == notifyMarker && m.Payload == "start":
				w.started = true
			case m.Channel == notifyMarker && m.Payload == "end":
				w.ended = w.started && !w.broken
			case w.started && !w.broken && !w.ended:
				w.events = append(w.events, strings.TrimPrefix(m.Channel, "__keyevent@0__:")+" "+m.Payload)
			}
		}
		w.mu.Unlock()
		if err != nil {
			wait(ctx, 50*time.Millisecond) // go-redis redials on the next Receive
		}
	}
}

// stopWatchers ends the watchers' goroutines and closes their connections.
// It may be called more than once.
func stopWatchers(cancel context.CancelFunc, ws []*notifyWatcher, wg *sync.WaitGroup) {
	cancel()
	for _, w := range ws {
		w.ps.Close() // ends a Receive that waits
	}
	wg.Wait()
	for _, w := range ws {
		w.rdb.Close()
	}
}

// waitEnded waits, up to timeout, until every watcher still unbroken has the
// end marker.
func waitEnded(ws []*notifyWatcher, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		done := true
		for _, w := range ws {
			w.mu.Lock()
			if !w.ended && !w.broken {
				done = false
			}
			w.mu.Unlock()
		}
		if done {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// checkNotifications checks the watchers' records against ops, and returns
// a summary for the report.
func checkNotifications(ws []*notifyWatcher, ops []check.Op) (string, error) {
	records := make([][]string, len(ws))
	var complete []int
	for i, w := range ws {
		w.mu.Lock()
		records[i] = slices.Clone(w.events)
		if w.ended {
			complete = append(complete, i)
		}
		w.mu.Unlock()
	}
	for i := range records {
		for j := i + 1; j < len(records); j++ {
			n := min(len(records[i]), len(records[j]))
			for k := range n {
				if records[i][k] != records[j][k] {
					return "", fmt.Errorf("nodes %d and %d delivered different events at position %d: %q and %q",
						ws[i].node, ws[j].node, k, records[i][k], records[j][k])
				}
			}
		}
	}
	want := map[string]int{} // "kind name" -> acknowledged at least
	tokens := map[string]map[int64]bool{}
	for _, op := range ops {
		if op.Status != check.StatusOK || op.Final {
			continue
		}
		switch {
		case op.Kind == check.KindLock && op.Token > 0:
			if tokens[op.Name] == nil {
				tokens[op.Name] = map[int64]bool{}
			}
			tokens[op.Name][op.Token] = true
		case op.Kind == check.KindSetNX && op.Granted:
			want["set "+op.Name]++
		case op.Kind == check.KindUnlock && op.Released:
			want["del "+op.Name]++
		}
	}
	for name, ts := range tokens {
		want["grant "+name] += len(ts)
	}
	for _, i := range complete {
		got := map[string]int{}
		for _, e := range records[i] {
			got[e]++
		}
		for k, n := range want {
			if got[k] < n {
				return "", fmt.Errorf("node %d's subscriber, connected throughout, received %d %q events; the history acknowledged %d", ws[i].node, got[k], k, n)
			}
		}
	}
	var lens []string
	for i, r := range records {
		state := "broken"
		if slices.Contains(complete, i) {
			state = "complete"
		}
		lens = append(lens, fmt.Sprintf("node %d: %d events (%s)", ws[i].node, len(r), state))
	}
	return fmt.Sprintf("%s; %d of %d complete records checked against %d acknowledged grants and releases",
		strings.Join(lens, ", "), len(complete), len(ws), sum(want)), nil
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
