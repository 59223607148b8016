package metrics

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/lockd/lockd/server"
)

// Every family of docs/operations.md's list is exposed by a node that has
// served a command (the command and peer families have series only once
// there is something to count).
func TestEveryFamilyIsExposed(t *testing.T) {
	n := startNode(t)
	if err := n.redis(t).Do(context.Background(), "LOCK", "a", "x").Err(); err != nil {
		t.Fatal(err)
	}
	fams := n.scrape(t)
	for _, name := range []string{
		"lockd_raft_has_leader", "lockd_raft_is_leader", "lockd_raft_leader_changes_total", "lockd_raft_term",
		"lockd_raft_commit_index", "lockd_raft_applied_index", "lockd_raft_proposals_pending", "lockd_raft_proposals_failed_total",
		"lockd_log_fsync_duration_seconds", "lockd_log_written_bytes_total", "lockd_log_entries_per_sync",
		"lockd_snapshot_duration_seconds", "lockd_snapshot_size_bytes",
		"lockd_clients_connected", "lockd_commands_total", "lockd_command_duration_seconds",
		"lockd_locks_held", "lockd_lock_waiters", "lockd_lock_grants_total", "lockd_lock_expiries_total",
		"lockd_lock_refusals_total", "lockd_lock_wait_timeouts_total", "lockd_lock_wait_seconds", "lockd_lock_hold_seconds",
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no family %s", name)
		}
	}
}

// What the metrics say matches what the test did.
func TestMetricsCountWhatHappened(t *testing.T) {
	n := startNode(t)
	rdb := n.redis(t)
	ctx := context.Background()
	const grants, refusals = 5, 3
	for i := range grants {
		if err := rdb.Do(ctx, "LOCK", fmt.Sprint("l", i), "x").Err(); err != nil {
			t.Fatal(err)
		}
	}
	for range refusals {
		if err := rdb.Do(ctx, "LOCK", "l0", "y").Err(); err == nil || err.Error() != "redis: nil" {
			t.Fatalf("LOCK of a held lock: %v", err)
		}
	}
	if err := rdb.Do(ctx, "UNLOCK", "l0", "x").Err(); err != nil {
		t.Fatal(err)
	}
	fams := n.scrape(t)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"lockd_lock_grants_total", nil, grants},
		{"lockd_lock_refusals_total", nil, refusals},
		{"lockd_locks_held", nil, grants - 1},
		{"lockd_lock_hold_seconds", nil, 1}, // one release observed
		{"lockd_commands_total", []string{"command", "lock", "result", "ok"}, grants + refusals},
		{"lockd_commands_total", []string{"command", "unlock", "result", "ok"}, 1},
		{"lockd_command_duration_seconds", []string{"command", "lock"}, grants + refusals},
		{"lockd_clients_connected", nil, 1},
		{"lockd_raft_is_leader", nil, 1},
		{"lockd_raft_has_leader", nil, 1},
		{"lockd_raft_proposals_pending", nil, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.name, tt.labels), func(t *testing.T) {
			if got, ok := value(fams, tt.name, tt.labels...); !ok || got != tt.want {
				t.Fatalf("%s%v = %v (present: %v); want %v", tt.name, tt.labels, got, ok, tt.want)
			}
		})
	}
	if got, _ := value(fams, "lockd_log_fsync_duration_seconds"); got < 1 {
		t.Errorf("%v log syncs observed after %d writes", got, grants+refusals+1)
	}
	if got, _ := value(fams, "lockd_log_written_bytes_total"); got <= 0 {
		t.Errorf("%v log bytes written", got)
	}
	applied, _ := value(fams, "lockd_raft_applied_index")
	commit, _ := value(fams, "lockd_raft_commit_index")
	if applied < 1 || applied > commit {
		t.Errorf("applied index %v, commit index %v", applied, commit)
	}
}

// A snapshot is observed with its size.
func TestSnapshotsAreObserved(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.Node.SnapshotEntries = 4 })
	rdb := n.redis(t)
	for i := range 8 {
		if err := rdb.Do(context.Background(), "LOCK", fmt.Sprint("s", i), "x").Err(); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "a snapshot to be observed", func() bool {
		fams := n.scrape(t)
		count, _ := value(fams, "lockd_snapshot_duration_seconds")
		size, _ := value(fams, "lockd_snapshot_size_bytes")
		return count >= 1 && size > 0
	})
}

func TestHealth(t *testing.T) {
	n := startNode(t)
	if code, body := get(t, n.url+"/livez"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/livez: %d %q; want 200 ok", code, body)
	}
	poll(t, "/readyz to answer 200 ok once the node leads", func() bool {
		code, body := get(t, n.url+"/readyz")
		return code == http.StatusOK && body == "ok\n"
	})
}

// A member of a three-node cluster whose peers never come knows no leader:
// it lives, and is not ready.
func TestNotReadyWithoutALeader(t *testing.T) {
	cln := listen(t)
	n := startNode(t, func(c *server.Config) {
		c.Node.Peers = map[uint64]string{1: cln.Addr().String(), 2: "127.0.0.1:1", 3: "127.0.0.1:1"}
		c.Node.Listener = cln
		c.Node.Secret = "0123456789abcdef0123"
	})
	if code, body := get(t, n.url+"/livez"); code != http.StatusOK {
		t.Errorf("/livez: %d %q; want 200", code, body)
	}
	if code, body := get(t, n.url+"/readyz"); code != http.StatusServiceUnavailable || body != "no leader known\n" {
		t.Errorf("/readyz: %d %q; want 503 no leader known", code, body)
	}
	if has, _ := value(n.scrape(t), "lockd_raft_has_leader"); has != 0 {
		t.Errorf("lockd_raft_has_leader %v", has)
	}
}

// A queued LOCK ... WAIT shows as a waiter, then its wait and the hold
// before it are observed, in seconds, in the table's buckets.
func TestWaitAndHoldTimes(t *testing.T) {
	n := startNode(t)
	holder, waiter := n.redis(t), n.redis(t)
	ctx := context.Background()
	if err := holder.Do(ctx, "LOCK", "w", "x").Err(); err != nil {
		t.Fatal(err)
	}
	granted := make(chan error, 1)
	go func() { granted <- waiter.Do(ctx, "LOCK", "w", "y", "WAIT", 10000).Err() }()
	poll(t, "one waiter", func() bool {
		w, _ := value(n.scrape(t), "lockd_lock_waiters")
		return w == 1
	})
	if err := holder.Do(ctx, "UNLOCK", "w", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if err := <-granted; err != nil {
		t.Fatalf("LOCK ... WAIT: %v", err)
	}
	fams := n.scrape(t)
	for _, name := range []string{"lockd_lock_wait_seconds", "lockd_lock_hold_seconds"} {
		h := fams[name].GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 1 || h.GetSampleSum() < 0 || h.GetSampleSum() > 10 {
			t.Errorf("%s: %d observations, sum %vs; want one, under the 10s wait", name, h.GetSampleCount(), h.GetSampleSum())
		}
		b := h.GetBucket()
		if len(b) < 2 || b[0].GetUpperBound() != 0.001 || b[len(b)-2].GetUpperBound() != 3600 || b[len(b)-2].GetCumulativeCount() != 1 {
			t.Errorf("%s: buckets %v; want 0.001s to 3600s (then +Inf), the last counting the observation", name, b)
		}
	}
	if w, _ := value(fams, "lockd_lock_waiters"); w != 0 {
		t.Errorf("lockd_lock_waiters %v after the grant", w)
	}
	if g, _ := value(fams, "lockd_lock_grants_total"); g != 2 {
		t.Errorf("lockd_lock_grants_total %v; want 2 (x, then y)", g)
	}
}
