package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// statLine is a /proc/<pid>/stat line with the given comm, state, utime,
// stime and starttime; the other fields are plausible values.
func statLine(comm string, state byte, utime, stime, start uint64) string {
	return fmt.Sprintf("4242 (%s) %c 1 4242 4242 0 -1 4194560 1200 0 3 0 %d %d 0 0 20 0 7 0 %d 1300000000 2500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
		comm, state, utime, stime, start)
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    procCPU
		wantErr string
	}{
		{name: "plain", in: statLine("lockd", 'S', 700, 300, 98765),
			want: procCPU{comm: "lockd", state: 'S', ticks: 1000, startTime: 98765}},
		{name: "comm with spaces and parentheses", in: statLine("a) (b c) ) x", 'R', 1, 2, 3),
			want: procCPU{comm: "a) (b c) ) x", state: 'R', ticks: 3, startTime: 3}},
		{name: "empty comm", in: statLine("", 'D', 0, 0, 1),
			want: procCPU{comm: "", state: 'D', ticks: 0, startTime: 1}},
		{name: "no comm", in: "4242 lockd S 1 2 3", wantErr: "no (comm)"},
		{name: "truncated", in: "4242 (lockd) S 1 4242 4242 0 -1 4194560 1200 0 3 0 700 300", wantErr: "fields after the comm"},
		{name: "bad utime", in: strings.Replace(statLine("lockd", 'S', 700, 300, 9), " 700 ", " x ", 1), wantErr: "field 14"},
		{name: "bad state", in: strings.Replace(statLine("lockd", 'S', 1, 1, 1), ") S ", ") SS ", 1), wantErr: "state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q (got %+v)", err, tt.wantErr, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseServerPids(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "", want: "[]"},
		{in: "1234", want: "[pid 1234]"},
		{in: " lockd1=11, lockd2 = 12 ,13,", want: "[lockd1 (pid 11) lockd2 (pid 12) pid 13]"},
		{in: "0", wantErr: "positive pid"},
		{in: "-5", wantErr: "positive pid"},
		{in: "a=b", wantErr: "positive pid"},
		{in: "=12", wantErr: "empty name"},
		{in: "12,a=12", wantErr: "pid 12 given twice"},
		{in: "a=1,a=2", wantErr: `name "a" given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseServerPids(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := fmt.Sprint(got); s != tt.want {
				t.Fatalf("got %s, want %s", s, tt.want)
			}
		})
	}
}

// startSleep starts a child `sleep` process; the test's cleanup kills and
// reaps it if the test has not.
func startSleep(t testing.TB) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// killAndReap ends a child started by startSleep and waits for it.
func killAndReap(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed"
}

func TestReadProcCPULive(t *testing.T) {
	t.Run("own process", func(t *testing.T) {
		first, err := readProcCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Base(os.Args[0]); !strings.HasPrefix(want, first.comm) || first.comm == "" || first.startTime == 0 {
			t.Fatalf("read %+v for %s", first, want)
		}
		// Spin until the kernel has charged at least one more tick.
		deadline := time.Now().Add(20 * time.Second)
		x := 1.0
		for {
			for i := 0; i < 1_000_000; i++ {
				x = x*1.0000001 + 1e-9
			}
			last, err := readProcCPU(os.Getpid())
			if err != nil {
				t.Fatal(err)
			}
			if last.startTime != first.startTime || last.ticks < first.ticks {
				t.Fatalf("first %+v, then %+v", first, last)
			}
			if last.ticks > first.ticks {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no CPU tick charged in 20s of spinning (%v)", x)
			}
		}
		used, err := cpuUsed([]serverProc{{Name: "self", Pid: os.Getpid()}}, []procCPU{first}, []procCPU{{ticks: first.ticks + 7, startTime: first.startTime}}, 100)
		if err != nil || used[0] != 70*time.Millisecond {
			t.Fatalf("7 ticks at 100 Hz = %v, %v", used, err)
		}
	})
	t.Run("child sleep", func(t *testing.T) {
		cmd := startSleep(t)
		got, err := readProcCPU(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		self, err := readProcCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		// Start returns once the child has exec'd sleep.
		if got.comm != "sleep" || got.state == 'Z' || got.startTime < self.startTime {
			t.Fatalf("child: %+v, self: %+v", got, self)
		}
	})
}

func TestReadProcCPUGone(t *testing.T) {
	t.Run("exited and reaped", func(t *testing.T) {
		cmd := startSleep(t)
		procs := []serverProc{{Name: "srv", Pid: cmd.Process.Pid}}
		if _, err := sampleCPU(procs); err != nil {
			t.Fatal(err)
		}
		killAndReap(t, cmd)
		_, err := sampleCPU(procs)
		if !errors.Is(err, errProcessGone) || !strings.Contains(err.Error(), fmt.Sprintf("server srv (pid %d): process is gone", cmd.Process.Pid)) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("exited, not yet reaped", func(t *testing.T) {
		cmd := startSleep(t)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := readProcCPU(cmd.Process.Pid)
			if errors.Is(err, errProcessGone) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatal("a killed child still reads as running after 10s")
			}
			time.Sleep(time.Millisecond) // polling for the kill to land
		}
		_ = cmd.Wait()
	})
	t.Run("pid reused", func(t *testing.T) {
		procs := []serverProc{{Name: "lockd1", Pid: 77}}
		_, err := cpuUsed(procs, []procCPU{{comm: "lockd", ticks: 50, startTime: 100}}, []procCPU{{comm: "bash", ticks: 2, startTime: 900}}, 100)
		if err == nil || !strings.Contains(err.Error(), "lockd1 (pid 77): the process exited during the run") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestClockTicks(t *testing.T) {
	if _, err := exec.LookPath("getconf"); err != nil {
		t.Skip("no getconf")
	}
	hz, ok := clockTicks(context.Background(), 5*time.Second)
	if !ok || hz <= 0 {
		t.Fatalf("clockTicks = %d, %v", hz, ok)
	}
}
