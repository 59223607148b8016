package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestSplitEndpoints(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "127.0.0.1:6379", want: []string{"127.0.0.1:6379"}},
		{in: " 127.0.0.1:1, 127.0.0.1:2 ,,", want: []string{"127.0.0.1:1", "127.0.0.1:2"}},
		{in: "[::1]:6379", want: []string{"[::1]:6379"}},
		{in: "", wantErr: true},
		{in: " , ", wantErr: true},
		{in: "localhost", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := splitEndpoints(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "defaults", args: nil},
		{name: "redis wait", args: []string{"-mode", "redis", "-wait-replicas", "1"}},
		{name: "bad mode", args: []string{"-mode", "zookeeper"}, wantErr: "-mode"},
		{name: "etcd", args: []string{"-mode", "etcd", "-endpoints", "127.0.0.1:2379,127.0.0.1:2381", "-ttl", "1500ms"}},
		{name: "etcd wait", args: []string{"-mode", "etcd", "-wait-replicas", "1"}, wantErr: "redis only"},
		{name: "etcd password", args: []string{"-mode", "etcd", "-password", "x"}, wantErr: "-password"},
		{name: "wait needs redis", args: []string{"-wait-replicas", "1"}, wantErr: "redis only"},
		{name: "wait needs timeout", args: []string{"-mode", "redis", "-wait-replicas", "1", "-timeout", "1s"}, wantErr: "WAIT timeout"},
		{name: "zero clients", args: []string{"-clients", "0"}, wantErr: "-clients"},
		{name: "zero names", args: []string{"-names", "0"}, wantErr: "-names"},
		{name: "zero duration", args: []string{"-duration", "0s"}, wantErr: "-duration"},
		{name: "sub-ms ttl", args: []string{"-ttl", "500us"}, wantErr: "-ttl"},
		{name: "protocol", args: []string{"-protocol", "4"}, wantErr: "-protocol"},
		{name: "stray arg", args: []string{"extra"}, wantErr: "unexpected"},
		{name: "bad endpoint", args: []string{"-endpoints", "nohost"}, wantErr: "-endpoints"},
		{name: "pipeline lockd", args: []string{"-pipeline", "32"}},
		{name: "pipeline redis", args: []string{"-mode", "redis", "-pipeline", "1000"}},
		{name: "pipeline 1 etcd", args: []string{"-mode", "etcd", "-pipeline", "1"}},
		{name: "pipeline 1 with wait", args: []string{"-mode", "redis", "-wait-replicas", "1", "-pipeline", "1"}},
		{name: "pipeline zero", args: []string{"-pipeline", "0"}, wantErr: "-pipeline must be between 1 and 1000"},
		{name: "pipeline negative", args: []string{"-pipeline", "-3"}, wantErr: "-pipeline must be between 1 and 1000"},
		{name: "pipeline too long", args: []string{"-pipeline", "1001"}, wantErr: "-pipeline must be between 1 and 1000"},
		{name: "pipeline etcd", args: []string{"-mode", "etcd", "-pipeline", "2"}, wantErr: "-pipeline > 1 applies to -mode lockd and redis only"},
		{name: "pipeline with wait", args: []string{"-mode", "redis", "-wait-replicas", "1", "-pipeline", "8"}, wantErr: "-pipeline > 1 cannot be combined with -wait-replicas"},
		{name: "pipeline over names", args: []string{"-names", "10", "-pipeline", "11"}, wantErr: "must not exceed -names"},
		{name: "pipeline of all names", args: []string{"-names", "10", "-pipeline", "10"}},
		{name: "server pids", args: []string{"-server-pids", "lockd1=100,lockd2=200,300"}},
		{name: "server pids etcd", args: []string{"-mode", "etcd", "-server-pids", "etcd1=100"}},
		{name: "server pids bad", args: []string{"-server-pids", "lockd1=x"}, wantErr: "-server-pids"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one mentioning %q (config %+v)", err, tt.wantErr, c)
			}
		})
	}
	c, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.clients != 50 || c.names != 10000 || c.duration != 10*time.Second || c.ttl != 30*time.Second ||
		c.mode != modeLockd || c.warmup != time.Second || fmt.Sprint(c.endpoints) != "[127.0.0.1:6379]" || c.pipeline != 1 || c.serverPids != nil {
		t.Fatalf("defaults changed: %+v", c)
	}
}

func TestEtcdTTLSeconds(t *testing.T) {
	tests := []struct {
		ttl  time.Duration
		want int
	}{
		{time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + time.Millisecond, 2},
		{30 * time.Second, 30},
	}
	for _, tt := range tests {
		if got := etcdTTLSeconds(tt.ttl); got != tt.want {
			t.Errorf("etcdTTLSeconds(%v) = %d, want %d", tt.ttl, got, tt.want)
		}
	}
}

func TestWorkersPerEndpoint(t *testing.T) {
	tests := []struct {
		clients, endpoints int
		want               string
	}{
		{50, 1, "[50]"},
		{50, 3, "[17 17 16]"},
		{2, 3, "[1 1 0]"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.clients, "/", tt.endpoints), func(t *testing.T) {
			if got := fmt.Sprint(workersPerEndpoint(tt.clients, tt.endpoints)); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNormalizeError(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ERR unknown command 'LOCK', with args beginning with: 'a' 'b' ", "ERR unknown command 'LOCK'"},
		{"read tcp 127.0.0.1:51234->127.0.0.1:6379: i/o timeout", "read tcp 127.0.0.1:6379: i/o timeout"},
		{"TRYAGAIN no leader; retry later", "TRYAGAIN no leader; retry later"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := normalizeError(tt.in); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCountersErrorsAreBounded(t *testing.T) {
	var a, b counters
	for i := 0; i < maxErrorTexts+10; i++ {
		a.addError("acquire", fmt.Errorf("distinct %d", i))
	}
	a.addError("acquire", errors.New("distinct 0"))
	b.addError("release", errors.New(strings.Repeat("x", 1000)))
	a.merge(&b)
	if a.errors != maxErrorTexts+12 {
		t.Fatalf("errors = %d", a.errors)
	}
	if len(a.errTexts) != maxErrorTexts+2 { // the kept texts, errOther, and b's one
		t.Fatalf("%d distinct texts kept", len(a.errTexts))
	}
	top := topErrors(a.errTexts, 3)
	want := []errorSample{{errOther, 10}, {"acquire: distinct 0", 2}, {"acquire: distinct 1", 1}}
	if fmt.Sprint(top) != fmt.Sprint(want) {
		t.Fatalf("top = %v, want %v", top, want)
	}
	for text := range a.errTexts {
		if len(text) > maxErrorLen {
			t.Fatalf("text of %d characters kept", len(text))
		}
	}
}

func TestRecordUsClamps(t *testing.T) {
	h := newHist()
	recordUs(h, 0)
	recordUs(h, 2*time.Hour)
	recordUs(h, 1500*time.Microsecond)
	if h.TotalCount() != 3 {
		t.Fatalf("count = %d, want 3", h.TotalCount())
	}
	if got := h.ValueAtQuantile(50); got < 1495 || got > 1505 {
		t.Fatalf("p50 = %d µs, want about 1500", got)
	}
}

func TestReport(t *testing.T) {
	cfg, err := parseFlags([]string{"-mode", "redis", "-endpoints", "127.0.0.1:1,127.0.0.1:2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	acq, rel := newHist(), newHist()
	for i := 1; i <= 100; i++ {
		recordUs(acq, time.Duration(i)*time.Millisecond)
	}
	recordUs(rel, time.Millisecond)
	total := counters{granted: 1000, busy: 10, released: 990, errors: 2, acquireMax: 100 * time.Millisecond}
	total.addError("acquire", errors.New("boom"))
	r := buildReport(cfg, &total, acq, rel, 2*time.Second, false)
	if r.AcquiresPerSec != 500 || r.BusyPerSec != 5 || r.ReleasesPerSec != 495 {
		t.Fatalf("rates %v %v %v", r.AcquiresPerSec, r.BusyPerSec, r.ReleasesPerSec)
	}
	if r.AcquireUs.Count != 100 || r.AcquireUs.Max != 100000 || r.AcquireUs.P50 < 49900 || r.AcquireUs.P50 > 50100 ||
		r.AcquireUs.P99 < 98900 || r.AcquireUs.P99 > 99100 {
		t.Fatalf("acquire summary %+v", r.AcquireUs)
	}
	if r.allFailed() {
		t.Fatal("allFailed with successes")
	}

	var buf bytes.Buffer
	if err := r.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("JSON is not one line: %q", buf.String())
	}
	var back map[string]any
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"acquires_per_sec", "busy_per_sec", "releases_per_sec", "errors", "error_samples", "acquire_us", "release_us"} {
		if _, ok := back[key]; !ok {
			t.Errorf("JSON lacks %q", key)
		}
	}
	for _, key := range []string{"server_cpu", "server_cpu_error"} {
		if _, ok := back[key]; ok {
			t.Errorf("JSON has %q without -server-pids", key)
		}
	}
	if p99 := back["acquire_us"].(map[string]any)["p99"].(float64); p99 != float64(r.AcquireUs.P99) {
		t.Errorf("acquire_us.p99 = %v", p99)
	}

	buf.Reset()
	if err := r.writeHuman(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"acquires (granted)", "500.0", "p99", "acquire: boom", "127.0.0.1:1,127.0.0.1:2"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("human output lacks %q:\n%s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "pipeline") || back["pipeline"].(float64) != 1 {
		t.Errorf("pipeline 1 reported as %v:\n%s", back["pipeline"], buf.String())
	}
	cfg.pipeline = 32
	buf.Reset()
	if err := buildReport(cfg, &total, acq, rel, 2*time.Second, false).writeHuman(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "latency per pipeline of 32") {
		t.Errorf("human output does not say the latency is per pipeline:\n%s", buf.String())
	}

	empty := buildReport(cfg, &counters{errors: 5}, newHist(), newHist(), time.Second, false)
	if !empty.allFailed() {
		t.Fatal("allFailed is false when every call errored")
	}
}

// fakeLocker is an in-memory lock table; it can fail every call.
type fakeLocker struct {
	held   map[string]string
	token  int64
	fail   error
	regret bool // hand out a token lower than the last one
}

func (f *fakeLocker) acquire(_ context.Context, name, owner string) (acquireResult, error) {
	if f.fail != nil {
		return acquireResult{}, f.fail
	}
	if _, ok := f.held[name]; ok {
		return acquireResult{}, nil
	}
	f.held[name] = owner
	f.token++
	tok := f.token
	if f.regret {
		tok = 1
	}
	return acquireResult{granted: true, token: tok}, nil
}

func (f *fakeLocker) release(_ context.Context, name, owner string) (bool, bool, error) {
	if f.fail != nil {
		return false, false, f.fail
	}
	if f.held[name] != owner {
		return false, false, nil
	}
	delete(f.held, name)
	return true, false, nil
}

// fakePipeliner is a fakeLocker that also takes batches; it records them.
type fakePipeliner struct {
	fakeLocker
	reverse  bool // in a batch, hand the largest token to the first grant
	failOdd  bool // fail every second command of a batch
	batches  [][]string
	releases [][]string
}

func (f *fakePipeliner) acquireAll(ctx context.Context, names []string, owner string, res []acquireResult, errs []error) {
	f.batches = append(f.batches, append([]string(nil), names...))
	for i, name := range names {
		if f.failOdd && i%2 == 1 {
			res[i], errs[i] = acquireResult{}, errors.New("TRYAGAIN odd")
			continue
		}
		res[i], errs[i] = f.acquire(ctx, name, owner)
	}
	if f.reverse { // same tokens, handed out in the opposite order
		var toks []int64
		for i := range res {
			if res[i].granted {
				toks = append(toks, res[i].token)
			}
		}
		for i := range res {
			if res[i].granted {
				res[i].token, toks = toks[len(toks)-1], toks[:len(toks)-1]
			}
		}
	}
}

func (f *fakePipeliner) releaseAll(ctx context.Context, names []string, owner string, released []bool, errs []error) {
	f.releases = append(f.releases, append([]string(nil), names...))
	for i, name := range names {
		released[i], _, errs[i] = f.release(ctx, name, owner)
	}
}

func TestWorkerRun(t *testing.T) {
	names := []string{"a", "b", "c"}
	newWorker := func(l locker) *worker {
		return &worker{
			l: l, owner: "me", names: names, rng: rand.New(rand.NewPCG(1, 2)),
			timeout: time.Second, hist: &histShard{acquire: newHist(), release: newHist()},
			uncertain: map[string]struct{}{},
		}
	}
	t.Run("all granted and released", func(t *testing.T) {
		f := &fakeLocker{held: map[string]string{}}
		w := newWorker(f)
		now := time.Now()
		w.run(context.Background(), now, now.Add(20*time.Millisecond))
		// A release that starts after stop is done but not recorded.
		if w.c.granted == 0 || w.c.released < w.c.granted-1 || w.c.released > w.c.granted || w.c.errors != 0 || w.c.tokenRegressions != 0 {
			t.Fatalf("counters %+v", w.c)
		}
		if len(f.held) != 0 {
			t.Fatalf("locks left held: %v", f.held)
		}
		if w.hist.acquire.TotalCount() != w.c.granted+w.c.busy {
			t.Fatalf("acquire histogram has %d values, counters %+v", w.hist.acquire.TotalCount(), w.c)
		}
	})
	t.Run("warm-up is not recorded", func(t *testing.T) {
		w := newWorker(&fakeLocker{held: map[string]string{}})
		now := time.Now()
		w.run(context.Background(), now.Add(time.Hour), now.Add(10*time.Millisecond))
		if w.c.granted+w.c.busy+w.c.released != 0 || w.hist.acquire.TotalCount() != 0 {
			t.Fatalf("recorded during warm-up: %+v", w.c)
		}
	})
	t.Run("token regression", func(t *testing.T) {
		w := newWorker(&fakeLocker{held: map[string]string{}, regret: true})
		now := time.Now()
		w.run(context.Background(), now, now.Add(10*time.Millisecond))
		if w.c.tokenRegressions != w.c.granted-1 {
			t.Fatalf("counters %+v", w.c)
		}
	})
	t.Run("errors counted and paused", func(t *testing.T) {
		w := newWorker(&fakeLocker{held: map[string]string{}, fail: errors.New("TRYAGAIN no leader")})
		now := time.Now()
		w.run(context.Background(), now, now.Add(30*time.Millisecond))
		if w.c.errors == 0 || w.c.errors > 7 || w.c.errTexts["acquire: TRYAGAIN no leader"] != w.c.errors {
			t.Fatalf("counters %+v", w.c)
		}
	})
	t.Run("cancelled context stops at once", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		w := newWorker(&fakeLocker{held: map[string]string{}})
		now := time.Now()
		w.run(ctx, now, now.Add(time.Hour))
		if w.c.granted != 0 {
			t.Fatalf("counters %+v", w.c)
		}
	})
}

func TestWorkerRunPipelined(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	newWorker := func(f *fakePipeliner, n int) *worker {
		return &worker{
			l: f, p: f, pipeline: n, owner: "me", names: names, rng: rand.New(rand.NewPCG(1, 2)),
			timeout: time.Second, hist: &histShard{acquire: newHist(), release: newHist()},
			uncertain: map[string]struct{}{},
		}
	}
	t.Run("granted ones released", func(t *testing.T) {
		f := &fakePipeliner{fakeLocker: fakeLocker{held: map[string]string{"c": "other", "f": "other"}}}
		w := newWorker(f, 4)
		now := time.Now()
		w.run(context.Background(), now, now.Add(20*time.Millisecond))
		if len(f.batches) == 0 || len(f.releases) > len(f.batches) {
			t.Fatalf("%d acquire and %d release pipelines", len(f.batches), len(f.releases))
		}
		var sent, released int64
		for i, b := range f.batches {
			if len(b) != 4 || len(map[string]bool{b[0]: true, b[1]: true, b[2]: true, b[3]: true}) != 4 {
				t.Fatalf("batch %v is not 4 distinct names", b)
			}
			sent += 4
			if i < len(f.releases) {
				released += int64(len(f.releases[i]))
			}
		}
		for _, r := range f.releases {
			for _, name := range r {
				if name == "c" || name == "f" {
					t.Fatalf("released %q, which another owner holds", name)
				}
			}
		}
		// The last pipeline may have started after stop: answered, not recorded.
		c := w.c
		if c.granted+c.busy != sent && c.granted+c.busy != sent-4 || c.busy == 0 || c.errors != 0 ||
			c.released > released || c.releaseNotHeld != 0 || c.tokenRegressions != 0 {
			t.Fatalf("counters %+v for %d acquires sent, %d releases sent", c, sent, released)
		}
		if w.hist.acquire.TotalCount() != c.granted+c.busy || w.hist.release.TotalCount() != c.released {
			t.Fatalf("histograms hold %d, %d values, counters %+v", w.hist.acquire.TotalCount(), w.hist.release.TotalCount(), c)
		}
		if len(f.held) != 2 {
			t.Fatalf("held after the run: %v", f.held)
		}
	})
	t.Run("tokens unordered inside a pipeline", func(t *testing.T) {
		f := &fakePipeliner{fakeLocker: fakeLocker{held: map[string]string{}}, reverse: true}
		w := newWorker(f, 8)
		now := time.Now()
		w.run(context.Background(), now, now.Add(10*time.Millisecond))
		if w.c.granted < 16 || w.c.tokenRegressions != 0 {
			t.Fatalf("counters %+v", w.c)
		}
	})
	t.Run("token regression across pipelines", func(t *testing.T) {
		f := &fakePipeliner{fakeLocker: fakeLocker{held: map[string]string{}, regret: true}}
		w := newWorker(f, 8)
		now := time.Now()
		w.run(context.Background(), now, now.Add(10*time.Millisecond))
		// Every grant gets token 1: all but the first pipeline's regress.
		if w.c.granted < 16 || w.c.tokenRegressions != w.c.granted-8 {
			t.Fatalf("counters %+v", w.c)
		}
	})
	t.Run("failed commands counted one by one", func(t *testing.T) {
		f := &fakePipeliner{fakeLocker: fakeLocker{held: map[string]string{}}, failOdd: true}
		w := newWorker(f, 4)
		now := time.Now()
		w.run(context.Background(), now, now.Add(30*time.Millisecond))
		// Two of four fail in each pipeline, then the worker pauses 5ms.
		if len(f.batches) == 0 || len(f.batches) > 7 || w.c.errors != 2*int64(len(f.batches)) ||
			w.c.granted != w.c.errors || w.c.released != w.c.granted {
			t.Fatalf("%d pipelines, counters %+v", len(f.batches), w.c)
		}
		if len(w.uncertain) == 0 {
			t.Fatal("failed names not marked uncertain")
		}
	})
	t.Run("all failing", func(t *testing.T) {
		f := &fakePipeliner{fakeLocker: fakeLocker{held: map[string]string{}, fail: errors.New("TRYAGAIN no leader")}}
		w := newWorker(f, 4)
		now := time.Now()
		w.run(context.Background(), now, now.Add(30*time.Millisecond))
		if w.c.errors == 0 || w.c.errors > 7*4 || w.c.errTexts["acquire: TRYAGAIN no leader"] != w.c.errors ||
			len(f.releases) != 0 || w.hist.acquire.TotalCount() != 0 {
			t.Fatalf("counters %+v, %d release pipelines", w.c, len(f.releases))
		}
	})
}

func TestPickDistinct(t *testing.T) {
	names := make([]string, 50)
	for i := range names {
		names[i] = fmt.Sprint(i)
	}
	w := &worker{names: names, rng: rand.New(rand.NewPCG(3, 4))}
	seen := map[string]int{}
	for _, k := range []int{1, 2, 7, 49, 50} {
		out := make([]string, k)
		for round := 0; round < 200; round++ {
			w.pickDistinct(out)
			set := map[string]bool{}
			for _, n := range out {
				set[n] = true
				seen[n]++
			}
			if len(set) != k {
				t.Fatalf("k=%d: %v has duplicates", k, out)
			}
		}
	}
	if len(seen) != len(names) {
		t.Fatalf("only %d of %d names ever picked", len(seen), len(names))
	}
	// The first element of a full draw is every name about equally often.
	first := map[string]int{}
	out := make([]string, 50)
	for round := 0; round < 5000; round++ {
		w.pickDistinct(out)
		first[out[0]]++
	}
	for _, n := range names {
		if first[n] < 50 || first[n] > 200 {
			t.Fatalf("name %s first %d times of 5000", n, first[n])
		}
	}
}

// recordUs adds d to h once, in microseconds, clamped to the histogram's
// range.
func recordUs(h *hdrhistogram.Histogram, d time.Duration) { recordUsN(h, d, 1) }
