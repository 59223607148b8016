package integration

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The drop-in tests: the Redis lock libraries, unmodified, against a
// follower of a three-node cluster, across the leader's death. A library in
// another language runs as a script in clients/ that the test drives
// (driven); the test kills the leader where the script asks it to.

// dropinTimeout bounds one driven script's whole run.
const dropinTimeout = 30 * time.Second

// driven is a client script the test talks to: it prints "<step> <value>"
// lines and, where the test must act (kill the leader), a line "KILL", after
// which it waits for a line on its stdin.
//
// Concurrency contract: a driven is used by the test's goroutine only. Its
// reader goroutine sends stdout's lines on lines and stops at stdout's EOF,
// which comes when the process exits (of itself, or killed when its
// context ends: after dropinTimeout, or at the test's cleanup).
type driven struct {
	t       testing.TB
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string // stdout, a line at a time; closed at EOF
	errPath string      // the script's stderr
	out     []string    // the lines taken from lines so far
	waited  bool        // cmd.Wait was called
}

// startDriven starts a client script, which is killed after dropinTimeout
// and at the end of the test.
func startDriven(t testing.TB, name string, args ...string) *driven {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dropinTimeout)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	d := &driven{t: t, cmd: cmd, lines: make(chan string, 64), errPath: filepath.Join(t.TempDir(), "stderr")}
	errf, err := os.Create(d.errPath)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stderr = errf
	if d.stdin, err = cmd.StdinPipe(); err != nil {
		cancel()
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", name, err)
	}
	errf.Close() // the child has its own copy
	go func() {
		defer close(d.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cancel()
		d.drain()
		if !d.waited {
			cmd.Wait()
		}
	})
	return d
}

// next returns the script's next line; false when it has exited.
func (d *driven) next() (string, bool) {
	l, ok := <-d.lines
	if ok {
		d.out = append(d.out, l)
	}
	return l, ok
}

// drain reads stdout to its end, as the pipe must be read before Wait.
func (d *driven) drain() {
	for {
		if _, ok := d.next(); !ok {
			return
		}
	}
}

// fail stops the test with the script's output so far and its stderr.
func (d *driven) fail(format string, args ...any) {
	d.t.Helper()
	stderr, _ := readFile(d.errPath)
	d.t.Fatalf("%s: "+format+"\nstdout:\n%s\nstderr:\n%s",
		append(append([]any{filepath.Base(d.cmd.Args[1])}, args...), strings.Join(d.out, "\n"), stderr)...)
}

// until reads lines up to the line want; it fails the test if the script
// exits (or is killed at dropinTimeout) first.
func (d *driven) until(want string) {
	d.t.Helper()
	for {
		l, ok := d.next()
		if !ok {
			d.fail("exited before printing %q", want)
		}
		if l == want {
			return
		}
	}
}

// printed returns the value of a step the script printed so far.
func (d *driven) printed(step string) string {
	d.t.Helper()
	for _, l := range d.out {
		if v, ok := strings.CutPrefix(l, step+" "); ok {
			return v
		}
	}
	d.fail("no %q line yet", step)
	return ""
}

// resume writes a line to the script's stdin.
func (d *driven) resume() {
	d.t.Helper()
	if _, err := io.WriteString(d.stdin, "go\n"); err != nil {
		d.fail("writing to stdin: %v", err)
	}
}

// steps are a driven script's "<step> <value>" lines.
type steps struct {
	t   testing.TB
	m   map[string]string
	out []string
}

// steps reads the rest of the output, waits for the script to exit
// successfully (its last step "done ok") and returns its steps.
func (d *driven) steps() steps {
	d.t.Helper()
	d.drain()
	d.waited = true
	if err := d.cmd.Wait(); err != nil {
		d.fail("%v", err)
	}
	m := scriptLines(strings.Join(d.out, "\n"), 1)
	if m["done"] != "ok" {
		d.fail("did not finish")
	}
	d.t.Logf("%s printed:\n%s", filepath.Base(d.cmd.Args[1]), strings.Join(d.out, "\n"))
	return steps{t: d.t, m: m, out: d.out}
}

// get returns a step's value, failing the test if the script did not print it.
func (s steps) get(step string) string {
	s.t.Helper()
	v, ok := s.m[step]
	if !ok {
		s.t.Fatalf("no %q line in the output:\n%s", step, strings.Join(s.out, "\n"))
	}
	return v
}

// want checks the value of each step in want.
func (s steps) want(want [][2]string) {
	s.t.Helper()
	for _, w := range want {
		if got := s.get(w[0]); got != w[1] {
			s.t.Errorf("%s = %q; want %q", w[0], got, w[1])
		}
	}
}

// within checks that a step's value is an integer in (lo, hi].
func (s steps) within(step string, lo, hi int64) {
	s.t.Helper()
	v, err := strconv.ParseInt(s.get(step), 10, 64)
	if err != nil || v <= lo || v > hi {
		s.t.Errorf("%s = %q; want an integer in (%d, %d]", step, s.get(step), lo, hi)
	}
}

// killLeaderAt waits for the script's "KILL", then kills the leader (see
// killLeader). The script waits for resume.
func killLeaderAt(t testing.TB, c *cluster, d *driven, f int) int {
	t.Helper()
	d.until("KILL")
	return killLeader(t, c, f)
}

// killLeader kills the leader, which must not be f (the node the library
// talks to), and waits until the other nodes agree on a new leader, which
// it returns.
func killLeader(t testing.TB, c *cluster, f int) int {
	t.Helper()
	lead := c.waitLeader(10*time.Second, nil)
	if lead == f {
		t.Fatalf("node %d, the library's follower, became the leader: nothing to kill", f)
	}
	killed := time.Now()
	c.kill(lead)
	newLead := c.waitLeader(10*time.Second, c.others(lead))
	t.Logf("leader %d killed; node %d leads after %v", lead, newLead, time.Since(killed))
	return newLead
}

// followerCluster starts a three-node cluster and returns it and a
// follower, with the follower's host and port.
func followerCluster(t testing.TB) (c *cluster, f int, host, port string) {
	t.Helper()
	c = startCluster(t, 3, clusterOpts{})
	f = c.others(c.waitLeader(10*time.Second, nil))[0]
	host, port, _ = strings.Cut(c.nodes[f].client, ":")
	return c, f, host, port
}

// clientScript returns the absolute path of a script in clients/.
func clientScript(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("clients", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
