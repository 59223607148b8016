package server

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// errProtectedMode is what a client from another host hears when the node
// runs in protected mode: Redis's words, with lockd's ways out.
var errProtectedMode = errors.New("DENIED lockd is running in protected mode because protected mode is enabled " +
	"and no password is set for the default user. In this mode connections are only accepted from the loopback " +
	"interface. If you want to connect from external computers to lockd you may adopt one of the following " +
	"solutions: 1) Set a password for the default user with --requirepass. 2) Restart lockd with the " +
	"'--protected-mode no' option, and MAKE SURE it is not publicly accessible from the internet if you do so.")

// protectedRefuses reports whether protected mode refuses a client that
// connects from addr: it does when protected mode is on, the default user
// is on and takes no password (no --requirepass, no ACL SETUSER default >...),
// and addr is neither 127.0.0.1 nor ::1. As in Redis 7, other addresses of
// the loopback network (127.0.0.2, ...) do not count as local, and the
// address the node listens on does not matter.
func (s *Server) protectedRefuses(addr net.Addr) bool {
	if s.cfg.Unprotected || !s.defaultOpen() {
		return false
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return false // not a network peer (a pipe in a test)
	}
	return !tcp.IP.Equal(net.IPv4(127, 0, 0, 1)) && !tcp.IP.Equal(net.IPv6loopback)
}

// denials tells refused connections why, each on a goroutine of its own:
// it writes the error, shuts its side down and reads what the client sends
// (at most denyRead bytes) until the client closes or denyLinger passes,
// and only then closes. Closing a socket that has unread input resets the
// connection, and a client that had already sent its first command (as
// every client library does at once) would then read the reset, not the
// error. At most maxDenials connections linger at once; past that one is
// closed at once, so a flood costs a bounded number of goroutines.
//
// Concurrency: deny is called by the accept loops; wait, by Close once they
// have stopped, returns when the lingering connections are closed.
type denials struct {
	sem chan struct{} // a token per lingering refusal; made by New
	wg  sync.WaitGroup
}

const (
	maxDenials = 64
	denyLinger = time.Second
	denyRead   = 64 << 10
)

func (d *denials) deny(c net.Conn, err error) {
	select {
	case d.sem <- struct{}{}:
	default:
		c.Close()
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() { <-d.sem }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(denyLinger))
		if _, err := c.Write([]byte("-" + err.Error() + "\r\n")); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, denyRead))
	}()
}

func (d *denials) wait() { d.wg.Wait() }
