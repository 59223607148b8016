package respguard

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/redcon"
)

// mb encodes args as one multibulk command.
func mb(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

var small = Limits{MaxMultibulk: 4, MaxBulk: 16, MaxInline: 32, MaxCommand: 64}

func TestWithDefaults(t *testing.T) {
	want := Limits{MaxMultibulk: 1024, MaxBulk: 512 << 10, MaxInline: 64 << 10, MaxCommand: 1 << 20, PartialTimeout: 30 * time.Second}
	if got := (Limits{}).WithDefaults(); got != want {
		t.Fatalf("zero: got %+v, want %+v", got, want)
	}
	if got := (Limits{PartialTimeout: -1}).WithDefaults(); got.PartialTimeout != -1 {
		t.Fatalf("negative PartialTimeout: got %v, want kept", got.PartialTimeout)
	}
	if got := small.WithDefaults(); got.MaxMultibulk != 4 || got.MaxCommand != 64 {
		t.Fatalf("set fields changed: %+v", got)
	}
}

func TestPassThrough(t *testing.T) {
	tests := []struct {
		name string
		lim  Limits
		in   string
	}{
		{"pipelined", Limits{}, strings.Repeat(mb("PING")+mb("ECHO", "hello"), 50)},
		{"binary payload", Limits{}, mb("SET", "k\r\n", "\r\n*3\r\n$\x00\xff")},
		{"empty bulk", Limits{}, mb("ECHO", "")},
		{"inline", Limits{}, "PING\r\nECHO hi\nSET k \"a b\"\r\n"},
		{"blank lines", Limits{}, "\n\r\n\r\n" + mb("PING") + "\n"},
		{"empty multibulk", Limits{}, "*0\r\n*-1\r\n" + mb("PING")},
		{"atoi forms", Limits{}, "*+1\r\n$-0\r\n\r\n*01\r\n$+04\r\nPING\r\n"},
		{"at limits", small, mb("a", "b", "c", "0123456789abcdef") + strings.Repeat("x", 32) + "\n"},
		{"command exactly MaxCommand", Limits{MaxCommand: len(mb("ECHO", "12345"))}, mb("ECHO", "12345")},
		{"inline separators below limit", small, "a \"b\"\n"},
		{"empty", Limits{}, ""},
	}
	for _, tt := range tests {
		for _, chunk := range []int{0, 1, 2, 3, 7, 64} {
			for _, bufSize := range []int{1, 5, 4096} {
				t.Run(fmt.Sprintf("%s/chunk=%d/buf=%d", tt.name, chunk, bufSize), func(t *testing.T) {
					f := &fakeConn{in: []byte(tt.in), chunk: chunk}
					out, err := pump(t, Wrap(f, tt.lim), bufSize)
					if err != nil {
						t.Fatalf("err = %v", err)
					}
					if string(out) != tt.in {
						t.Fatalf("out = %q, want %q", out, tt.in)
					}
					if w := f.written(); w != "" {
						t.Fatalf("wrote %q", w)
					}
				})
			}
		}
	}
}

func TestViolation(t *testing.T) {
	tests := []struct {
		name   string
		lim    Limits
		in     string
		passed string // complete commands before the violation
		reason string
	}{
		{"huge multibulk", Limits{}, "*4611686018427387904\r\n", "", "invalid multibulk length"},
		{"multibulk over limit", small, "*5\r\n", "", "invalid multibulk length"},
		{"multibulk negative", Limits{}, "*-2\r\n", "", "invalid multibulk length"},
		{"multibulk letters", Limits{}, "*1x\r\n", "", "invalid multibulk length"},
		{"multibulk empty count", Limits{}, "*\r\n", "", "invalid multibulk length"},
		{"multibulk no CR", Limits{}, "*1\n$4\r\nPING\r\n", "", "invalid multibulk length"},
		{"multibulk CR inside", Limits{}, "*1\r2\r\n", "", "invalid multibulk length"},
		{"multibulk count string", Limits{}, "*" + strings.Repeat("0", 40) + "1\r\n", "", "too big mbulk count string"},
		{"bulk 2^31", Limits{}, "*1\r\n$2147483648\r\n", "", "invalid bulk length"},
		{"bulk over limit", small, "*1\r\n$17\r\n", "", "invalid bulk length"},
		{"bulk negative", Limits{}, "*1\r\n$-1\r\n", "", "invalid bulk length"},
		{"bulk digits", Limits{}, "*1\r\n$1a\r\n", "", "invalid bulk length"},
		{"bulk count string", Limits{}, "*1\r\n$" + strings.Repeat("0", 40) + "\r\n", "", "too big bulk count string"},
		{"bulk missing CRLF", Limits{}, "*1\r\n$4\r\nPINGXY", "", "invalid bulk length"},
		{"expected dollar", Limits{}, "*1\r\n+PING\r\n", "", "expected '$', got '+'"},
		{"expected dollar control", Limits{}, "*1\r\n\r\n", "", `expected '$', got '\x0d'`},
		{"inline too long", small, strings.Repeat("a", 33), "", "too big inline request"},
		{"inline too many args", small, "a b c d e\n", "", "too many arguments in inline request"},
		{"command too large", small, mb("a", "0123456789abcdef", "0123456789abcdef", "0123456789abcdef"), "", "command too large"},
		{"command too large inline", Limits{MaxInline: 100, MaxCommand: 10}, strings.Repeat("a", 11), "", "command too large"},
		{"after valid commands", Limits{}, mb("PING") + "PING\r\n*99999999\r\n", mb("PING") + "PING\r\n", "invalid multibulk length"},
		{"random bytes", Limits{}, "*\x8f\x01\xfe\r\n", "", "invalid multibulk length"},
	}
	for _, tt := range tests {
		for _, chunk := range []int{0, 1, 5} {
			t.Run(fmt.Sprintf("%s/chunk=%d", tt.name, chunk), func(t *testing.T) {
				f := &fakeConn{in: []byte(tt.in), chunk: chunk}
				c := Wrap(f, tt.lim)
				out, err := pump(t, c, 4096)
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("err = %v, want ErrProtocol", err)
				}
				if !strings.HasPrefix(string(out), tt.passed) || !strings.HasPrefix(tt.in, string(out)) {
					t.Fatalf("passed %q, want %q (then at most part of the bad command)", out, tt.passed)
				}
				if chunk == 0 && string(out) != tt.passed {
					t.Fatalf("passed %q, want %q", out, tt.passed)
				}
				if want := "-ERR Protocol error: " + tt.reason + "\r\n"; f.written() != want {
					t.Fatalf("wrote %q, want %q", f.written(), want)
				}
				if _, err2 := c.Read(make([]byte, 10)); err2 != err {
					t.Fatalf("second Read: %v, want sticky %v", err2, err)
				}
				if f.written() != "-ERR Protocol error: "+tt.reason+"\r\n" {
					t.Fatalf("error line written twice: %q", f.written())
				}
			})
		}
	}
}

// TestReadAlignsToCommands checks that a read ending inside a command returns
// only the complete commands when it holds any.
func TestReadAlignsToCommands(t *testing.T) {
	cmd := mb("ECHO", "hello")
	c := Wrap(&fakeConn{in: []byte(cmd + cmd)}, Limits{})
	buf := make([]byte, len(cmd)+7)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != cmd {
		t.Fatalf("first Read = %q, %v; want %q", buf[:n], err, cmd)
	}
	n, err = c.Read(buf)
	if err != nil || string(buf[:n]) != cmd {
		t.Fatalf("second Read = %q, %v; want %q", buf[:n], err, cmd)
	}
}

// TestRedconBufferBounded feeds a saturating pipeline through a redcon
// Reader: without the guard redcon doubles its buffer on every read that
// fills it and ends inside a command.
func TestRedconBufferBounded(t *testing.T) {
	stream := []byte(mb("SET", "key", strings.Repeat("v", 200)))
	bufLen := func(rd *redcon.Reader) int {
		v := reflect.ValueOf(rd).Elem().FieldByName("buf")
		if !v.IsValid() {
			t.Skip("redcon.Reader has no buf field")
		}
		return v.Len()
	}
	raw := redcon.NewReader(&fakeConn{in: stream, loop: true})
	for range 8 {
		if _, err := raw.ReadCommands(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("unguarded redcon buffer after 8 reads: %d bytes", bufLen(raw))

	rd := redcon.NewReader(Wrap(&fakeConn{in: stream, loop: true}, Limits{}))
	for i := range 1000 {
		cmds, err := rd.ReadCommands()
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range cmds {
			if len(cmd.Args) != 3 || len(cmd.Args[2]) != 200 {
				t.Fatalf("read %d: bad command %q", i, cmd.Raw)
			}
		}
		if n := bufLen(rd); n > 16<<10 {
			t.Fatalf("read %d: redcon buffer grew to %d bytes", i, n)
		}
	}
}

func TestReadAllocs(t *testing.T) {
	c := Wrap(&fakeConn{in: []byte(mb("ECHO", "hello") + "PING\r\n"), loop: true}, Limits{})
	buf := make([]byte, 4096)
	read := func() {
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		read()
	}
	if n := testing.AllocsPerRun(100, read); n != 0 {
		t.Fatalf("%v allocations per Read, want 0", n)
	}
}

// pipePair returns a guarded conn and its peer.
func pipePair(tb testing.TB, lim Limits) (guarded, peer net.Conn) {
	tb.Helper()
	a, b := net.Pipe()
	tb.Cleanup(func() { a.Close(); b.Close() })
	return Wrap(a, lim), b
}

// writeAsync writes s to c from a goroutine; net.Pipe writes block until read.
func writeAsync(tb testing.TB, c net.Conn, s string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Write([]byte(s))
	}()
	tb.Cleanup(func() { c.Close(); <-done })
}

func TestDeadlines(t *testing.T) {
	t.Run("caller deadline", func(t *testing.T) {
		g, _ := pipePair(t, Limits{PartialTimeout: time.Hour})
		g.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := g.Read(make([]byte, 16))
		if !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ErrProtocol) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
	})
	t.Run("caller deadline mid-command, then complete", func(t *testing.T) {
		g, peer := pipePair(t, Limits{PartialTimeout: time.Hour})
		writeAsync(t, peer, "*1\r\n")
		buf := make([]byte, 16)
		if n, err := g.Read(buf); err != nil || string(buf[:n]) != "*1\r\n" {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
		g.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := g.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
		g.SetReadDeadline(time.Time{})
		writeAsync(t, peer, "$4\r\nPING\r\n")
		if n, err := g.Read(buf); err != nil || string(buf[:n]) != "$4\r\nPING\r\n" {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
	})
	t.Run("partial timeout before caller deadline", func(t *testing.T) {
		g, peer := pipePair(t, Limits{PartialTimeout: 50 * time.Millisecond})
		g.SetReadDeadline(time.Now().Add(time.Hour))
		writeAsync(t, peer, "*1\r\n$4\r\nPI")
		buf := make([]byte, 64)
		start := time.Now()
		var err error
		for err == nil {
			_, err = g.Read(buf)
		}
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("err = %v, want ErrProtocol", err)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Fatalf("closed after %v, before PartialTimeout", d)
		}
	})
	t.Run("concurrent deadline interrupts Read", func(t *testing.T) {
		g, _ := pipePair(t, Limits{})
		errc := make(chan error, 1)
		go func() {
			_, err := g.Read(make([]byte, 16))
			errc <- err
		}()
		deadline := time.After(5 * time.Second)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			g.SetReadDeadline(time.Now())
			select {
			case err := <-errc:
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("err = %v, want deadline exceeded", err)
				}
				return
			case <-tick.C:
			case <-deadline:
				t.Fatal("Read not interrupted")
			}
		}
	})
}

// guardedListener wraps every conn it accepts with Wrap, as lockd's server
// and cluster port do.
type guardedListener struct {
	net.Listener
	lim Limits
}

func (l guardedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c, l.lim), nil
}

// testServer is a redcon server behind a guardedListener answering PING and
// ECHO.
type testServer struct {
	addr string

	mu     sync.Mutex
	open   int
	closed []error // errors passed to redcon's closed callback, in order
}

func startServer(tb testing.TB, lim Limits) *testServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ts := &testServer{addr: ln.Addr().String()}
	srv := redcon.NewServerNetwork("tcp", "", func(c redcon.Conn, cmd redcon.Command) {
		switch strings.ToUpper(string(cmd.Args[0])) {
		case "PING":
			c.WriteString("PONG")
		case "ECHO":
			if len(cmd.Args) != 2 {
				c.WriteError("ERR wrong number of arguments")
				return
			}
			c.WriteBulk(cmd.Args[1])
		default:
			c.WriteError("ERR unknown command")
		}
	}, func(redcon.Conn) bool {
		ts.mu.Lock()
		ts.open++
		ts.mu.Unlock()
		return true
	}, func(_ redcon.Conn, err error) {
		ts.mu.Lock()
		ts.open--
		ts.closed = append(ts.closed, err)
		ts.mu.Unlock()
	})
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(guardedListener{Listener: ln, lim: lim})
	}()
	tb.Cleanup(func() {
		srv.Close()
		<-served
		ts.waitFor(tb, "all conns closed", func() bool { return ts.open == 0 })
	})
	return ts
}

// waitFor polls cond, called with ts.mu held, until it holds or 10s pass.
func (ts *testServer) waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		ts.mu.Lock()
		ok := cond()
		ts.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// waitClosedWith waits until a conn's handler goroutine has ended with an
// error wrapping ErrProtocol whose text contains reason.
func (ts *testServer) waitClosedWith(tb testing.TB, reason string) {
	tb.Helper()
	ts.waitFor(tb, "conn closed with "+reason, func() bool {
		for _, err := range ts.closed {
			if errors.Is(err, ErrProtocol) && strings.Contains(err.Error(), reason) {
				return true
			}
		}
		return false
	})
}

type client struct {
	net.Conn
	r *bufio.Reader
}

func dial(tb testing.TB, addr string) *client {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{Conn: c, r: bufio.NewReader(c)}
}

func (c *client) send(tb testing.TB, s string) {
	tb.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		tb.Fatal(err)
	}
}

// expect reads replies and compares them with want (RESP text).
func (c *client) expect(tb testing.TB, want string) {
	tb.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c.r, got); err != nil {
		tb.Fatalf("reading %q: got %q, %v", want, got, err)
	}
	if string(got) != want {
		tb.Fatalf("got %q, want %q", got, want)
	}
}

// expectClosed reads until the server closes the conn; only want may arrive.
func (c *client) expectClosed(tb testing.TB, want string) {
	tb.Helper()
	got, err := io.ReadAll(c.r)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		tb.Fatalf("read %q then %v, want close", got, err)
	}
	if string(got) != want && !(err != nil && strings.HasPrefix(want, string(got))) {
		tb.Fatalf("got %q before close, want %q", got, want)
	}
}

func TestServer(t *testing.T) {
	ts := startServer(t, Limits{})

	t.Run("pipelined", func(t *testing.T) {
		c := dial(t, ts.addr)
		var in, want strings.Builder
		for i := range 200 {
			in.WriteString(mb("ECHO", fmt.Sprint(i)) + "PING\r\n")
			fmt.Fprintf(&want, "$%d\r\n%d\r\n+PONG\r\n", len(fmt.Sprint(i)), i)
		}
		c.send(t, in.String())
		c.expect(t, want.String())
	})
	t.Run("byte at a time", func(t *testing.T) {
		c := dial(t, ts.addr)
		in := mb("ECHO", "hello\r\nworld") + "PING\r\n" + mb("PING")
		for i := range len(in) {
			c.send(t, in[i:i+1])
		}
		c.expect(t, "$12\r\nhello\r\nworld\r\n+PONG\r\n+PONG\r\n")
	})
	t.Run("large bulk", func(t *testing.T) {
		c := dial(t, ts.addr)
		v := strings.Repeat("x", 300<<10)
		c.send(t, mb("ECHO", v))
		c.expect(t, fmt.Sprintf("$%d\r\n%s\r\n", len(v), v))
	})
}

func TestServerRejects(t *testing.T) {
	lim := Limits{MaxInline: 1024, MaxCommand: 4096}
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 512)
	for i := range random {
		random[i] = byte(rnd.IntN(256))
	}
	random[0] = '*'
	tests := []struct {
		name, in, reason string
	}{
		{"huge multibulk", "*4611686018427387904\r\n", "invalid multibulk length"},
		{"huge bulk", "*1\r\n$2147483648\r\n", "invalid bulk length"},
		{"bad digits", "*2\r\n$4\r\nECHO\r\n$12a\r\n", "invalid bulk length"},
		{"random bytes", string(random), "invalid multibulk length"},
		{"inline too long", strings.Repeat("a", 1025), "too big inline request"},
		{"command too large", mb("ECHO", strings.Repeat("x", 4096)), "command too large"},
	}
	ts := startServer(t, lim)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, ts.addr)
			c.send(t, "PING\r\n")
			c.expect(t, "+PONG\r\n")
			c.send(t, tt.in)
			c.expectClosed(t, "-ERR Protocol error: "+tt.reason+"\r\n")
			ts.waitClosedWith(t, tt.reason)

			other := dial(t, ts.addr)
			other.send(t, mb("PING"))
			other.expect(t, "+PONG\r\n")
		})
	}
}

// TestRedconRejectsEmptyMultibulk records a redcon behaviour the guard lets
// through: "*0" is an empty command to Redis but a protocol error to redcon.
func TestRedconRejectsEmptyMultibulk(t *testing.T) {
	ts := startServer(t, Limits{})
	c := dial(t, ts.addr)
	c.send(t, "*0\r\n")
	c.expectClosed(t, "-ERR Protocol error: invalid multibulk length\r\n")
}

func TestServerPartialTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	ts := startServer(t, Limits{PartialTimeout: timeout})

	tests := []struct{ name, partial string }{
		{"multibulk", "*2\r\n$4\r\nECHO\r\n$5\r\nhel"},
		{"header", "*2\r\n$4"},
		{"inline", "PIN"},
		{"after a command", "PING\r\n*1\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, ts.addr)
			start := time.Now()
			c.send(t, tt.partial)
			want := ""
			if strings.HasPrefix(tt.partial, "PING\r\n") {
				want = "+PONG\r\n"
			}
			c.expectClosed(t, want)
			if d := time.Since(start); d < timeout {
				t.Fatalf("closed after %v, before PartialTimeout %v", d, timeout)
			}
			ts.waitClosedWith(t, "command not completed")
		})
	}
	t.Run("idle between commands", func(t *testing.T) {
		t.Parallel()
		c := dial(t, ts.addr)
		c.send(t, "PING\r\n")
		c.expect(t, "+PONG\r\n")
		c.SetReadDeadline(time.Now().Add(3 * timeout))
		if n, err := c.r.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("idle conn: read %q, %v; want client-side timeout", n, err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		c.send(t, mb("PING"))
		c.expect(t, "+PONG\r\n")
	})
}

// fakeConn serves in to Read in chunks of at most chunk bytes (0: as many as
// fit), then io.EOF; with loop set it serves in forever. Writes are recorded.
// Deadlines are accepted and ignored.
type fakeConn struct {
	in    []byte
	chunk int
	loop  bool
	off   int

	mu  sync.Mutex
	out bytes.Buffer
}

func (f *fakeConn) Read(p []byte) (int, error) {
	if f.off == len(f.in) {
		if !f.loop || len(f.in) == 0 {
			return 0, io.EOF
		}
		f.off = 0
	}
	if f.chunk > 0 && len(p) > f.chunk {
		p = p[:f.chunk]
	}
	n := 0
	for n < len(p) {
		k := copy(p[n:], f.in[f.off:])
		n += k
		f.off += k
		if f.off == len(f.in) {
			if !f.loop {
				break
			}
			f.off = 0
		}
	}
	return n, nil
}

func (f *fakeConn) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.Write(p)
}

func (f *fakeConn) written() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

func (f *fakeConn) Close() error                     { return nil }
func (f *fakeConn) LocalAddr() net.Addr              { return fakeAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr             { return fakeAddr{} }
func (f *fakeConn) SetDeadline(time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

type fakeAddr struct{}

func (fakeAddr) Network() string { return "fake" }
func (fakeAddr) String() string  { return "fake" }

// pump reads c to the end with reads of at most bufSize bytes and returns what
// was read and the terminating error, nil for io.EOF.
func pump(tb testing.TB, c net.Conn, bufSize int) ([]byte, error) {
	tb.Helper()
	var out []byte
	buf := make([]byte, bufSize)
	for reads := 0; ; reads++ {
		if reads > 1<<24 {
			tb.Fatalf("pump: no end after %d reads", reads)
		}
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
