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

// The notification check of the Jepsen suite. One subscriber per node
// listens to every keyspace event (__keyevent@0__:*) and to a marker
// channel on which the test publishes, through the log, a numbered marker
// every half second during the run (recording when each PUBLISH was sent
// and acknowledged). A subscriber's record is its events and markers in the
// order received, with a break wherever its connection was lost (a killed
// node, a snapshot installed) and it subscribed again. Then:
//   - order: until their first breaks, of any two records one is a prefix
//     of the other (every node delivers the same events in the log's order);
//   - completeness: between two markers a record received with no break
//     between them, it holds, for every lock name, a grant event for every
//     new token LOCK acknowledged, a set event for every SET NX acknowledged
//     and a del event for every release acknowledged, among the ops sent
//     after the first marker was acknowledged and acknowledged before the
//     second was sent (those are in the log between the two markers).

const notifyMarker = "jepsen-marker"

// notifyWatcher records one node's events.
type notifyWatcher struct {
	node int
	rdb  *redis.Client
	ps   *redis.PubSub

	now func() int64 // the history's clock

	mu     sync.Mutex
	record []string // "grant name", "del name", ..., "marker N", "break"
	breaks []int64  // when each "break" was received, in order
}

// marker is one marker PUBLISH: sent at Call, acknowledged at Return
// (History.Now), or not acknowledged (Return 0).
type marker struct{ Call, Return int64 }

// notifier is the subscribers and the markers of a run.
type notifier struct {
	c        *cluster
	hist     *check.History
	watchers []*notifyWatcher
	wg       sync.WaitGroup
	cancel   context.CancelFunc // ends the watchers
	noMarks  context.CancelFunc // ends the markers
	marking  sync.WaitGroup

	mu      sync.Mutex
	markers []marker
}

// startNotifier subscribes one watcher per node, then publishes markers
// until the context of stop ends.
func startNotifier(c *cluster, hist *check.History) (*notifier, error) {
	ctx, cancel := context.WithCancel(context.Background())
	mctx, noMarks := context.WithCancel(ctx)
	n := &notifier{c: c, hist: hist, cancel: cancel, noMarks: noMarks}
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
			n.stop()
			return nil, err
		}
		w := &notifyWatcher{node: i, rdb: rdb, ps: ps, now: n.hist.Now}
		n.watchers = append(n.watchers, w)
		n.wg.Go(func() { w.run(ctx) })
	}
	n.marking.Go(func() {
		for mctx.Err() == nil {
			n.mark()
			wait(mctx, 500*time.Millisecond)
		}
	})
	return n, nil
}

// mark publishes the next marker through a node picked in turn.
func (n *notifier) mark() {
	n.mu.Lock()
	k := len(n.markers)
	n.markers = append(n.markers, marker{Call: n.hist.Now()})
	n.mu.Unlock()
	rdb := jepsenClient(n.c.nodes[1+k%len(n.c.nodes)].client, n.c.clientTLS())
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), jepsenOpTimeout)
	defer cancel()
	if rdb.Publish(ctx, notifyMarker, fmt.Sprint(k)).Err() == nil {
		n.mu.Lock()
		n.markers[k].Return = n.hist.Now()
		n.mu.Unlock()
	}
}

// stop ends the markers and the watchers and closes their connections. It
// may be called more than once.
func (n *notifier) stop() {
	n.noMarks()
	n.marking.Wait()
	n.cancel()
	for _, w := range n.watchers {
		w.ps.Close() // go-redis's Receive does not watch its context while it waits
	}
	n.wg.Wait()
	for _, w := range n.watchers {
		w.rdb.Close()
	}
}

// settle waits, up to timeout, until every watcher's record ends with the
// last marker acknowledged, so that the records hold the whole run.
func (n *notifier) settle(timeout time.Duration) {
	n.noMarks()
	n.marking.Wait()
	deadline := time.Now().Add(timeout)
	n.mark()
	n.mu.Lock()
	last := fmt.Sprintf("marker %d", len(n.markers)-1)
	n.mu.Unlock()
	for time.Now().Before(deadline) {
		done := true
		for _, w := range n.watchers {
			w.mu.Lock()
			if !slices.Contains(w.record, last) {
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

// run records until ctx ends and the watcher is closed (stopWatchers).
// After a disconnection go-redis subscribes again, to the marker channel and
// to the pattern, one confirmation each: every confirmation is a break, as
// messages of the marker channel may arrive before the pattern is
// subscribed again (a node replaying its log delivers them fast).
func (w *notifyWatcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		msg, err := w.ps.Receive(ctx)
		w.mu.Lock()
		switch m := msg.(type) {
		case *redis.Subscription:
			w.record = append(w.record, "break")
			w.breaks = append(w.breaks, w.now())
		case *redis.Message:
			if m.Channel == notifyMarker {
				w.record = append(w.record, "marker "+m.Payload)
			} else {
				w.record = append(w.record, strings.TrimPrefix(m.Channel, "__keyevent@0__:")+" "+m.Payload)
			}
		}
		w.mu.Unlock()
		if err != nil {
			wait(ctx, 50*time.Millisecond)
		}
	}
}

// check checks the records against ops and returns a summary.
func (n *notifier) check(ops []check.Op) (string, error) {
	records := make([][]string, len(n.watchers))
	breaks := make([][]int64, len(n.watchers))
	for i, w := range n.watchers {
		w.mu.Lock()
		records[i], breaks[i] = slices.Clone(w.record), slices.Clone(w.breaks)
		w.mu.Unlock()
	}
	// Order, up to each record's first break. Records start at different
	// points of the log (each subscribed when it did): compare from the
	// first marker all have.
	first := -1
	for k := 0; first < 0 && k < 1000; k++ {
		all := true
		for _, r := range records {
			if !slices.Contains(r, fmt.Sprintf("marker %d", k)) {
				all = false
			}
		}
		if all {
			first = k
		}
	}
	if first < 0 {
		return "", fmt.Errorf("no marker reached every subscriber")
	}
	var tails [][]string
	for _, r := range records {
		r = r[slices.Index(r, fmt.Sprintf("marker %d", first)):]
		if b := slices.Index(r, "break"); b >= 0 {
			r = r[:b]
		}
		tails = append(tails, r)
	}
	for i := range tails {
		for j := i + 1; j < len(tails); j++ {
			for k := range min(len(tails[i]), len(tails[j])) {
				if tails[i][k] != tails[j][k] {
					return "", fmt.Errorf("nodes %d and %d delivered different events at position %d after marker %d: %q and %q",
						n.watchers[i].node, n.watchers[j].node, k, first, tails[i][k], tails[j][k])
				}
			}
		}
	}
	// Completeness, segment by segment.
	n.mu.Lock()
	markers := slices.Clone(n.markers)
	n.mu.Unlock()
	segments, checked := 0, 0
	for i, r := range records {
		start := -1 // the marker that opened the segment being read
		got := map[string]int{}
		// A node writes a subscription's confirmation before messages of
		// the subscriptions it had that are still queued: messages
		// published before the pattern was subscribed again may arrive
		// after its confirmation (a node replaying its log publishes many
		// at once). A segment after a break therefore counts only from a
		// marker sent after the break was received.
		var lastBreak int64
		nbreaks := 0
		for _, e := range r {
			switch {
			case e == "break":
				start = -1
				lastBreak = breaks[i][nbreaks]
				nbreaks++
			case strings.HasPrefix(e, "marker "):
				var k int
				fmt.Sscan(strings.TrimPrefix(e, "marker "), &k)
				if k < len(markers) && markers[k].Call < lastBreak {
					start = -1 // published before the node had the subscriptions back
					continue
				}
				if start >= 0 && markers[start].Return > 0 {
					want := acknowledgedBetween(ops, markers[start].Return, markers[k].Call)
					for key, w := range want {
						if got[key] < w {
							return "", fmt.Errorf("node %d's subscriber received %d %q events between markers %d and %d; the history acknowledged %d in that span",
								n.watchers[i].node, got[key], key, start, k, w)
						}
						checked += w
					}
					segments++
				}
				start = k
				clear(got)
			default:
				got[e]++
			}
		}
	}
	var lens []string
	for i, r := range records {
		lens = append(lens, fmt.Sprintf("node %d: %d entries, %d breaks", n.watchers[i].node, len(r), count(r, "break")))
	}
	return fmt.Sprintf("%s; order checked from marker %d of %d; %d unbroken segments between markers checked complete against %d acknowledged grants and releases",
		strings.Join(lens, ", "), first, len(markers), segments, checked), nil
}

// acknowledgedBetween counts, by "event name", the grants (new tokens),
// SET NX grants and releases acknowledged in ops sent after from and
// acknowledged before to.
//
// A LOCK acknowledged with a token may be a re-grant to its holder: the
// token was made by an earlier LOCK of the same owner, maybe one whose
// outcome the client never learned. Its grant counts only when every LOCK
// of that owner on that name that may have made the token (indeterminate,
// or acknowledged with it) was sent after from.
func acknowledgedBetween(ops []check.Op, from, to int64) map[string]int {
	earliest := map[string]int64{} // "name owner token" and "name owner ?" -> earliest call
	note := func(k string, call int64) {
		if e, ok := earliest[k]; !ok || call < e {
			earliest[k] = call
		}
	}
	for _, op := range ops {
		if op.Kind != check.KindLock || op.Final {
			continue
		}
		switch {
		case op.Status == check.StatusUnknown:
			note(fmt.Sprint(op.Name, " ", op.Owner, " ?"), op.Call)
		case op.Status == check.StatusOK && op.Token > 0:
			note(fmt.Sprint(op.Name, " ", op.Owner, " ", op.Token), op.Call)
		}
	}
	madeAfter := func(op check.Op) bool {
		for _, k := range []string{fmt.Sprint(op.Name, " ", op.Owner, " ", op.Token), fmt.Sprint(op.Name, " ", op.Owner, " ?")} {
			if e, ok := earliest[k]; ok && e < from {
				return false
			}
		}
		return true
	}
	want := map[string]int{}
	seen := map[string]bool{} // "name token": counted once
	for _, op := range ops {
		if op.Status != check.StatusOK || op.Final || op.Call < from || op.Return > to {
			continue
		}
		switch {
		case op.Kind == check.KindLock && op.Token > 0:
			if k := fmt.Sprint(op.Name, " ", op.Token); !seen[k] && madeAfter(op) {
				seen[k] = true
				want["grant "+op.Name]++
			}
		case op.Kind == check.KindSetNX && op.Granted:
			want["set "+op.Name]++
		case op.Kind == check.KindUnlock && op.Released:
			want["del "+op.Name]++
		}
	}
	return want
}

func count(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}
