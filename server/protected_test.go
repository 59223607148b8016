package server

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lockd/lockd/acl"
)

func TestProtectedModeRefuses(t *testing.T) {
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000} }
	for _, tc := range []struct {
		name   string
		cfg    Config
		from   net.Addr
		refuse bool
	}{
		{"127.0.0.1 is local", Config{}, tcp("127.0.0.1"), false},
		{"::1 is local", Config{}, tcp("::1"), false},
		{"127.0.0.1 mapped into IPv6 is local", Config{}, tcp("::ffff:127.0.0.1"), false},
		{"127.0.0.2 is not local, as in Redis", Config{}, tcp("127.0.0.2"), true},
		{"another host is refused", Config{}, tcp("192.0.2.7"), true},
		{"another host over IPv6 is refused", Config{}, tcp("2001:db8::7"), true},
		{"a password lifts protected mode", Config{Password: "pw"}, tcp("192.0.2.7"), false},
		{"--protected-mode no lifts it", Config{Unprotected: true}, tcp("192.0.2.7"), false},
		{"a peer that is not on the network is let in", Config{}, &net.UnixAddr{Name: "@", Net: "unix"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{cfg: tc.cfg, localDefault: acl.NewDefault(tc.cfg.Password)}
			if got := s.protectedRefuses(tc.from); got != tc.refuse {
				t.Fatalf("protectedRefuses(%v) = %v, want %v", tc.from, got, tc.refuse)
			}
		})
	}
}

// dialFrom connects to srv from the local address ip (any port).
func dialFrom(t testing.TB, srv *Server, ip string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func TestProtectedModeOverLoopback(t *testing.T) {
	t.Run("without a password, a client from 127.0.0.2 is told DENIED and closed; 127.0.0.1 is served", func(t *testing.T) {
		srv := startServer(t)
		rc := dialFrom(t, srv, "127.0.0.2")
		raw, _, err := rc.read()
		if err != nil || !strings.HasPrefix(raw, "-DENIED lockd is running in protected mode") {
			t.Fatalf("first reply from a refused client: %q, %v", raw, err)
		}
		rc.expectClosed()
		dial(t, srv).expect("+PONG\r\n", "PING")
		poll(t, "the refused client not to be counted", func() bool {
			srv.mu.Lock()
			defer srv.mu.Unlock()
			return len(srv.clients) == 1
		})
	})
	t.Run("with a password, 127.0.0.2 is asked to AUTH like anyone", func(t *testing.T) {
		srv := startServer(t, func(c *Config) { c.Password = "s3cret" })
		rc := dialFrom(t, srv, "127.0.0.2")
		if r := rc.do("PING"); !strings.HasPrefix(r, "-NOAUTH") {
			t.Fatalf("PING before AUTH: %q", r)
		}
		rc.expect("+OK\r\n", "AUTH", "s3cret")
		rc.expect("+PONG\r\n", "PING")
	})
	t.Run("with protected mode off, 127.0.0.2 is served", func(t *testing.T) {
		srv := startServer(t, func(c *Config) { c.Unprotected = true })
		dialFrom(t, srv, "127.0.0.2").expect("+PONG\r\n", "PING")
	})
}

// A flood of refused connections costs at most maxDenials lingering
// goroutines, each gone within denyLinger, and the node serves meanwhile.
func TestProtectedModeFloodIsBounded(t *testing.T) {
	srv := startServer(t)
	const flood = 3 * maxDenials
	conns := make([]*rawConn, flood)
	for i := range conns {
		conns[i] = dialFrom(t, srv, "127.0.0.2") // sends nothing, reads nothing
	}
	dial(t, srv).expect("+PONG\r\n", "PING")
	for _, rc := range conns {
		rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, rc.c); err != nil {
			t.Fatalf("a refused connection was not closed: %v", err)
		}
	}
	poll(t, "no refusal to linger", func() bool { return len(srv.denials.sem) == 0 })
}
