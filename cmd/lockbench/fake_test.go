package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/redcon"
)

// fakeServer answers just enough of lockd's protocol (LOCK/UNLOCK, INFO
// replication's commit_index) and of Redis's (SET NX PX, SCRIPT LOAD,
// EVALSHA/EVAL of the release script, WAIT) for lockbench to run against it.
// Leases are not timed: no test outlives them.
type fakeServer struct {
	mu        sync.Mutex
	held      map[string]string
	token     int64
	tryAgain  bool // answer every LOCK with -TRYAGAIN
	noScript  int  // answer this many EVALSHA with -NOSCRIPT first
	evals     int  // EVAL calls seen
	waits     int  // WAIT calls seen
	scriptSHA string
	grants    int // LOCKs and SETs granted
	releases  int // UNLOCK, EVALSHA and EVAL calls (after NOSCRIPT: only the EVAL)
	maxLocks  int // most LOCKs or SETs read in one batch from a connection
	commit    int // the commit index INFO reports: one entry per LOCK and UNLOCK
	infos     int // INFO calls seen
	// onInfo, if set, runs before the answer to each INFO call, with the
	// number of INFO calls seen so far (this one included), under f.mu.
	onInfo func(n int)
}

// startFake serves f on n loopback listeners and returns their addresses.
func startFake(t testing.TB, f *fakeServer, n int) []string {
	t.Helper()
	f.held = map[string]string{}
	f.scriptSHA = "0123456789abcdef0123456789abcdef01234567"
	var addrs []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := redcon.NewServer("", f.handle, nil, nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.Serve(ln)
		}()
		t.Cleanup(func() {
			_ = srv.Close()
			_ = ln.Close()
			<-done
		})
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

func (f *fakeServer) handle(conn redcon.Conn, cmd redcon.Command) {
	f.mu.Lock()
	defer f.mu.Unlock()
	args := make([]string, len(cmd.Args))
	for i, a := range cmd.Args {
		args[i] = string(a)
	}
	switch op := strings.ToUpper(args[0]); op {
	case "LOCK", "SET":
		// This command and those of the same kind already read behind it:
		// pipelined commands arrive together.
		n := 1
		for _, next := range conn.PeekPipeline() {
			if len(next.Args) == 0 || strings.ToUpper(string(next.Args[0])) != op {
				break
			}
			n++
		}
		f.maxLocks = max(f.maxLocks, n)
	case "UNLOCK", "EVALSHA", "EVAL":
		f.releases++
	}
	if op := strings.ToUpper(args[0]); op == "LOCK" || op == "UNLOCK" {
		f.commit++
	}
	switch strings.ToUpper(args[0]) + "/" + strconv.Itoa(len(args)) {
	case "PING/1":
		conn.WriteString("PONG")
	case "LOCK/5": // LOCK name owner PX ms
		if f.tryAgain {
			conn.WriteError("TRYAGAIN no leader; retry later")
			return
		}
		if _, err := strconv.ParseInt(args[4], 10, 64); err != nil || strings.ToUpper(args[3]) != "PX" {
			conn.WriteError("ERR syntax error")
			return
		}
		if _, ok := f.held[args[1]]; ok {
			conn.WriteNull()
			return
		}
		f.held[args[1]] = args[2]
		f.grants++
		f.token++
		conn.WriteInt64(f.token)
	case "UNLOCK/3":
		conn.WriteInt(f.release(args[1], args[2]))
	case "SET/6": // SET name owner NX PX ms
		if strings.ToUpper(args[3]) != "NX" || strings.ToUpper(args[4]) != "PX" {
			conn.WriteError("ERR syntax error")
			return
		}
		if _, ok := f.held[args[1]]; ok {
			conn.WriteNull()
			return
		}
		f.held[args[1]] = args[2]
		f.grants++
		conn.WriteString("OK")
	case "SCRIPT/3":
		conn.WriteBulkString(f.scriptSHA)
	case "EVALSHA/5":
		if f.noScript > 0 || args[1] != f.scriptSHA {
			f.noScript--
			f.releases-- // answered NOSCRIPT: the EVAL that follows is the release
			conn.WriteError("NOSCRIPT No matching script. Please use EVAL.")
			return
		}
		conn.WriteInt(f.release(args[3], args[4]))
	case "EVAL/5":
		if args[1] != compareAndDelete {
			conn.WriteError("ERR unexpected script")
			return
		}
		f.evals++
		conn.WriteInt(f.release(args[3], args[4]))
	case "WAIT/3":
		f.waits++
		conn.WriteInt(1)
	case "INFO/2":
		f.infos++
		if f.onInfo != nil {
			f.onInfo(f.infos)
		}
		conn.WriteBulkString("# Replication\r\nrole:leader\r\ncommit_index:" + strconv.Itoa(f.commit) + "\r\napplied_index:0\r\n")
	default:
		conn.WriteError("ERR unknown command '" + args[0] + "'")
	}
}

func (f *fakeServer) release(name, owner string) int {
	if f.held[name] != owner {
		return 0
	}
	delete(f.held, name)
	return 1
}

// runJSON runs lockbench with args for a short window and returns its
// report, exit code and stderr. A run whose window measured nothing and saw no error (on a loaded
// machine no answer may come within 300 ms) is run again with a window
// twice as long, up to four times.
func runJSON(t *testing.T, args ...string) (report, int, string) {
	t.Helper()
	for d := 300 * time.Millisecond; ; d *= 2 {
		var out, errb bytes.Buffer
		code := run(append(args, "-json", "-duration", d.String(), "-warmup", "50ms", "-clients", "4", "-names", "20"), &out, &errb)
		var r report
		if code != 2 {
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("output is not JSON (%v): %q, stderr %q", err, out.String(), errb.String())
			}
		}
		if code == 1 && r.allFailed() && r.Errors == 0 && d < 2*time.Second {
			t.Logf("nothing measured in %v; again, longer", d)
			continue
		}
		return r, code, errb.String()
	}
}

func TestRunLockdMode(t *testing.T) {
	f := &fakeServer{}
	addrs := startFake(t, f, 3)
	for _, proto := range []string{"2", "3"} {
		t.Run("RESP"+proto, func(t *testing.T) {
			r, code, stderr := runJSON(t, "-mode", "lockd", "-protocol", proto, "-endpoints", strings.Join(addrs, ","))
			if code != 0 || r.Errors != 0 || r.Acquires == 0 || r.TokenRegressions != 0 || r.ReleaseNotHeld != 0 {
				t.Fatalf("exit %d, report %+v, stderr %q", code, r, stderr)
			}
			if r.AcquireUs.Count != r.Acquires+r.Busy || r.AcquireUs.P99 == 0 {
				t.Fatalf("latency summary %+v for %d acquires", r.AcquireUs, r.Acquires+r.Busy)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.held) != 0 {
		t.Fatalf("locks left held: %v", f.held)
	}
	if f.maxLocks != 1 {
		t.Fatalf("%d LOCKs arrived together without -pipeline", f.maxLocks)
	}
}

func TestRunAllErrorsExitsNonZero(t *testing.T) {
	addrs := startFake(t, &fakeServer{tryAgain: true}, 1)
	r, code, _ := runJSON(t, "-mode", "lockd", "-endpoints", addrs[0])
	if code != 1 || r.Errors == 0 || len(r.ErrorSamples) != 1 ||
		r.ErrorSamples[0].Text != "acquire: TRYAGAIN no leader; retry later" {
		t.Fatalf("exit %d, report %+v", code, r)
	}
}

func TestRunRedisMode(t *testing.T) {
	f := &fakeServer{noScript: 3}
	addrs := startFake(t, f, 1)
	r, code, stderr := runJSON(t, "-mode", "redis", "-wait-replicas", "1", "-endpoints", addrs[0])
	if code != 0 || r.Errors != 0 || r.Acquires == 0 || r.WaitShort != 0 {
		t.Fatalf("exit %d, report %+v, stderr %q", code, r, stderr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.evals != 3 {
		t.Errorf("%d EVAL fallbacks after NOSCRIPT, want 3", f.evals)
	}
	if f.waits < int(2*r.Acquires-2) {
		t.Errorf("%d WAITs for %d grants, want one after every write", f.waits, r.Acquires)
	}
	if len(f.held) != 0 {
		t.Fatalf("locks left held: %v", f.held)
	}
}

func TestRunSetupFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var out, errb bytes.Buffer
	if code := run([]string{"-endpoints", addr, "-timeout", "1s"}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

// An etcd endpoint where nothing listens fails setup within the call timeout
// (the clients dial lazily; the session's lease grant is what fails).
func TestRunEtcdSetupFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var out, errb bytes.Buffer
	start := time.Now()
	code := run([]string{"-mode", "etcd", "-endpoints", addr, "-clients", "3", "-timeout", "500ms"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), addr) {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("setup failure took %v", d)
	}
}

// A pipelined run sends the acquires together, counts every answer, and
// releases exactly the granted locks: every grant the fake made is released
// once, and no release reaches a lock held by another worker.
func TestRunPipelined(t *testing.T) {
	for _, tt := range []struct {
		mode, proto string
		noScript    int
	}{{"lockd", "2", 0}, {"lockd", "3", 0}, {"redis", "3", 3}} {
		t.Run(tt.mode+"/RESP"+tt.proto, func(t *testing.T) {
			f := &fakeServer{noScript: tt.noScript}
			addrs := startFake(t, f, 2)
			r, code, stderr := runJSON(t, "-mode", tt.mode, "-protocol", tt.proto, "-pipeline", "8", "-endpoints", strings.Join(addrs, ","))
			if code != 0 || r.Errors != 0 || r.Acquires == 0 || r.Busy == 0 || r.TokenRegressions != 0 || r.ReleaseNotHeld != 0 || r.Pipeline != 8 {
				t.Fatalf("exit %d, report %+v, stderr %q", code, r, stderr)
			}
			// 4 workers hold up to 8 of 20 names each, so some acquires are
			// busy; each answered command is one latency value.
			if r.AcquireUs.Count != r.Acquires+r.Busy || r.ReleaseUs.Count != r.Releases {
				t.Fatalf("latency counts %d, %d for %d acquires, %d busy, %d releases",
					r.AcquireUs.Count, r.ReleaseUs.Count, r.Acquires, r.Busy, r.Releases)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.held) != 0 {
				t.Fatalf("locks left held: %v", f.held)
			}
			// The window counts fewer than the fake saw (warm-up, the tail).
			if f.releases != f.grants || int64(f.grants) < r.Acquires {
				t.Fatalf("fake saw %d grants and %d releases; report %d acquires, %d releases", f.grants, f.releases, r.Acquires, r.Releases)
			}
			if f.maxLocks < 2 || f.maxLocks > 8 {
				t.Fatalf("at most %d acquires arrived together, want 2..8", f.maxLocks)
			}
			if f.evals != tt.noScript {
				t.Fatalf("%d EVAL fallbacks after NOSCRIPT, want %d", f.evals, tt.noScript)
			}
		})
	}
}
