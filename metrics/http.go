package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/lockd/lockd/replication"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// limits bounds what the metrics port lets a client hold: the time to send
// a request's headers and body, to take its reply and to idle between
// requests, the size of the headers, the connections open at once, and the
// scrapes running at once (more get 503).
type limits struct {
	readHeader, read, write, idle time.Duration
	maxHeaderBytes, maxConns      int
	maxScrapes                    int
	scrapeTimeout                 time.Duration
}

// defaultLimits are the metrics port's limits (docs/operations.md).
var defaultLimits = limits{
	readHeader:     5 * time.Second,
	read:           10 * time.Second,
	write:          10 * time.Second,
	idle:           60 * time.Second,
	maxHeaderBytes: 8 << 10,
	maxConns:       64,
	maxScrapes:     4,
	scrapeTimeout:  5 * time.Second,
}

// readyWait bounds how long /readyz waits for this node to be in contact
// with a leader and to apply what it knows is committed.
const readyWait = time.Second

// HTTPServer serves /metrics, /livez and /readyz.
//
// Concurrency: Close may be called from any goroutine, more than once. The
// server's goroutine ends at Close.
type HTTPServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	once sync.Once
}

// Serve serves m's metrics and node's health on ln until Close:
//
//   - /metrics: the Prometheus text exposition of m's registry;
//   - /livez: 200 while the process serves, 503 once the node has stopped
//     itself (its storage failed; the process is about to exit);
//   - /readyz: 200 when a leader is known and this node, in contact with
//     it, has applied everything it knows is committed (waiting up to
//     readyWait for that), else 503 with a one-line reason.
func Serve(ln net.Listener, m *Metrics, node *replication.Node, log *slog.Logger) *HTTPServer {
	return serve(ln, m.handler(node), defaultLimits, log)
}

func serve(ln net.Listener, h http.Handler, l limits, log *slog.Logger) *HTTPServer {
	s := &HTTPServer{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: l.readHeader,
			ReadTimeout:       l.read,
			WriteTimeout:      l.write,
			IdleTimeout:       l.idle,
			MaxHeaderBytes:    l.maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		ln:   netutil.LimitListener(ln, l.maxConns),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return s
}

// Addr is the address served.
func (s *HTTPServer) Addr() net.Addr { return s.ln.Addr() }

// Close stops serving: requests under way get up to a second to finish,
// then every connection is closed. It returns when the server's goroutine
// has ended.
func (s *HTTPServer) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
	})
	<-s.done
	return nil
}

// handler routes the metrics port's paths.
func (m *Metrics) handler(node *replication.Node) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		MaxRequestsInFlight: defaultLimits.maxScrapes,
		Timeout:             defaultLimits.scrapeTimeout,
	}))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		if err := node.Err(); err != nil {
			answer(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		answer(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := notReady(r.Context(), node); why != "" {
			answer(w, http.StatusServiceUnavailable, why)
			return
		}
		answer(w, http.StatusOK, "ok")
	})
	return mux
}

// notReady returns why node is not ready, or "" when it is.
func notReady(ctx context.Context, node *replication.Node) string {
	if err := node.Err(); err != nil {
		return err.Error()
	}
	if node.Status().Leader == 0 {
		return "no leader known"
	}
	ctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	switch err := node.WaitApplied(ctx); {
	case err == nil:
		return ""
	case errors.Is(err, replication.ErrStale):
		return "no recent contact with a leader"
	case errors.Is(err, context.DeadlineExceeded):
		st := node.Status()
		return fmt.Sprintf("catching up: applied index %d, commit index %d", st.Applied, st.Commit)
	default:
		return err.Error()
	}
}

// answer writes a one-line plain-text reply.
func answer(w http.ResponseWriter, code int, line string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, line)
}
