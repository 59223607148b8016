package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestBuildServerCPU(t *testing.T) {
	procs := []serverProc{{Name: "lockd1", Pid: 11}, {Name: "12", Pid: 12}}
	t0 := time.Unix(1000, 0)
	first := windowSample{at: t0, commit: 500, cpu: []procCPU{{comm: "lockd", ticks: 100, startTime: 7}, {comm: "lockd", ticks: 40, startTime: 8}}}
	// 2 s later: 150 and 50 ticks more at 100 Hz, 1.5 s and 0.5 s; 400 entries.
	last := windowSample{at: t0.Add(2 * time.Second), commit: 900, cpu: []procCPU{{comm: "lockd", ticks: 250, startTime: 7}, {comm: "lockd", ticks: 90, startTime: 8}}}
	total := &counters{granted: 4000, busy: 1000, released: 4000, releaseNotHeld: 0}

	t.Run("lockd", func(t *testing.T) {
		m := &windowMeter{procs: procs, hz: 100, infoAddr: "127.0.0.1:1"}
		got, err := m.buildServerCPU(windowMeasure{first: first, last: last}, total)
		if err != nil {
			t.Fatal(err)
		}
		want := &serverCPUReport{
			ClkTck: 100, WindowS: 2, CPUS: 2, Cores: 1,
			CPUUsPerAcquire: 500, // 2 s / 4000 grants
			CPUUsPerCommand: 222.2,
			Servers: []serverCPU{
				{Name: "lockd1", Pid: 11, Comm: "lockd", CPUS: 1.5, Share: 0.75, CPUUsPerAcquire: 375, CPUUsPerEntry: 3750},
				{Name: "12", Pid: 12, Comm: "lockd", CPUS: 0.5, Share: 0.25, CPUUsPerAcquire: 125, CPUUsPerEntry: 1250},
			},
			Raft: &raftCPU{Endpoint: "127.0.0.1:1", Entries: 400, EntriesPerSec: 200, CommandsPerEntry: 22.5, CPUUsPerEntry: 5000},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got  %+v %+v\nwant %+v %+v", *got, got.Raft, *want, want.Raft)
		}
		var b strings.Builder
		got.writeHuman(&b)
		for _, s := range []string{"2.000s, 1.00 cores", "per acquire (= per LOCK+UNLOCK cycle) 500.0 µs", "400 entries, 200.0/s, 22.50 commands per entry, 5000.0 µs CPU per entry",
			"lockd1", "75.0%", "3750.0"} {
			if !strings.Contains(b.String(), s) {
				t.Errorf("text lacks %q:\n%s", s, b.String())
			}
		}
	})
	t.Run("redis", func(t *testing.T) {
		m := &windowMeter{procs: procs, hz: 100}
		got, err := m.buildServerCPU(windowMeasure{first: first, last: last}, &counters{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Raft != nil || got.CPUUsPerAcquire != 0 || got.Servers[0].CPUUsPerEntry != 0 || got.CPUS != 2 {
			t.Fatalf("no acquires, no raft: %+v", got)
		}
	})
	t.Run("errors", func(t *testing.T) {
		m := &windowMeter{procs: procs, hz: 100}
		if _, err := m.buildServerCPU(windowMeasure{err: errors.New("boom")}, total); err == nil || err.Error() != "boom" {
			t.Fatalf("err = %v", err)
		}
		replaced := windowSample{at: last.at, cpu: []procCPU{last.cpu[0], {comm: "bash", startTime: 9}}}
		if _, err := m.buildServerCPU(windowMeasure{first: first, last: replaced}, total); err == nil || !strings.Contains(err.Error(), "pid 12") {
			t.Fatalf("err = %v", err)
		}
	})
}

// The end-to-end runs measure this test process as the server: the fake
// server's goroutines and lockbench's workers all run in it.
func TestRunServerPids(t *testing.T) {
	self := fmt.Sprintf("me=%d", os.Getpid())
	for _, mode := range []string{"lockd", "redis"} {
		t.Run(mode, func(t *testing.T) {
			f := &fakeServer{}
			addrs := startFake(t, f, 2)
			r, code, stderr := runJSON(t, "-mode", mode, "-endpoints", strings.Join(addrs, ","), "-server-pids", self)
			c := r.ServerCPU
			if code != 0 || r.Acquires == 0 || r.ServerCPUError != "" || c == nil {
				t.Fatalf("exit %d, report %+v, stderr %q", code, r, stderr)
			}
			if c.ClkTck <= 0 || c.WindowS < 0.2 || c.CPUS <= 0 || c.Cores <= 0 || c.CPUUsPerAcquire <= 0 || c.CPUUsPerCommand <= 0 || c.CPUUsPerCommand >= c.CPUUsPerAcquire ||
				len(c.Servers) != 1 || c.Servers[0].Name != "me" || c.Servers[0].Pid != os.Getpid() || c.Servers[0].Share != 1 || c.Servers[0].CPUUsPerAcquire != c.CPUUsPerAcquire {
				t.Fatalf("server CPU %+v", c)
			}
			if mode == "redis" {
				if c.Raft != nil {
					t.Fatalf("raft figures in redis mode: %+v", c.Raft)
				}
				return
			}
			if c.Raft == nil || c.Raft.Endpoint != addrs[0] || c.Raft.Entries == 0 || c.Raft.CommandsPerEntry <= 0 || c.Raft.CPUUsPerEntry <= 0 ||
				c.Servers[0].CPUUsPerEntry != c.Raft.CPUUsPerEntry {
				t.Fatalf("raft %+v, servers %+v", c.Raft, c.Servers)
			}
			// The fake commits an entry per LOCK and UNLOCK, on both endpoints
			// together: about one command per entry.
			if c.Raft.CommandsPerEntry < 0.5 || c.Raft.CommandsPerEntry > 1.5 {
				t.Fatalf("%v commands per entry, want about 1", c.Raft.CommandsPerEntry)
			}
		})
	}
	t.Run("text", func(t *testing.T) {
		addrs := startFake(t, &fakeServer{}, 1)
		var out, errb bytes.Buffer
		code := run([]string{"-endpoints", addrs[0], "-duration", "200ms", "-warmup", "0s", "-clients", "2", "-names", "20", "-server-pids", self}, &out, &errb)
		if code != 0 {
			t.Fatalf("exit %d, stderr %q", code, errb.String())
		}
		for _, s := range []string{"server CPU over", "per acquire (= per LOCK+UNLOCK cycle)", "commands per entry", "µs/entry", "me ", "100.0%"} {
			if !strings.Contains(out.String(), s) {
				t.Errorf("output lacks %q:\n%s", s, out.String())
			}
		}
	})
}

// A server process that exits before the run is a setup failure; one that
// exits during the window leaves the CPU unmeasured and fails the run, and
// the rest of the report is still printed.
func TestRunServerPidGone(t *testing.T) {
	t.Run("before the run", func(t *testing.T) {
		addrs := startFake(t, &fakeServer{}, 1)
		child := startSleep(t)
		killAndReap(t, child)
		var out, errb bytes.Buffer
		code := run([]string{"-endpoints", addrs[0], "-server-pids", fmt.Sprintf("srv=%d", child.Process.Pid)}, &out, &errb)
		want := fmt.Sprintf("srv (pid %d): process is gone", child.Process.Pid)
		if code != 1 || out.Len() != 0 || !strings.Contains(errb.String(), want) {
			t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, out.String(), errb.String(), want)
		}
	})
	t.Run("during the window", func(t *testing.T) {
		child := startSleep(t)
		// INFO 1 is newWindowMeter's check, INFO 2 follows the CPU sample at
		// the window's start: the child is alive for that sample and gone
		// (reaped) for the one at the end.
		f := &fakeServer{onInfo: func(n int) {
			if n == 2 { // on the fake's goroutine: no t.Fatal
				_ = child.Process.Kill()
				_ = child.Wait()
			}
		}}
		addrs := startFake(t, f, 1)
		r, code, stderr := runJSON(t, "-endpoints", addrs[0], "-server-pids", fmt.Sprintf("me=%d,srv=%d", os.Getpid(), child.Process.Pid))
		want := fmt.Sprintf("server srv (pid %d): process is gone", child.Process.Pid)
		if code != 1 || r.ServerCPU != nil || !strings.HasPrefix(r.ServerCPUError, want) || r.Acquires == 0 || !strings.Contains(stderr, want) {
			t.Fatalf("exit %d, report %+v, stderr %q", code, r, stderr)
		}
	})
}
