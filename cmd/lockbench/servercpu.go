package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file measures, for -server-pids, the servers' CPU time in the
// measured window and, in lockd mode, the raft entries committed in it.

// windowMeter samples the servers' CPU time (and in lockd mode the first
// endpoint's commit index) at the start and at the end of the measured
// window.
//
// Concurrency: run's goroutine calls newWindowMeter, start, result and close,
// in that order; start launches one goroutine that takes the two samples and
// exits, at the window's end or as soon as ctx ends, whichever comes first.
// result waits for it.
type windowMeter struct {
	procs     []serverProc
	hz        int64
	hzAssumed bool // getconf failed: hz is defaultClockTicks
	// lockd mode: the first endpoint and a client of it for INFO
	// replication; otherwise "" and nil.
	infoAddr string
	info     *redis.Client
	timeout  time.Duration
	done     chan windowMeasure // receives the goroutine's one result
}

// windowSample is one instant's reading.
type windowSample struct {
	at     time.Time
	cpu    []procCPU
	commit uint64 // lockd mode: commit_index of the first endpoint
}

// windowMeasure is the outcome of the sampling goroutine.
type windowMeasure struct {
	first, last windowSample
	err         error
}

// newWindowMeter checks that every server process is running and, in lockd
// mode, that the first endpoint reports a commit index; each call is bounded
// by the call timeout.
func newWindowMeter(ctx context.Context, cfg config) (*windowMeter, error) {
	m := &windowMeter{procs: cfg.serverPids, timeout: cfg.timeout, done: make(chan windowMeasure, 1)}
	var ok bool
	m.hz, ok = clockTicks(ctx, cfg.timeout)
	m.hzAssumed = !ok
	if cfg.mode == modeLockd {
		m.infoAddr = cfg.endpoints[0]
		m.info = newClient(cfg, m.infoAddr, 1)
	}
	if _, err := m.sample(ctx); err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

// close releases the INFO connection.
func (m *windowMeter) close() {
	if m.info != nil {
		_ = m.info.Close()
	}
}

// sample reads every process's CPU time and then, in lockd mode, the commit
// index (bounded by the call timeout, even if ctx has ended: the window's
// last sample is taken when the run is cut short too).
func (m *windowMeter) sample(ctx context.Context) (windowSample, error) {
	s := windowSample{at: time.Now()}
	var err error
	if s.cpu, err = sampleCPU(m.procs); err != nil {
		return s, err
	}
	if m.info != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.timeout)
		defer cancel()
		if s.commit, err = commitIndex(cctx, m.info); err != nil {
			return s, fmt.Errorf("INFO replication of %s: %w", m.infoAddr, err)
		}
	}
	return s, nil
}

// start samples at from and at stop in a goroutine of its own; if ctx ends
// first, the last sample is taken then (and none if the window had not
// begun).
func (m *windowMeter) start(ctx context.Context, from, stop time.Time) {
	go func() {
		var r windowMeasure
		if !sleepUntil(ctx, from) {
			r.err = errors.New("the run ended before the measured window began")
		} else if r.first, r.err = m.sample(ctx); r.err == nil {
			sleepUntil(ctx, stop)
			r.last, r.err = m.sample(ctx)
		}
		m.done <- r
	}()
}

// result waits for the goroutine of start.
func (m *windowMeter) result() windowMeasure { return <-m.done }

// sleepUntil waits until t or until ctx ends; it reports whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// commitIndex reads commit_index from INFO replication.
func commitIndex(ctx context.Context, rdb *redis.Client) (uint64, error) {
	text, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "commit_index:"); ok {
			return strconv.ParseUint(v, 10, 64)
		}
	}
	return 0, errors.New("no commit_index field (is it lockd?)")
}

// serverCPUReport is the servers' CPU time in the measured window; it is
// the "server_cpu" object of lockbench -json with -server-pids. Per acquire
// is per granted acquire, which is also per LOCK+UNLOCK cycle (each grant
// is released once); the CPU the servers spent on busy answers and failed
// calls is in it too. Per command divides by every answered command
// (acquires, busy, releases). Undefined ratios (nothing to divide by) are 0.
type serverCPUReport struct {
	ClkTck          int64       `json:"clk_tck"`
	ClkTckAssumed   bool        `json:"clk_tck_assumed,omitempty"` // getconf CLK_TCK failed
	WindowS         float64     `json:"window_s"`                  // between the first and last sample
	CPUS            float64     `json:"cpu_s"`                     // summed over the servers
	Cores           float64     `json:"cores"`                     // CPUS / WindowS
	CPUUsPerAcquire float64     `json:"cpu_us_per_acquire"`
	CPUUsPerCommand float64     `json:"cpu_us_per_command"`
	Servers         []serverCPU `json:"servers"`
	Raft            *raftCPU    `json:"raft,omitempty"` // lockd mode
}

// serverCPU is one server process's part.
type serverCPU struct {
	Name            string  `json:"name"`
	Pid             int     `json:"pid"`
	Comm            string  `json:"comm"` // the process's name in /proc, to check the pid was the server
	CPUS            float64 `json:"cpu_s"`
	Share           float64 `json:"share"` // of the servers' total
	CPUUsPerAcquire float64 `json:"cpu_us_per_acquire"`
	CPUUsPerEntry   float64 `json:"cpu_us_per_entry,omitempty"` // lockd mode
}

// raftCPU relates the CPU time to the raft entries committed in the window
// (the first endpoint's commit_index at the two samples).
type raftCPU struct {
	Endpoint         string  `json:"endpoint"`
	Entries          uint64  `json:"entries"`
	EntriesPerSec    float64 `json:"entries_per_sec"`
	CommandsPerEntry float64 `json:"commands_per_entry"` // answered commands counted in the window
	CPUUsPerEntry    float64 `json:"cpu_us_per_entry"`   // summed over the servers
}

// buildServerCPU turns the window's two samples and the window's counts
// into the report; the error says why there is none.
func (m *windowMeter) buildServerCPU(r windowMeasure, total *counters) (*serverCPUReport, error) {
	if r.err != nil {
		return nil, r.err
	}
	used, err := cpuUsed(m.procs, r.first.cpu, r.last.cpu, m.hz)
	if err != nil {
		return nil, err
	}
	window := r.last.at.Sub(r.first.at)
	var sum time.Duration
	for _, d := range used {
		sum += d
	}
	commands := total.granted + total.busy + total.released + total.releaseNotHeld
	rep := &serverCPUReport{
		ClkTck:          m.hz,
		ClkTckAssumed:   m.hzAssumed,
		WindowS:         round(window.Seconds(), 3),
		CPUS:            round(sum.Seconds(), 3),
		Cores:           round(ratio(sum.Seconds(), window.Seconds()), 3),
		CPUUsPerAcquire: round(ratio(us(sum), float64(total.granted)), 1),
		CPUUsPerCommand: round(ratio(us(sum), float64(commands)), 1),
	}
	var entries uint64
	if m.infoAddr != "" {
		if r.last.commit < r.first.commit {
			return nil, fmt.Errorf("commit_index of %s went back from %d to %d", m.infoAddr, r.first.commit, r.last.commit)
		}
		entries = r.last.commit - r.first.commit
		rep.Raft = &raftCPU{
			Endpoint:         m.infoAddr,
			Entries:          entries,
			EntriesPerSec:    round(ratio(float64(entries), window.Seconds()), 1),
			CommandsPerEntry: round(ratio(float64(commands), float64(entries)), 2),
			CPUUsPerEntry:    round(ratio(us(sum), float64(entries)), 1),
		}
	}
	for i, p := range m.procs {
		s := serverCPU{
			Name:            p.Name,
			Pid:             p.Pid,
			Comm:            r.last.cpu[i].comm,
			CPUS:            round(used[i].Seconds(), 3),
			Share:           round(ratio(float64(used[i]), float64(sum)), 3),
			CPUUsPerAcquire: round(ratio(us(used[i]), float64(total.granted)), 1),
		}
		if m.infoAddr != "" {
			s.CPUUsPerEntry = round(ratio(us(used[i]), float64(entries)), 1)
		}
		rep.Servers = append(rep.Servers, s)
	}
	return rep, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// round rounds x to the given number of decimals.
func round(x float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(x*p) / p
}

// writeHuman adds the servers' CPU to lockbench's text output.
func (r *serverCPUReport) writeHuman(b *strings.Builder) {
	hz := strconv.FormatInt(r.ClkTck, 10)
	if r.ClkTckAssumed {
		hz += ", assumed"
	}
	fmt.Fprintf(b, "\n  server CPU over %.2fs (/proc/<pid>/stat, %s ticks/s): %.3fs, %.2f cores\n", r.WindowS, hz, r.CPUS, r.Cores)
	fmt.Fprintf(b, "  per acquire (= per LOCK+UNLOCK cycle) %.1f µs, per command %.1f µs\n", r.CPUUsPerAcquire, r.CPUUsPerCommand)
	if r.Raft != nil {
		fmt.Fprintf(b, "  raft (commit_index of %s): %d entries, %.1f/s, %.2f commands per entry, %.1f µs CPU per entry\n",
			r.Raft.Endpoint, r.Raft.Entries, r.Raft.EntriesPerSec, r.Raft.CommandsPerEntry, r.Raft.CPUUsPerEntry)
	}
	fmt.Fprintf(b, "  %-18s %8s %-15s %10s %7s %12s", "server", "pid", "comm", "cpu s", "share", "µs/acquire")
	if r.Raft != nil {
		fmt.Fprintf(b, " %10s", "µs/entry")
	}
	b.WriteString("\n")
	for _, s := range r.Servers {
		fmt.Fprintf(b, "  %-18s %8d %-15s %10.3f %6.1f%% %12.1f", s.Name, s.Pid, s.Comm, s.CPUS, 100*s.Share, s.CPUUsPerAcquire)
		if r.Raft != nil {
			fmt.Fprintf(b, " %10.1f", s.CPUUsPerEntry)
		}
		b.WriteString("\n")
	}
}
