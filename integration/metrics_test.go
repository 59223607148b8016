package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsCluster starts n lockd processes, each with --metrics-listen on a
// port of its own, and returns the cluster and each node's metrics URL.
func metricsCluster(t testing.TB, n int) (*cluster, map[int]string) {
	t.Helper()
	urls := map[int]string{}
	for i := 1; i <= n; i++ {
		urls[i] = "http://" + freePort(t)
	}
	c := startCluster(t, n, clusterOpts{perNode: func(i int) []string {
		return []string{"--metrics-listen", strings.TrimPrefix(urls[i], "http://")}
	}})
	return c, urls
}

// httpGet returns the status and body of GET url with the given headers
// (name, value pairs), or status 0 when the node does not answer.
func httpGet(t testing.TB, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, string(b)
}

// scrape returns the metric families a node exposes, parsed.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, url+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("%s/metrics: %d %s", url, code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing %s/metrics: %v", url, err)
	}
	return fams
}

// sample returns the value (a histogram's count) of the sample of family
// name whose labels include labels (name, value pairs); ok is false when
// there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
next:
	for _, m := range fams[name].GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// A three-node cluster scraped over HTTP: the counts match what the test
// did, exactly one node says it leads, the peer links are up, and readiness
// follows a node's contact with the cluster.
func TestMetricsOfACluster(t *testing.T) {
	c, urls := metricsCluster(t, 3)
	lead := c.waitLeader(10*time.Second, nil)
	rdb := c.client(lead)
	ctx := context.Background()
	const grants, refusals = 10, 4
	for i := range grants {
		if tok, err := lockCmd(ctx, rdb, fmt.Sprint("m", i), "x"); err != nil || tok == 0 {
			t.Fatalf("LOCK m%d: %d, %v", i, tok, err)
		}
	}
	for range refusals {
		if tok, err := lockCmd(ctx, rdb, "m0", "y"); err != nil || tok != 0 {
			t.Fatalf("LOCK of a held lock: %d, %v", tok, err)
		}
	}
	if _, err := lockCmd(ctx, rdb, "m0", "y", "PX", "soon"); err == nil {
		t.Fatal("LOCK with a bad PX was accepted")
	}

	t.Run("every family is exposed by every node", func(t *testing.T) {
		for i, url := range urls {
			fams := scrape(t, url)
			for _, name := range []string{
				"lockd_raft_has_leader", "lockd_raft_is_leader", "lockd_raft_leader_changes_total", "lockd_raft_term",
				"lockd_raft_commit_index", "lockd_raft_applied_index", "lockd_raft_proposals_pending", "lockd_raft_proposals_failed_total",
				"lockd_log_fsync_duration_seconds", "lockd_log_written_bytes_total", "lockd_log_entries_per_sync",
				"lockd_snapshot_duration_seconds", "lockd_snapshot_size_bytes",
				"lockd_peer_connected", "lockd_peer_frames_sent_total", "lockd_peer_frames_dropped_total",
				"lockd_clients_connected", "lockd_locks_held", "lockd_lock_waiters", "lockd_lock_grants_total",
				"lockd_lock_expiries_total", "lockd_lock_refusals_total", "lockd_lock_wait_timeouts_total",
				"lockd_lock_wait_seconds", "lockd_lock_hold_seconds", "go_goroutines", "process_cpu_seconds_total",
			} {
				if _, ok := fams[name]; !ok {
					t.Errorf("node %d: no family %s", i, name)
				}
			}
			if n := len(fams["lockd_peer_connected"].GetMetric()); n != 2 {
				t.Errorf("node %d: lockd_peer_connected has %d series; want one per peer, 2", i, n)
			}
		}
		if _, ok := scrape(t, urls[lead])["lockd_commands_total"]; !ok {
			t.Error("the leader has no lockd_commands_total")
		}
	})
	t.Run("every node applied the grants and refusals the test made", func(t *testing.T) {
		for i, url := range urls {
			poll(t, 10*time.Second, fmt.Sprintf("node %d to count %d grants and %d refusals", i, grants, refusals), func() bool {
				fams := scrape(t, url)
				g, _ := sample(fams, "lockd_lock_grants_total")
				r, _ := sample(fams, "lockd_lock_refusals_total")
				h, _ := sample(fams, "lockd_locks_held")
				return g == grants && r == refusals && h == grants
			})
		}
	})
	t.Run("the leader counted the LOCKs it was sent, by result", func(t *testing.T) {
		fams := scrape(t, urls[lead])
		for _, want := range []struct {
			result string
			n      float64
		}{{"ok", grants + refusals}, {"err", 1}} {
			if got, _ := sample(fams, "lockd_commands_total", "command", "lock", "result", want.result); got != want.n {
				t.Errorf("lockd_commands_total{command=lock,result=%s} = %v; want %v", want.result, got, want.n)
			}
		}
		if got, _ := sample(fams, "lockd_command_duration_seconds", "command", "lock"); got != grants+refusals+1 {
			t.Errorf("lockd_command_duration_seconds{command=lock} counted %v; want %v", got, grants+refusals+1)
		}
		for i := range urls {
			if i == lead {
				continue
			}
			peer := fmt.Sprint(i)
			if up, _ := sample(fams, "lockd_peer_connected", "peer", peer); up != 1 {
				t.Errorf("lockd_peer_connected{peer=%s} = %v", peer, up)
			}
			if sent, _ := sample(fams, "lockd_peer_frames_sent_total", "peer", peer); sent < 1 {
				t.Errorf("lockd_peer_frames_sent_total{peer=%s} = %v", peer, sent)
			}
		}
	})
	t.Run("exactly one node leads", func(t *testing.T) {
		poll(t, 10*time.Second, "is_leader to sum to 1 and every node to know a leader", func() bool {
			leaders, known := 0.0, 0.0
			for _, url := range urls {
				fams := scrape(t, url)
				l, _ := sample(fams, "lockd_raft_is_leader")
				k, _ := sample(fams, "lockd_raft_has_leader")
				leaders, known = leaders+l, known+k
			}
			return leaders == 1 && known == 3
		})
	})
	t.Run("a huge header is refused and the port still serves", func(t *testing.T) {
		if code, _ := httpGet(t, urls[lead]+"/metrics", "X-Big", strings.Repeat("x", 64<<10)); code != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a 64 KiB header: %d; want 431", code)
		}
		if code, body := httpGet(t, urls[lead]+"/livez"); code != http.StatusOK {
			t.Errorf("/livez after it: %d %s", code, body)
		}
	})
	t.Run("a node cut from the others is not ready, and is again once healed", func(t *testing.T) {
		cutOff := lead%3 + 1 // a follower
		for i, url := range urls {
			poll(t, 10*time.Second, fmt.Sprintf("node %d to be ready", i), func() bool {
				code, _ := httpGet(t, url+"/readyz")
				return code == http.StatusOK
			})
		}
		c.isolate(cutOff)
		var why string
		poll(t, 10*time.Second, "the cut-off node to be not ready", func() bool {
			var code int
			code, why = httpGet(t, urls[cutOff]+"/readyz")
			return code == http.StatusServiceUnavailable
		})
		if strings.Count(why, "\n") != 1 || len(why) < 5 {
			t.Errorf("/readyz's reason %q: want one line", why)
		}
		if code, body := httpGet(t, urls[cutOff]+"/livez"); code != http.StatusOK {
			t.Errorf("/livez of the cut-off node: %d %s; it still serves", code, body)
		}
		c.healAll()
		poll(t, 15*time.Second, "the healed node to be ready", func() bool {
			code, _ := httpGet(t, urls[cutOff]+"/readyz")
			return code == http.StatusOK
		})
	})
}

// A node restarted alone, its peers down, knows no leader: not ready, and
// ready once a peer is back and a leader elected.
func TestReadyzBeforeALeader(t *testing.T) {
	c, urls := metricsCluster(t, 3)
	for i := 1; i <= 3; i++ {
		c.kill(i)
	}
	c.start(1)
	if code, body := httpGet(t, urls[1]+"/readyz"); code != http.StatusServiceUnavailable || body != "no leader known\n" {
		t.Fatalf("/readyz of a node alone: %d %q; want 503 no leader known", code, body)
	}
	if l, ok := sample(scrape(t, urls[1]), "lockd_raft_has_leader"); !ok || l != 0 {
		t.Fatalf("lockd_raft_has_leader = %v (present %v); want 0", l, ok)
	}
	c.start(2)
	poll(t, 15*time.Second, "node 1 to be ready once a leader is elected", func() bool {
		code, _ := httpGet(t, urls[1]+"/readyz")
		return code == http.StatusOK
	})
}
