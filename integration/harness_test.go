package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// lockdBin is the lockd binary the tests run, built once by TestMain.
var lockdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lockd-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lockdBin = filepath.Join(dir, "lockd")
	args := []string{"build", "-o", lockdBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/lockd")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building lockd:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Ports for lockd processes come from below Linux's ephemeral range
// (32768-60999 by default), which outgoing connections draw from: a port
// picked there could be taken by some connection's local end before the
// process binds it, and on a restart the node's old port too. None is
// handed out twice by one test binary.
const portLow, portHigh = 20000, 32000

var ports struct {
	sync.Mutex
	used map[int]bool
}

// freePort returns a loopback address that was free a moment ago, from
// below the ephemeral range, not returned before by this test binary.
func freePort(t testing.TB) string {
	t.Helper()
	ports.Lock()
	defer ports.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	for range 1000 {
		p := portLow + rand.IntN(portHigh-portLow)
		if ports.used[p] {
			continue
		}
		ports.used[p] = true
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// proc is one lockd process.
type proc struct {
	id      int
	client  string // client address
	cluster string // cluster address
	dir     string
	args    []string
	logPath string
	wrap    []string // a command that runs lockd (e.g. prlimit with its options and --), or none

	mu  sync.Mutex
	cmd *exec.Cmd
	ex  chan struct{} // closed when the process exits
	rc  int
}

// cluster is a set of lockd processes whose links to each other pass through
// proxies the test controls: node i reaches node j at proxy (i,j).
type cluster struct {
	t        testing.TB
	nodes    map[int]*proc
	proxies  map[[2]int]*proxy
	password string
	pki      *clusterPKI // with TLS on both ports (tlscluster_test.go); nil without
}

// clusterOpts tunes a test cluster.
type clusterOpts struct {
	extra    []string // more lockd flags, for every node
	password string   // given with --requirepass, and used by the harness's own probes
	tls      bool     // clients on TLS only, peers over mutual TLS (tlscluster_test.go)
	// seed, when set, prepares node i's data directory before its first
	// start; peers is its --peers.
	seed func(i int, dir, peers string)

	perNode func(i int) []string // more lockd flags for node i, after extra
}

// startCluster starts n lockd processes and waits until they agree on a
// leader. Everything is stopped at the end of the test.
func startCluster(t testing.TB, n int, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, nodes: map[int]*proc{}, proxies: map[[2]int]*proxy{}, password: o.password}
	if o.password != "" {
		o.extra = append([]string{"--requirepass", o.password}, o.extra...)
	}
	for i := 1; i <= n; i++ {
		c.nodes[i] = &proc{id: i, client: freePort(t), cluster: freePort(t), dir: filepath.Join(t.TempDir(), fmt.Sprint(i))}
	}
	if n > 1 {
		// A cluster needs a secret; each test's cluster has its own.
		secret := filepath.Join(t.TempDir(), "cluster-secret")
		if err := os.WriteFile(secret, []byte(fmt.Sprintf("%016x%016x\n", rand.Uint64(), rand.Uint64())), 0o600); err != nil {
			t.Fatal(err)
		}
		o.extra = append([]string{"--cluster-secret-file", secret}, o.extra...)
	}
	for i := 1; i <= n; i++ {
		for j := 1; j <= n; j++ {
			if i != j {
				c.proxies[[2]int{i, j}] = newProxy(t, c.nodes[j].cluster)
			}
		}
	}
	for i := 1; i <= n; i++ {
		p := c.nodes[i]
		var peers []string
		for j := 1; j <= n; j++ {
			addr := c.nodes[j].cluster
			if i != j {
				addr = c.proxies[[2]int{i, j}].addr()
			}
			peers = append(peers, fmt.Sprintf("%d=%s", j, addr))
		}
		p.args = append([]string{
			"--id", fmt.Sprint(i), "--listen", p.client, "--cluster-listen", p.cluster,
			"--peers", strings.Join(peers, ","), "--data-dir", p.dir, "--log-level", "debug",
		}, o.extra...)
		if o.perNode != nil {
			p.args = append(p.args, o.perNode(i)...)
		}
		p.logPath = filepath.Join(t.TempDir(), fmt.Sprintf("lockd-%d.log", i))
	}
	if o.tls {
		c.useTLS()
	}
	t.Cleanup(func() {
		for _, p := range c.nodes {
			p.kill()
		}
		if t.Failed() {
			for i := 1; i <= n; i++ {
				c.dumpLog(i)
			}
		}
	})
	for i := 1; i <= n; i++ {
		if o.seed != nil {
			o.seed(i, c.nodes[i].dir, c.nodes[i].args[slices.Index(c.nodes[i].args, "--peers")+1])
		}
		c.start(i)
	}
	c.waitLeader(10*time.Second, nil)
	return c
}

// startNode starts a single-node cluster.
func startNode(t testing.TB, extra ...string) *cluster {
	return startCluster(t, 1, clusterOpts{extra: extra})
}

// start (re)starts node i and waits until it answers PING.
func (c *cluster) start(i int) {
	c.t.Helper()
	c.waitPing(i, c.launch(i))
}

// exited waits up to timeout for node i's process to exit and returns its
// exit code; it fails the test if the process is still running.
func (c *cluster) exited(i int, timeout time.Duration) int {
	c.t.Helper()
	p := c.nodes[i]
	p.mu.Lock()
	ex := p.ex
	p.mu.Unlock()
	select {
	case <-ex:
	case <-time.After(timeout):
		c.t.Fatalf("node %d still runs after %v", i, timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rc
}

// logOf returns node i's log so far.
func (c *cluster) logOf(i int) string {
	b, _ := os.ReadFile(c.nodes[i].logPath)
	return string(b)
}

// launch starts node i's process and returns a channel closed when it exits.
func (c *cluster) launch(i int) chan struct{} {
	c.t.Helper()
	return c.launchProc(c.nodes[i])
}

// launchProc starts p's process (p need not be one of c.nodes) and returns
// a channel closed when it exits.
func (c *cluster) launchProc(p *proc) chan struct{} {
	c.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	argv := append(append(slices.Clone(p.wrap), lockdBin), p.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatal(err)
	}
	ex := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.ex = cmd, ex
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.rc = exitCode(err)
		p.mu.Unlock()
		close(ex)
	}()
	return ex
}

func (c *cluster) waitPing(i int, ex chan struct{}) {
	c.t.Helper()
	if c.pingOrExit(i, ex) {
		c.dumpLog(i)
		c.t.Fatalf("node %d exited at start", i)
	}
}

// pingOrExit polls until node i, launched with exit channel ex, answers
// PING (false) or exits (true), failing the test after a deadline.
func (c *cluster) pingOrExit(i int, ex chan struct{}) (exited bool) {
	c.t.Helper()
	p := c.nodes[i]
	poll(c.t, 30*time.Second, fmt.Sprintf("node %d answers PING or exits", i), func() bool {
		select {
		case <-ex:
			exited = true
			return true
		default:
		}
		conn, err := c.dialClient(p.client, time.Second)
		if err != nil {
			return false
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(time.Second))
		rd := bufio.NewReader(conn)
		if !c.auth(conn, rd) {
			return false
		}
		conn.Write([]byte("PING\r\n"))
		line, _ := rd.ReadString('\n')
		return line == "+PONG\r\n"
	})
	return exited
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// kill sends SIGKILL to node i and waits for it to die.
func (c *cluster) kill(i int) { c.nodes[i].kill() }

func (p *proc) kill() {
	p.mu.Lock()
	cmd, ex := p.cmd, p.ex
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGCONT) // a stopped process must run to die cleanly in Wait
	cmd.Process.Kill()
	<-ex
}

// term sends SIGTERM to node i, waits for it to exit and returns its exit code.
func (c *cluster) term(i int) int {
	c.t.Helper()
	p := c.nodes[i]
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	cmd.Process.Signal(syscall.SIGTERM)
	return c.exited(i, 15*time.Second)
}

// pause and resume send SIGSTOP and SIGCONT to node i.
func (c *cluster) pause(i int)  { c.signal(i, syscall.SIGSTOP) }
func (c *cluster) resume(i int) { c.signal(i, syscall.SIGCONT) }

func (c *cluster) signal(i int, s syscall.Signal) {
	c.t.Helper()
	p := c.nodes[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cmd.Process.Signal(s); err != nil {
		c.t.Fatalf("signal node %d: %v", i, err)
	}
}

// cut stops traffic from node a to node b (both ways when both is true):
// open connections are closed and new ones refused until heal.
func (c *cluster) cut(a, b int, both bool) {
	c.proxies[[2]int{a, b}].cut()
	if both {
		c.proxies[[2]int{b, a}].cut()
	}
}

// isolate cuts node i off from every other node, both ways.
func (c *cluster) isolate(i int) {
	for j := range c.nodes {
		if j != i {
			c.cut(i, j, true)
		}
	}
}

// healAll restores every link.
func (c *cluster) healAll() {
	for _, p := range c.proxies {
		p.heal()
	}
}

// client returns a go-redis client of node i that never retries on its own.
func (c *cluster) client(i int) *redis.Client {
	c.t.Helper()
	rdb := redis.NewClient(&redis.Options{
		Addr:         c.nodes[i].client,
		Password:     c.password,
		MaxRetries:   -1,
		DialTimeout:  time.Second,
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 2 * time.Second,
		PoolSize:     64,
		TLSConfig:    c.clientTLS(),
	})
	c.t.Cleanup(func() { rdb.Close() })
	return rdb
}

// info returns node i's INFO replication fields, or nil when it does not answer.
func (c *cluster) info(i int) map[string]string {
	conn, err := c.dialClient(c.nodes[i].client, 300*time.Millisecond)
	if err != nil {
		return nil
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	rd := bufio.NewReader(conn)
	if !c.auth(conn, rd) {
		return nil
	}
	if _, err := conn.Write([]byte("INFO replication\r\n")); err != nil {
		return nil
	}
	head, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return nil
	}
	n, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
	body := make([]byte, n+2)
	if _, err := io.ReadFull(rd, body); err != nil {
		return nil
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(body), "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// auth authenticates a raw probe connection when the cluster has a password.
func (c *cluster) auth(conn net.Conn, rd *bufio.Reader) bool {
	if c.password == "" {
		return true
	}
	if _, err := conn.Write([]byte(encodeRESP("AUTH", c.password))); err != nil {
		return false
	}
	line, err := rd.ReadString('\n')
	return err == nil && line == "+OK\r\n"
}

// encodeRESP encodes a command as a RESP array of bulk strings.
func encodeRESP(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// leader returns the node that says it leads and that every other node in
// among (nil: all running nodes) agrees on, or 0.
func (c *cluster) leader(among []int) int {
	if among == nil {
		for i := range c.nodes {
			among = append(among, i)
		}
	}
	lead := 0
	for _, i := range among {
		m := c.info(i)
		if m == nil {
			return 0
		}
		l, _ := strconv.Atoi(m["leader_id"])
		if l == 0 || (lead != 0 && l != lead) {
			return 0
		}
		lead = l
	}
	if _, ok := c.nodes[lead]; !ok {
		return 0 // a member the test added apart (the Jepsen suite's members nemesis)
	}
	if m := c.info(lead); m == nil || m["role"] != "leader" {
		return 0
	}
	return lead
}

// waitLeader polls until the nodes in among agree on a leader and returns it.
func (c *cluster) waitLeader(timeout time.Duration, among []int) int {
	c.t.Helper()
	var lead int
	poll(c.t, timeout, "a leader", func() bool {
		lead = c.leader(among)
		return lead != 0
	})
	return lead
}

func (c *cluster) dumpLog(i int) { c.dumpProcLog(c.nodes[i]) }

// dumpProcLog logs the tail of p's log.
func (c *cluster) dumpProcLog(p *proc) {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	c.t.Logf("--- node %d log (tail) ---\n%s", p.id, strings.Join(lines, "\n"))
}

// poll calls cond until it returns true, failing the test after timeout.
func poll(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// proxy forwards TCP connections to target until cut.
type proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu     sync.Mutex
	isCut  bool
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.isCut || p.closed {
			p.mu.Unlock()
			in.Close()
			continue
		}
		p.mu.Unlock()
		out, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		if p.isCut || p.closed {
			p.mu.Unlock()
			in.Close()
			out.Close()
			continue
		}
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			io.Copy(dst, src)
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(out, in)
		go pipe(in, out)
	}
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isCut = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *proxy) heal() {
	p.mu.Lock()
	p.isCut = false
	p.mu.Unlock()
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// lockCmd sends LOCK and returns the token, 0 for null.
func lockCmd(ctx context.Context, rdb *redis.Client, name, owner string, opts ...any) (int64, error) {
	args := append([]any{"LOCK", name, owner}, opts...)
	v, err := rdb.Do(ctx, args...).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

// ownerOf sends OWNER and returns the owner, "" for null.
func ownerOf(ctx context.Context, rdb *redis.Client, name string) (string, error) {
	v, err := rdb.Do(ctx, "OWNER", name).Text()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
