package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file reads the CPU time of server processes from /proc/<pid>/stat
// (Linux) for -server-pids.

// serverProc is one server process named by -server-pids.
type serverProc struct {
	Name string // label in the report; the pid's decimal form when none was given
	Pid  int
}

func (p serverProc) String() string {
	if p.Name == strconv.Itoa(p.Pid) {
		return "pid " + p.Name
	}
	return fmt.Sprintf("%s (pid %d)", p.Name, p.Pid)
}

// parseServerPids parses -server-pids: a comma-separated list of "pid" or
// "name=pid" items (blanks around items are ignored). An empty string is no
// process. Pids must be positive; pids and names must not repeat.
func parseServerPids(s string) ([]serverProc, error) {
	var out []serverProc
	pids := map[int]bool{}
	names := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, num, named := strings.Cut(item, "=")
		if !named {
			num = item
		}
		name, num = strings.TrimSpace(name), strings.TrimSpace(num)
		pid, err := strconv.Atoi(num)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("-server-pids: %q: want pid or name=pid with a positive pid", item)
		}
		if !named {
			name = num
		}
		if name == "" {
			return nil, fmt.Errorf("-server-pids: %q: empty name", item)
		}
		if pids[pid] {
			return nil, fmt.Errorf("-server-pids: pid %d given twice", pid)
		}
		if names[name] {
			return nil, fmt.Errorf("-server-pids: name %q given twice", name)
		}
		pids[pid], names[name] = true, true
		out = append(out, serverProc{Name: name, Pid: pid})
	}
	return out, nil
}

// procCPU is one reading of /proc/<pid>/stat.
type procCPU struct {
	comm      string // the executable's name as the kernel keeps it (at most 15 bytes)
	state     byte   // R, S, D, Z, ...
	ticks     uint64 // utime + stime of all the process's threads, in clock ticks
	startTime uint64 // clock ticks after boot when the process started: tells a reused pid apart
}

// parseProcStat parses the contents of /proc/<pid>/stat. The second field,
// the command name in parentheses, may itself contain spaces and
// parentheses, so the fields after it are found after the last ')'.
func parseProcStat(data []byte) (procCPU, error) {
	open := bytes.IndexByte(data, '(')
	closing := bytes.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return procCPU{}, errors.New("no (comm) field")
	}
	// After the comm: field 3 (state) is rest[0], 14 (utime) rest[11],
	// 15 (stime) rest[12], 22 (starttime) rest[19].
	rest := strings.Fields(string(data[closing+1:]))
	if len(rest) < 20 {
		return procCPU{}, fmt.Errorf("%d fields after the comm, want at least 20", len(rest))
	}
	if len(rest[0]) != 1 {
		return procCPU{}, fmt.Errorf("state %q is not one letter", rest[0])
	}
	var nums [3]uint64
	for i, f := range []int{11, 12, 19} {
		n, err := strconv.ParseUint(rest[f], 10, 64)
		if err != nil {
			return procCPU{}, fmt.Errorf("field %d: %v", f+3, err)
		}
		nums[i] = n
	}
	return procCPU{
		comm:      string(data[open+1 : closing]),
		state:     rest[0][0],
		ticks:     nums[0] + nums[1],
		startTime: nums[2],
	}, nil
}

// errProcessGone is readProcCPU's error for a pid that has no running
// process: none at all, or one that has exited and not yet been reaped.
var errProcessGone = errors.New("process is gone (exited, or no such pid)")

// readProcCPU reads the CPU time of process pid.
func readProcCPU(pid int) (procCPU, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return procCPU{}, errProcessGone
	}
	if err != nil {
		return procCPU{}, err
	}
	p, err := parseProcStat(data)
	if err != nil {
		return procCPU{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	if p.state == 'Z' || p.state == 'X' { // zombie or dead: it has exited
		return procCPU{}, errProcessGone
	}
	return p, nil
}

// sampleCPU reads every process's CPU time, in order; the error names the
// process that could not be read.
func sampleCPU(procs []serverProc) ([]procCPU, error) {
	out := make([]procCPU, len(procs))
	for i, p := range procs {
		c, err := readProcCPU(p.Pid)
		if err != nil {
			return nil, fmt.Errorf("server %s: %w", p, err)
		}
		out[i] = c
	}
	return out, nil
}

// cpuUsed is the CPU time each process spent between two samples of
// sampleCPU, converted at hz ticks per second. A pid whose process changed
// between the samples (it exited and the pid was reused) is an error.
func cpuUsed(procs []serverProc, first, last []procCPU, hz int64) ([]time.Duration, error) {
	out := make([]time.Duration, len(procs))
	for i, p := range procs {
		a, b := first[i], last[i]
		if a.startTime != b.startTime || b.ticks < a.ticks {
			return nil, fmt.Errorf("server %s: the process exited during the run and the pid now belongs to another (%s)", p, b.comm)
		}
		out[i] = time.Duration(b.ticks-a.ticks) * time.Second / time.Duration(hz)
	}
	return out, nil
}

// defaultClockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat's
// times on every architecture; used when getconf cannot say.
const defaultClockTicks = 100

// clockTicks returns CLK_TCK, the clock ticks per second of
// /proc/<pid>/stat, as `getconf CLK_TCK` reports it (the C library's
// sysconf(_SC_CLK_TCK); lockbench does not link golang.org/x/sys for one
// call), and false with defaultClockTicks when getconf fails. Bounded by
// timeout.
func clockTicks(ctx context.Context, timeout time.Duration) (int64, bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "getconf", "CLK_TCK").Output()
	if err != nil {
		return defaultClockTicks, false
	}
	hz, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || hz <= 0 {
		return defaultClockTicks, false
	}
	return hz, true
}
