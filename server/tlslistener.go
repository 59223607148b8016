package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// tlsListener accepts TLS clients. It takes TCP connections from the
// listener under it and completes each one's handshake on a goroutine of its
// own, within timeout; Accept returns the connections whose handshake
// succeeded, which the server then wraps like plaintext ones (wire guard,
// idle and write timeouts, max clients). A connection whose handshake fails
// or does not finish in time is closed without reaching the server: it
// never takes a client slot, and its goroutine ends by the timeout at the
// latest. At most maxPending handshakes run at once; a connection past that
// is closed at once (and logged, at most once a second).
//
// Concurrency: Accept is called by one goroutine, redcon's accept loop;
// Close may be called from any goroutine, more than once. The listener's
// goroutines (its accept loop and one per handshake under way) stop when
// Close is called: it closes the listener under it, cancels the handshakes
// and returns once they are all done.
type tlsListener struct {
	net.Listener
	config  *tls.Config
	timeout time.Duration
	log     *slog.Logger

	pending chan struct{}  // a token per handshake under way
	ready   chan *tls.Conn // handshakes done, for Accept
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once

	// Connections closed because too many handshakes were under way, not
	// yet logged, and when that was last logged: the accept loop's own.
	refused    int
	lastWarned time.Time
}

func newTLSListener(ln net.Listener, config *tls.Config, timeout time.Duration, maxPending int, log *slog.Logger) *tlsListener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &tlsListener{
		Listener: ln,
		config:   config,
		timeout:  timeout,
		log:      log,
		pending:  make(chan struct{}, maxPending),
		ready:    make(chan *tls.Conn),
		ctx:      ctx,
		cancel:   cancel,
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// Accept returns the next client whose handshake succeeded.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.ctx.Done():
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	}
}

// Close stops accepting and ends the handshakes under way.
func (l *tlsListener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.Listener.Close()
		l.wg.Wait()
	})
	return err
}

func (l *tlsListener) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.ctx.Err() != nil {
				return
			}
			// Out of file descriptors, say: try again a little later.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Error("tls: accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-l.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		select {
		case l.pending <- struct{}{}:
		default:
			c.Close()
			if l.refused++; time.Since(l.lastWarned) >= time.Second { // a flood is not logged line by line
				l.log.Warn("tls: too many handshakes under way; connections closed", "count", l.refused, "last", c.RemoteAddr().String())
				l.refused, l.lastWarned = 0, time.Now()
			}
			continue
		}
		l.wg.Add(1)
		go l.handshake(c)
	}
}

// handshake completes c's TLS handshake within the timeout and hands the
// connection to Accept, or closes it.
func (l *tlsListener) handshake(c net.Conn) {
	defer l.wg.Done()
	tc := tls.Server(c, l.config)
	ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
	err := tc.HandshakeContext(ctx) // closes c when ctx ends first
	cancel()
	// The handshake is over: its token is free before the connection
	// reaches Accept, so a client that has been answered no longer counts.
	<-l.pending
	if err != nil {
		l.log.Debug("tls: handshake failed", "addr", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	select {
	case l.ready <- tc:
	case <-l.ctx.Done():
		c.Close()
	}
}
