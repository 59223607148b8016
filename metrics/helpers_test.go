package metrics

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lockd/lockd/replication"
	"github.com/lockd/lockd/server"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
)

// node is a lockd server with metrics, served on a loopback port.
type node struct {
	srv  *server.Server
	m    *Metrics
	http *HTTPServer
	url  string // http://host:port
}

// startNode starts a single-node cluster, as cmd/lockd assembles one with
// --metrics-listen, and closes it at the end of the test. Each opt may
// change the Config before server.New.
func startNode(t testing.TB, opts ...func(*server.Config)) *node {
	t.Helper()
	ln := listen(t)
	m := New()
	cfg := server.Config{
		Listener: ln,
		Node:     replication.Config{ID: 1, DataDir: t.TempDir(), Observer: m},
		Observer: m.Commands(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	m.Watch(srv)
	hs := Serve(listen(t), m, srv.Node(), slog.New(slog.DiscardHandler))
	t.Cleanup(func() { hs.Close() })
	return &node{srv: srv, m: m, http: hs, url: "http://" + hs.Addr().String()}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// redis returns a go-redis client of n's client port.
func (n *node) redis(t testing.TB) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: n.srv.Addr().String(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// get returns the status and body of GET url.
func get(t testing.TB, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape returns n's metric families, parsed from /metrics.
func (n *node) scrape(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, n.url+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels are
// labels (name, value pairs), and whether there is one: a counter's or a
// gauge's value, a histogram's count.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
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

// poll calls cond until it holds, failing the test after a deadline.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not ordering
	}
}
