package replication

import (
	"context"
	"errors"
	"io"
	"math/rand"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// memNet is an in-memory network of stream connections for replication
// tests, in the style of etcd-io/raft's rafttest: nodes listen on names
// (Config.Listener is memNet.listen's, Config.Dial memNet.dialer's), and the
// test breaks the links between them.
//
// Concurrency: every method may be called from any goroutine, and a fault
// set by the test takes effect at once on every connection, blocked reads
// and writes included. A memNet starts no goroutine of its own; its
// connections' waits end with their deadlines or their Close.
//
// Faults are per direction, from one node's address to another's, and model
// what a TCP stream shows under them:
//
//   - cut (one-way), partition (both ways), isolate (a node from all): bytes
//     written across a cut link fill the connection's buffer (bufBytes, as a
//     socket's send buffer) and then block the writer until its deadline,
//     as TCP does; nothing is delivered, and no error either, until the link
//     heals, when the buffered bytes arrive late and in order (TCP's
//     retransmission). A Close across a cut is heard after the heal too. A
//     new connection needs both directions: a dial across a cut blocks
//     until its context ends (a SYN or SYN-ACK that never arrives).
//   - delay: bytes written become readable d later; a link never lets later
//     bytes overtake earlier ones. A stream cannot reorder within itself, so
//     reordering is modelled as delaying one link relative to another: what
//     a node sends to b after what it sends to c may reach b first.
//   - drop (the next n Writes, or each Write with a probability drawn from
//     the memNet's seeded rand): the Write reports success and its bytes
//     vanish. The Write is the unit of loss because the peer transport
//     writes whole frames per Write (batches of RAFT and FORWARD frames, a
//     handshake message), so a drop loses whole frames and leaves the
//     stream readable, as rafttest drops messages; a frame split over
//     Writes (a snapshot's chunks) is damaged instead, which the reader
//     refuses as it would a broken connection. The seed fixes the sequence
//     of draws, not which Write meets which draw: the goroutines' schedule
//     decides that.
//
// A connection whose other end was closed refuses writes at once (as after
// an RST), cut or not; these tests close nodes only with their network
// healed.
type memNet struct {
	bufBytes int // per direction of a connection

	mu        sync.Mutex
	listeners map[string]*memListener
	faults    map[memLink]memFault
	rng       *rand.Rand
	changed   chan struct{} // closed and replaced when a fault changes
}

// memLink is one direction between two node addresses.
type memLink struct{ from, to string }

type memFault struct {
	cut      bool
	delay    time.Duration
	dropNext int
	dropRate float64
}

func newMemNet(seed int64) *memNet {
	return &memNet{
		bufBytes:  64 << 10,
		listeners: map[string]*memListener{},
		faults:    map[memLink]memFault{},
		rng:       rand.New(rand.NewSource(seed)),
		changed:   make(chan struct{}),
	}
}

// update changes the fault of the link from -> to and wakes every waiter.
func (n *memNet) update(from, to string, f func(*memFault)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.updateLocked(from, to, f)
	n.wakeLocked()
}

func (n *memNet) updateLocked(from, to string, f func(*memFault)) {
	l := memLink{from, to}
	x := n.faults[l]
	f(&x)
	n.faults[l] = x
}

func (n *memNet) wakeLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// cut stops the link from -> to (one way).
func (n *memNet) cut(from, to string) {
	n.update(from, to, func(f *memFault) { f.cut = true })
}

// partition cuts the links between a and b both ways.
func (n *memNet) partition(a, b string) {
	n.cut(a, b)
	n.cut(b, a)
}

// isolate cuts every link to and from node.
func (n *memNet) isolate(node string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for other := range n.listeners {
		if other != node {
			n.updateLocked(node, other, func(f *memFault) { f.cut = true })
			n.updateLocked(other, node, func(f *memFault) { f.cut = true })
		}
	}
	n.wakeLocked()
}

// delay makes the bytes written on the link from -> to readable d later.
func (n *memNet) delay(from, to string, d time.Duration) {
	n.update(from, to, func(f *memFault) { f.delay = d })
}

// dropNext drops the next count Writes on the link from -> to.
func (n *memNet) dropNext(from, to string, count int) {
	n.update(from, to, func(f *memFault) { f.dropNext = count })
}

// dropAll drops each Write on every link between listening nodes with
// probability rate.
func (n *memNet) dropAll(rate float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for a := range n.listeners {
		for b := range n.listeners {
			if a != b {
				n.updateLocked(a, b, func(f *memFault) { f.dropRate = rate })
			}
		}
	}
	n.wakeLocked()
}

// heal clears every fault; bytes held by a cut or a delay flow again.
func (n *memNet) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = map[memLink]memFault{}
	n.wakeLocked()
}

// fault returns the link's fault and a channel closed when any fault
// changes.
func (n *memNet) fault(l memLink) (memFault, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.faults[l], n.changed
}

// drop decides whether the next Write on l is lost.
func (n *memNet) drop(l memLink) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	f := n.faults[l]
	switch {
	case f.dropNext > 0:
		f.dropNext--
		n.faults[l] = f
		return true
	case f.dropRate > 0:
		return n.rng.Float64() < f.dropRate
	}
	return false
}

// listen returns the listener of node address addr; its Close frees the
// address.
func (n *memNet) listen(addr string) net.Listener {
	n.mu.Lock()
	defer n.mu.Unlock()
	ln := &memListener{n: n, addr: addr, conns: make(chan *memConn, 16), closed: make(chan struct{})}
	n.listeners[addr] = ln
	return ln
}

// dialer returns the Dial of node address from.
func (n *memNet) dialer(from string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		fail := func(err error) error { return &net.OpError{Op: "dial", Net: "mem", Addr: memAddr(addr), Err: err} }
		for {
			n.mu.Lock()
			ln := n.listeners[addr]
			cut := n.faults[memLink{from, addr}].cut || n.faults[memLink{addr, from}].cut
			changed := n.changed
			n.mu.Unlock()
			if ln == nil {
				return nil, fail(syscall.ECONNREFUSED)
			}
			if !cut {
				client, server := n.pair(from, addr)
				select {
				case ln.conns <- server:
					return client, nil
				case <-ln.closed:
					return nil, fail(syscall.ECONNREFUSED)
				case <-ctx.Done():
					return nil, fail(ctx.Err())
				}
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return nil, fail(ctx.Err())
			}
		}
	}
}

// pair returns the two ends of a connection from a to b.
func (n *memNet) pair(a, b string) (*memConn, *memConn) {
	ab := &memPipe{link: memLink{a, b}, wake: make(chan struct{})}
	ba := &memPipe{link: memLink{b, a}, wake: make(chan struct{})}
	return newMemConn(n, ba, ab, a, b), newMemConn(n, ab, ba, b, a)
}

// memAddr is a node address on a memNet.
type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

// memListener is a node's listener on a memNet.
//
// Concurrency: as net.Listener's.
type memListener struct {
	n         *memNet
	addr      string
	conns     chan *memConn
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, &net.OpError{Op: "accept", Net: "mem", Addr: memAddr(l.addr), Err: net.ErrClosed}
	}
}

func (l *memListener) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		l.n.mu.Lock()
		if l.n.listeners[l.addr] == l {
			delete(l.n.listeners, l.addr)
		}
		l.n.mu.Unlock()
	})
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr(l.addr) }

// memPipe is one direction of a connection: the bytes written and not yet
// read, each chunk readable from its time on.
type memPipe struct {
	link memLink

	mu      sync.Mutex
	chunks  []memChunk
	size    int       // bytes in chunks
	last    time.Time // when the last chunk becomes readable
	wclosed bool      // the writing end closed: EOF after the bytes
	rclosed bool      // the reading end closed: writes fail
	wake    chan struct{}
}

type memChunk struct {
	data []byte
	at   time.Time
}

// signalLocked wakes the pipe's waiters; p.mu is held.
func (p *memPipe) signalLocked() {
	close(p.wake)
	p.wake = make(chan struct{})
}

// memConn is one end of a memNet connection.
//
// Concurrency: as net.Conn's: one Read and one Write may run at once, and
// Close and the deadlines may be set from any goroutine; a Close or a
// deadline ends a blocked Read or Write.
type memConn struct {
	n             *memNet
	r, w          *memPipe
	local, remote string

	mu        sync.Mutex
	rdl, wdl  time.Time
	dlChanged chan struct{} // closed and replaced when a deadline changes
	closed    chan struct{}
	closeOnce sync.Once
}

func newMemConn(n *memNet, r, w *memPipe, local, remote string) *memConn {
	return &memConn{n: n, r: r, w: w, local: local, remote: remote, dlChanged: make(chan struct{}), closed: make(chan struct{})}
}

func (c *memConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "mem", Source: memAddr(c.local), Addr: memAddr(c.remote), Err: err}
}

// deadline returns the read or write deadline and a channel closed when a
// deadline changes.
func (c *memConn) deadline(write bool) (time.Time, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if write {
		return c.wdl, c.dlChanged
	}
	return c.rdl, c.dlChanged
}

// wait blocks until the pipe, the network or a deadline changes, dl or
// until passes (zero: none), or c closes.
func (c *memConn) wait(until, dl time.Time, pipeWake, netChanged, dlChanged <-chan struct{}) {
	if until.IsZero() || (!dl.IsZero() && dl.Before(until)) {
		until = dl
	}
	var timeout <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-pipeWake:
	case <-netChanged:
	case <-dlChanged:
	case <-c.closed:
	case <-timeout:
	}
}

func (c *memConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *memConn) Read(b []byte) (int, error) {
	p := c.r
	for {
		if c.isClosed() {
			return 0, c.opErr("read", net.ErrClosed)
		}
		dl, dlChanged := c.deadline(false)
		now := time.Now()
		if !dl.IsZero() && !now.Before(dl) {
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
		f, netChanged := c.n.fault(p.link)
		var until time.Time
		p.mu.Lock()
		if !f.cut {
			n := 0
			for len(p.chunks) > 0 && n < len(b) && !p.chunks[0].at.After(now) {
				k := copy(b[n:], p.chunks[0].data)
				n += k
				if p.chunks[0].data = p.chunks[0].data[k:]; len(p.chunks[0].data) == 0 {
					p.chunks = p.chunks[1:]
				}
			}
			if n > 0 || len(b) == 0 {
				p.size -= n
				p.signalLocked()
				p.mu.Unlock()
				return n, nil
			}
			if len(p.chunks) > 0 {
				until = p.chunks[0].at
			} else if p.wclosed {
				p.mu.Unlock()
				return 0, io.EOF
			}
		}
		pipeWake := p.wake
		p.mu.Unlock()
		c.wait(until, dl, pipeWake, netChanged, dlChanged)
	}
}

func (c *memConn) Write(b []byte) (int, error) {
	p := c.w
	if c.isClosed() {
		return 0, c.opErr("write", net.ErrClosed)
	}
	if c.n.drop(p.link) {
		return len(b), nil
	}
	written := 0
	for written < len(b) {
		if c.isClosed() {
			return written, c.opErr("write", net.ErrClosed)
		}
		dl, dlChanged := c.deadline(true)
		now := time.Now()
		if !dl.IsZero() && !now.Before(dl) {
			return written, c.opErr("write", os.ErrDeadlineExceeded)
		}
		f, netChanged := c.n.fault(p.link)
		p.mu.Lock()
		if p.rclosed {
			p.mu.Unlock()
			return written, c.opErr("write", syscall.ECONNRESET)
		}
		if room := c.n.bufBytes - p.size; room > 0 {
			k := min(room, len(b)-written)
			at := now.Add(f.delay)
			if at.Before(p.last) {
				at = p.last
			}
			p.last = at
			p.chunks = append(p.chunks, memChunk{data: append([]byte(nil), b[written:written+k]...), at: at})
			p.size += k
			written += k
			p.signalLocked()
			p.mu.Unlock()
			continue
		}
		pipeWake := p.wake
		p.mu.Unlock()
		c.wait(time.Time{}, dl, pipeWake, netChanged, dlChanged)
	}
	return written, nil
}

// Close ends both directions: the other end reads what was written, then
// EOF, and its writes fail.
func (c *memConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		for _, p := range []*memPipe{c.r, c.w} {
			p.mu.Lock()
			if p == c.w {
				p.wclosed = true
			} else {
				p.rclosed = true
			}
			p.signalLocked()
			p.mu.Unlock()
		}
	})
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return memAddr(c.local) }
func (c *memConn) RemoteAddr() net.Addr { return memAddr(c.remote) }

func (c *memConn) SetDeadline(t time.Time) error {
	c.setDeadline(&c.rdl, t)
	c.setDeadline(&c.wdl, t)
	return nil
}

func (c *memConn) SetReadDeadline(t time.Time) error {
	c.setDeadline(&c.rdl, t)
	return nil
}

func (c *memConn) SetWriteDeadline(t time.Time) error {
	c.setDeadline(&c.wdl, t)
	return nil
}

func (c *memConn) setDeadline(dl *time.Time, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*dl = t
	close(c.dlChanged)
	c.dlChanged = make(chan struct{})
}

// memConnPair dials b from a on n and returns both ends, closed when the
// test ends.
func memConnPair(t testing.TB, n *memNet, a, b string) (net.Conn, net.Conn) {
	t.Helper()
	ln := n.listen(b)
	t.Cleanup(func() { ln.Close() })
	client, err := n.dialer(a)(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// readN reads exactly len(want) bytes from c within d and compares them.
func readN(t testing.TB, c net.Conn, want string, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}
}

func TestMemNetSemantics(t *testing.T) {
	t.Run("a cut link buffers, then blocks the writer to its deadline, and delivers in order after the heal", func(t *testing.T) {
		n := newMemNet(1)
		n.bufBytes = 8
		a, b := memConnPair(t, n, "a", "b")
		n.cut("a", "b")
		a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		k, err := a.Write([]byte("0123456789"))
		if k != 8 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write across a cut = %d, %v; want 8 buffered, then a timeout", k, err)
		}
		b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if k, err := b.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read across a cut = %d, %v; want a timeout", k, err)
		}
		// The other direction still works.
		if _, err := b.Write([]byte("back")); err != nil {
			t.Fatal(err)
		}
		readN(t, a, "back", time.Second)
		n.heal()
		readN(t, b, "01234567", time.Second)
	})
	t.Run("a partition holds both directions until the heal", func(t *testing.T) {
		n := newMemNet(1)
		a, b := memConnPair(t, n, "a", "b")
		n.partition("a", "b")
		a.Write([]byte("to b"))
		b.Write([]byte("to a"))
		for _, c := range []net.Conn{a, b} {
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if k, err := c.Read(make([]byte, 4)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read across a partition = %d, %v; want a timeout", k, err)
			}
		}
		n.heal()
		readN(t, b, "to b", time.Second)
		readN(t, a, "to a", time.Second)
	})
	t.Run("a dial across a one-way cut blocks until its context ends", func(t *testing.T) {
		n := newMemNet(1)
		n.listen("b")
		n.cut("b", "a")
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if c, err := n.dialer("a")(ctx, "b"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("dial across a cut = %v, %v; want the context's deadline", c, err)
		}
		if _, err := n.dialer("a")(context.Background(), "nobody"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial of an address nobody listens on = %v; want ECONNREFUSED", err)
		}
	})
	t.Run("a delayed link holds its bytes for the delay, and holds no other link", func(t *testing.T) {
		n := newMemNet(1)
		ab, b := memConnPair(t, n, "a", "b")
		ac, c := memConnPair(t, n, "a", "c")
		const d = 200 * time.Millisecond
		n.delay("a", "b", d)
		sent := time.Now()
		ab.Write([]byte("first"))
		ac.Write([]byte("second"))
		readN(t, c, "second", time.Second)
		readN(t, b, "first", time.Second)
		if took := time.Since(sent); took < d {
			t.Fatalf("bytes delayed by %v arrived after %v", d, took)
		}
	})
	t.Run("dropNext loses whole Writes, and the stream goes on", func(t *testing.T) {
		n := newMemNet(1)
		a, b := memConnPair(t, n, "a", "b")
		n.dropNext("a", "b", 2)
		for _, w := range []string{"lost1", "lost2", "kept"} {
			if k, err := a.Write([]byte(w)); k != len(w) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", w, k, err)
			}
		}
		readN(t, b, "kept", time.Second)
	})
	t.Run("Close ends blocked reads, and the other end reads EOF after the bytes", func(t *testing.T) {
		n := newMemNet(1)
		a, b := memConnPair(t, n, "a", "b")
		done := make(chan error, 1)
		go func() {
			_, err := a.Read(make([]byte, 1))
			done <- err
		}()
		b.Write([]byte("x"))
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		b.Write([]byte("tail"))
		b.Close()
		readN(t, a, "tail", time.Second)
		if _, err := a.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("Read after the other end closed = %v; want EOF", err)
		}
		if _, err := a.Write([]byte("y")); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("Write after the other end closed = %v; want ECONNRESET", err)
		}
		go func() {
			_, err := b.Read(make([]byte, 1))
			done <- err
		}()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed end = %v; want net.ErrClosed", err)
		}
	})
}
