package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockd/lockd/replication"
	"github.com/redis/go-redis/v9"
)

// replyTimeout bounds every read of one reply in the tests.
const replyTimeout = 10 * time.Second

// startServer starts a single-node cluster on a loopback port, as cmd/lockd
// assembles one, waits until it leads, and closes it when the test ends.
// Each opt may change the Config before New.
func startServer(t testing.TB, opts ...func(*Config)) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Listener: ln,
		Node:     replication.Config{ID: 1, DataDir: t.TempDir()},
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	poll(t, "the single node to lead", func() bool {
		st := srv.Node().Status()
		return st.Role == "leader" && st.Leader == 1 && st.Applied >= st.Commit && st.Applied > 0
	})
	// Until then a connection is provisional (userscurrent.go), closed if
	// the users change meanwhile, as a test's ACL SETUSER does.
	poll(t, "the users to be current", srv.usersReady.Load)
	return srv
}

// poll calls cond until it holds, failing the test after a deadline.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not ordering
	}
}

// rawConn is a minimal RESP client that returns replies byte for byte.
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

// dial opens a raw connection to srv, closed when the test ends.
func dial(t testing.TB, srv *Server) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

// encode writes args as one RESP multibulk command.
func encode(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// send writes bytes as they are.
func (rc *rawConn) send(s string) {
	rc.t.Helper()
	rc.c.SetWriteDeadline(time.Now().Add(replyTimeout))
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("write %q: %v", s, err)
	}
}

// do sends one command and returns its reply's exact bytes.
func (rc *rawConn) do(args ...string) string {
	rc.t.Helper()
	rc.send(encode(args...))
	return rc.reply()
}

// reply reads one whole reply and returns its exact bytes.
func (rc *rawConn) reply() string {
	rc.t.Helper()
	raw, _, err := rc.read()
	if err != nil {
		rc.t.Fatalf("reading reply: %v (read so far %q)", err, raw)
	}
	return raw
}

// value sends one command and returns its decoded reply: string for simple
// and bulk strings, int64, nil for nulls, error for errors, []any for arrays
// and sets, map[string]any for maps.
func (rc *rawConn) value(args ...string) any {
	rc.t.Helper()
	rc.send(encode(args...))
	raw, v, err := rc.read()
	if err != nil {
		rc.t.Fatalf("%v: reading reply: %v (read so far %q)", args, err, raw)
	}
	return v
}

// expect sends one command and checks its exact reply.
func (rc *rawConn) expect(want string, args ...string) {
	rc.t.Helper()
	if got := rc.do(args...); got != want {
		rc.t.Fatalf("%s: got %q, want %q", strings.Join(quoteAll(args), " "), got, want)
	}
}

// int sends one command whose reply must be an integer, and returns it.
func (rc *rawConn) int(args ...string) int64 {
	rc.t.Helper()
	v := rc.value(args...)
	n, ok := v.(int64)
	if !ok {
		rc.t.Fatalf("%v: got %#v, want an integer", args, v)
	}
	return n
}

// expectClosed checks that the server closed the connection, after any
// replies still in flight.
func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(replyTimeout))
	b, err := rc.r.ReadByte()
	if err == nil {
		rest, _ := rc.r.Peek(rc.r.Buffered())
		rc.t.Fatalf("connection still open: read %q", string(b)+string(rest))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		rc.t.Fatalf("connection still open after %v", replyTimeout)
	}
}

func (rc *rawConn) read() (raw string, v any, err error) {
	rc.c.SetReadDeadline(time.Now().Add(replyTimeout))
	var b strings.Builder
	v, err = readValue(rc.r, &b)
	return b.String(), v, err
}

func readLine(r *bufio.Reader, b *strings.Builder) (string, error) {
	line, err := r.ReadString('\n')
	b.WriteString(line)
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(line, "\r\n") {
		return "", fmt.Errorf("line %q does not end in CRLF", line)
	}
	return line[:len(line)-2], nil
}

func readValue(r *bufio.Reader, b *strings.Builder) (any, error) {
	line, err := readLine(r, b)
	if err != nil {
		return nil, err
	}
	if line == "" {
		return nil, errors.New("empty line")
	}
	kind, rest := line[0], line[1:]
	switch kind {
	case '+':
		return rest, nil
	case '-':
		return errors.New(rest), nil
	case ':':
		return strconv.ParseInt(rest, 10, 64)
	case '_':
		return nil, nil
	case '$':
		n, err := strconv.Atoi(rest)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		b.Write(buf)
		return string(buf[:n]), nil
	case '*', '~', '%', '>':
		n, err := strconv.Atoi(rest)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		if kind == '%' {
			m := make(map[string]any, n)
			for range n {
				k, err := readValue(r, b)
				if err != nil {
					return nil, err
				}
				v, err := readValue(r, b)
				if err != nil {
					return nil, err
				}
				m[fmt.Sprint(k)] = v
			}
			return m, nil
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = readValue(r, b); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("unknown reply type %q", kind)
}

func quoteAll(args []string) []string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = strconv.Quote(a)
	}
	return q
}

// bulk is the RESP bulk string of s.
func bulk(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }

// integer is the RESP integer n.
func integer(n int64) string { return fmt.Sprintf(":%d\r\n", n) }

// lockInfo reads LOCKINFO name over a RESP2 connection.
func (rc *rawConn) lockInfo(name string) (owner string, token, ttl int64, held bool) {
	rc.t.Helper()
	v := rc.value("LOCKINFO", name)
	if v == nil {
		return "", 0, 0, false
	}
	a, ok := v.([]any)
	if !ok || len(a) != 3 {
		rc.t.Fatalf("LOCKINFO %s: got %#v, want [owner token ttl]", name, v)
	}
	owner, ok1 := a[0].(string)
	token, ok2 := a[1].(int64)
	ttl, ok3 := a[2].(int64)
	if !ok1 || !ok2 || !ok3 {
		rc.t.Fatalf("LOCKINFO %s: got %#v, want [owner token ttl]", name, v)
	}
	return owner, token, ttl, true
}

// newRedis returns a go-redis client for srv that never retries, closed when
// the test ends. Each opt may change the options.
func newRedis(t testing.TB, srv *Server, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: srv.Addr().String(), MaxRetries: -1}
	for _, f := range opts {
		f(o)
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// with returns the same connection reporting failures to t (a subtest).
func (rc *rawConn) with(t testing.TB) *rawConn { return &rawConn{t: t, c: rc.c, r: rc.r} }
