package metrics

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestMetricsPortRefusesBadRequests(t *testing.T) {
	n := startNode(t)
	tests := []struct {
		name   string
		method string
		path   string
		header string // a header of this many bytes, when not empty
		want   int
	}{
		{"a header over the limit", "GET", "/metrics", strings.Repeat("x", 64<<10), http.StatusRequestHeaderFieldsTooLarge},
		{"a method other than GET", "POST", "/metrics", "", http.StatusMethodNotAllowed},
		{"an unknown path", "GET", "/debug/pprof/", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, n.url+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != "" {
				req.Header.Set("X-Big", tt.header)
			}
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s: %d; want %d", tt.method, tt.path, resp.StatusCode, tt.want)
			}
		})
	}
	// The port still serves.
	if code, _ := get(t, n.url+"/livez"); code != http.StatusOK {
		t.Fatalf("/livez after bad requests: %d", code)
	}
}

// A client that sends its headers too slowly, or never, is disconnected
// after the header timeout; one that connects and idles, after the idle
// timeout. Neither holds a connection for longer.
func TestSlowClientsAreDisconnected(t *testing.T) {
	l := defaultLimits
	l.readHeader, l.idle = 100*time.Millisecond, 100*time.Millisecond
	hs := serve(listen(t), http.NotFoundHandler(), l, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { hs.Close() })
	for _, partial := range []string{"", "GET /metrics HTTP/1.1\r\nHost: x\r\n"} {
		c, err := net.Dial("tcp", hs.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, partial); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second)) // the test's bound, far above the server's
		_, err = io.Copy(io.Discard, bufio.NewReader(c))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("after sending %q: the server still held the connection after 10s", partial)
		}
	}
}

func TestCloseStopsServing(t *testing.T) {
	hs := serve(listen(t), http.NotFoundHandler(), defaultLimits, slog.New(slog.DiscardHandler))
	addr := hs.Addr().String()
	if err := hs.Close(); err != nil {
		t.Fatal(err)
	}
	hs.Close() // a second Close is harmless
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("the metrics port still accepts after Close")
	}
}

// Connections beyond the limit wait to be accepted; the ones that hold the
// port without a request are cut at the header timeout, and the waiting
// request is served then.
func TestConnectionsAreBounded(t *testing.T) {
	l := defaultLimits
	l.maxConns, l.readHeader = 2, 200*time.Millisecond
	hs := serve(listen(t), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w, http.StatusOK, "ok") }),
		l, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { hs.Close() })
	for range l.maxConns {
		c, err := net.Dial("tcp", hs.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if code, body := get(t, "http://"+hs.Addr().String()+"/"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("a request behind %d idle connections: %d %q", l.maxConns, code, body)
	}
}
