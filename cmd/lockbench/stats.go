package main

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range: 1 µs to 1 h, 3 significant digits. Larger values are clamped.
const (
	histLowUs  = 1
	histHighUs = int64(time.Hour / time.Microsecond)
	histDigits = 3
)

// Bounds on how much error text is kept.
const (
	maxErrorTexts   = 32  // distinct texts per worker; the rest count as errOther
	maxErrorSamples = 5   // distinct texts in the report
	maxErrorLen     = 200 // characters per text
	errOther        = "(other errors)"
)

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowUs, histHighUs, histDigits)
}

// recordUsN adds d to h n times (n >= 1).
func recordUsN(h *hdrhistogram.Histogram, d time.Duration, n int64) {
	us := d.Microseconds()
	if us < histLowUs {
		us = histLowUs
	}
	if us > histHighUs {
		us = histHighUs
	}
	_ = h.RecordValues(us, n) // cannot fail: us is in range
}

// histShard is one of a few histograms shared by workers (memory stays bounded
// however many clients run). Workers w and w+len(shards) share a shard.
type histShard struct {
	mu      sync.Mutex
	acquire *hdrhistogram.Histogram
	release *hdrhistogram.Histogram
}

func (s *histShard) record(acquire bool, d time.Duration) {
	s.recordN(acquire, d, 1)
}

// recordN records d n times (n commands answered by one pipeline).
func (s *histShard) recordN(acquire bool, d time.Duration, n int64) {
	s.mu.Lock()
	if acquire {
		recordUsN(s.acquire, d, n)
	} else {
		recordUsN(s.release, d, n)
	}
	s.mu.Unlock()
}

// counters are one worker's tallies; only that worker touches them until it has
// returned. Only operations started inside the measured window are counted,
// except tokenRegressions, which covers the whole run.
type counters struct {
	granted          int64 // acquires answered with a grant
	busy             int64 // acquires answered "held by someone else"
	released         int64 // releases that removed the lock
	releaseNotHeld   int64 // releases answered 0: the lock was no longer ours
	waitShort        int64 // WAIT answered fewer replicas than asked for
	tokenRegressions int64 // lockd, etcd: a fencing token not larger than this worker's previous one
	errors           int64 // failed calls of any kind
	errTexts         map[string]int64
	acquireMax       time.Duration
	releaseMax       time.Duration
}

func (c *counters) addError(op string, err error) {
	c.errors++
	text := op + ": " + normalizeError(err.Error())
	if len(text) > maxErrorLen {
		text = text[:maxErrorLen]
	}
	if c.errTexts == nil {
		c.errTexts = make(map[string]int64)
	}
	if _, ok := c.errTexts[text]; !ok && len(c.errTexts) >= maxErrorTexts {
		text = errOther
	}
	c.errTexts[text]++
}

// localAddr matches the local end of a net error ("read tcp 127.0.0.1:5123->"),
// which differs per connection.
var localAddr = regexp.MustCompile(`\S+:\d+->`)

// normalizeError removes the parts of an error text that differ per call, so
// that equal failures are counted together.
func normalizeError(s string) string {
	if i := strings.Index(s, ", with args beginning with:"); i >= 0 {
		s = s[:i]
	}
	return localAddr.ReplaceAllString(s, "")
}

func (c *counters) merge(o *counters) {
	c.granted += o.granted
	c.busy += o.busy
	c.released += o.released
	c.releaseNotHeld += o.releaseNotHeld
	c.waitShort += o.waitShort
	c.tokenRegressions += o.tokenRegressions
	c.errors += o.errors
	for text, n := range o.errTexts {
		if c.errTexts == nil {
			c.errTexts = make(map[string]int64)
		}
		c.errTexts[text] += n
	}
	c.acquireMax = max(c.acquireMax, o.acquireMax)
	c.releaseMax = max(c.releaseMax, o.releaseMax)
}

// errorSample is one distinct error text and how often it was seen.
type errorSample struct {
	Text  string `json:"text"`
	Count int64  `json:"count"`
}

// topErrors returns at most n texts, most frequent first, ties by text.
func topErrors(texts map[string]int64, n int) []errorSample {
	out := make([]errorSample, 0, len(texts))
	for t, c := range texts {
		out = append(out, errorSample{Text: t, Count: c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Text < out[j].Text
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// latencySummary is in microseconds.
type latencySummary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p999"`
	Max   int64   `json:"max"`
}

func summarize(h *hdrhistogram.Histogram, exactMax time.Duration) latencySummary {
	if h.TotalCount() == 0 {
		return latencySummary{}
	}
	return latencySummary{
		Count: h.TotalCount(),
		Mean:  float64(int64(h.Mean()*10)) / 10,
		P50:   h.ValueAtQuantile(50),
		P90:   h.ValueAtQuantile(90),
		P99:   h.ValueAtQuantile(99),
		P999:  h.ValueAtQuantile(99.9),
		Max:   exactMax.Microseconds(),
	}
}

// report is the result of a run; its JSON form is lockbench -json's output.
type report struct {
	Mode             string         `json:"mode"`
	Endpoints        []string       `json:"endpoints"`
	Clients          int            `json:"clients"`
	Names            int            `json:"names"`
	DurationS        float64        `json:"duration_s"` // measured window actually used
	WarmupS          float64        `json:"warmup_s"`
	TTLMs            int64          `json:"ttl_ms"`
	WaitReplicas     int            `json:"wait_replicas"`
	Pipeline         int            `json:"pipeline"` // commands per round trip; latencies are per pipeline
	Acquires         int64          `json:"acquires"` // granted acquires
	Busy             int64          `json:"busy"`
	Releases         int64          `json:"releases"`
	ReleaseNotHeld   int64          `json:"release_not_held"`
	WaitShort        int64          `json:"wait_short"`
	TokenRegressions int64          `json:"token_regressions"`
	Errors           int64          `json:"errors"`
	ErrorSamples     []errorSample  `json:"error_samples"`
	AcquiresPerSec   float64        `json:"acquires_per_sec"`
	BusyPerSec       float64        `json:"busy_per_sec"`
	ReleasesPerSec   float64        `json:"releases_per_sec"`
	AcquireUs        latencySummary `json:"acquire_us"` // granted and busy acquires
	ReleaseUs        latencySummary `json:"release_us"`
	Interrupted      bool           `json:"interrupted"`
	// -server-pids: the servers' CPU in the window, or why it was not measured.
	ServerCPU      *serverCPUReport `json:"server_cpu,omitempty"`
	ServerCPUError string           `json:"server_cpu_error,omitempty"`
}

func buildReport(c config, total *counters, acquire, release *hdrhistogram.Histogram, window time.Duration, interrupted bool) report {
	secs := window.Seconds()
	rate := func(n int64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(int64(float64(n)/secs*10)) / 10
	}
	samples := topErrors(total.errTexts, maxErrorSamples)
	return report{
		Mode:             c.mode,
		Endpoints:        c.endpoints,
		Clients:          c.clients,
		Names:            c.names,
		DurationS:        secs,
		WarmupS:          c.warmup.Seconds(),
		TTLMs:            c.ttl.Milliseconds(),
		WaitReplicas:     c.waitReplicas,
		Pipeline:         c.pipeline,
		Acquires:         total.granted,
		Busy:             total.busy,
		Releases:         total.released,
		ReleaseNotHeld:   total.releaseNotHeld,
		WaitShort:        total.waitShort,
		TokenRegressions: total.tokenRegressions,
		Errors:           total.errors,
		ErrorSamples:     samples,
		AcquiresPerSec:   rate(total.granted),
		BusyPerSec:       rate(total.busy),
		ReleasesPerSec:   rate(total.released),
		AcquireUs:        summarize(acquire, total.acquireMax),
		ReleaseUs:        summarize(release, total.releaseMax),
		Interrupted:      interrupted,
	}
}

// allFailed is true when no operation succeeded: nothing was measured, or
// every call errored.
func (r report) allFailed() bool {
	return r.Acquires+r.Busy+r.Releases+r.ReleaseNotHeld == 0
}

func (r report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	return enc.Encode(r)
}

// ms formats microseconds as milliseconds.
func ms(us int64) string { return fmt.Sprintf("%.3f", float64(us)/1000) }

func (r report) writeHuman(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "lockbench mode=%s endpoints=%s clients=%d names=%d ttl=%dms wait-replicas=%d\n",
		r.Mode, strings.Join(r.Endpoints, ","), r.Clients, r.Names, r.TTLMs, r.WaitReplicas)
	if r.Pipeline > 1 {
		fmt.Fprintf(&b, "pipeline=%d: latency per pipeline of %d (each command is recorded with its pipeline's round trip)\n", r.Pipeline, r.Pipeline)
	}
	fmt.Fprintf(&b, "measured %.2fs after %.2fs warm-up", r.DurationS, r.WarmupS)
	if r.Interrupted {
		b.WriteString(" (interrupted)")
	}
	b.WriteString("\n\n")
	fmt.Fprintf(&b, "  %-18s %12s %12s\n", "", "count", "per second")
	fmt.Fprintf(&b, "  %-18s %12d %12.1f\n", "acquires (granted)", r.Acquires, r.AcquiresPerSec)
	fmt.Fprintf(&b, "  %-18s %12d %12.1f\n", "busy", r.Busy, r.BusyPerSec)
	fmt.Fprintf(&b, "  %-18s %12d %12.1f\n", "releases", r.Releases, r.ReleasesPerSec)
	fmt.Fprintf(&b, "  %-18s %12d\n", "errors", r.Errors)
	if r.ReleaseNotHeld > 0 {
		fmt.Fprintf(&b, "  %-18s %12d\n", "release not held", r.ReleaseNotHeld)
	}
	if r.WaitReplicas > 0 || r.WaitShort > 0 {
		fmt.Fprintf(&b, "  %-18s %12d\n", "WAIT short", r.WaitShort)
	}
	if r.TokenRegressions > 0 {
		fmt.Fprintf(&b, "  %-18s %12d\n", "token regressions", r.TokenRegressions)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  %-18s %10s %10s %10s %10s %10s %10s\n", "latency (ms)", "p50", "p90", "p99", "p99.9", "max", "mean")
	for _, row := range []struct {
		name string
		s    latencySummary
	}{{"acquire", r.AcquireUs}, {"release", r.ReleaseUs}} {
		fmt.Fprintf(&b, "  %-18s %10s %10s %10s %10s %10s %10.3f\n", row.name,
			ms(row.s.P50), ms(row.s.P90), ms(row.s.P99), ms(row.s.P999), ms(row.s.Max), row.s.Mean/1000)
	}
	if r.ServerCPU != nil {
		r.ServerCPU.writeHuman(&b)
	}
	if r.ServerCPUError != "" {
		fmt.Fprintf(&b, "\n  server CPU not measured: %s\n", r.ServerCPUError)
	}
	if len(r.ErrorSamples) > 0 {
		b.WriteString("\n  errors seen (most frequent first):\n")
		for _, e := range r.ErrorSamples {
			fmt.Fprintf(&b, "  %8d  %s\n", e.Count, e.Text)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
