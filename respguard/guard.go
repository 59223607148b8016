package respguard

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// Defaults for zero Limits fields.
const (
	DefaultMaxMultibulk   = 1024
	DefaultMaxBulk        = 512 << 10
	DefaultMaxInline      = 64 << 10
	DefaultMaxCommand     = 1 << 20
	DefaultPartialTimeout = 30 * time.Second
)

const (
	// maxNumberLine bounds the bytes between '*' or '$' and "\r\n"
	// (sign, digits and leading zeros).
	maxNumberLine = 32
	// errorWriteTimeout bounds the write of the error line after a violation.
	errorWriteTimeout = time.Second
	// keepStash is the largest held-back buffer kept for reuse once drained.
	keepStash = 64 << 10
)

// Limits bound what one connection may send. Zero fields take the defaults.
//
// An inline command may hold fewer than MaxMultibulk separators (spaces and
// quote characters): redcon's inline splitter allocates a buffer as long as
// the rest of the line for each of them, so MaxInline*MaxMultibulk bounds the
// bytes it allocates per inline line.
type Limits struct {
	MaxMultibulk   int           // max array count of one command; default 1024 (Redis allows 1M; lockd commands are short)
	MaxBulk        int           // max length of one bulk string; default 512 KiB
	MaxInline      int           // max length of one inline command line; default 64 KiB
	MaxCommand     int           // max total bytes of one command (all its frames); default 1 MiB
	PartialTimeout time.Duration // a command that has started must complete within this, or the conn is closed; default 30s. Negative disables.
}

// WithDefaults returns l with every zero or negative size, and a zero
// PartialTimeout, replaced by its default. A negative PartialTimeout is kept.
func (l Limits) WithDefaults() Limits {
	if l.MaxMultibulk <= 0 {
		l.MaxMultibulk = DefaultMaxMultibulk
	}
	if l.MaxBulk <= 0 {
		l.MaxBulk = DefaultMaxBulk
	}
	if l.MaxInline <= 0 {
		l.MaxInline = DefaultMaxInline
	}
	if l.MaxCommand <= 0 {
		l.MaxCommand = DefaultMaxCommand
	}
	if l.PartialTimeout == 0 {
		l.PartialTimeout = DefaultPartialTimeout
	}
	return l
}

// ErrProtocol is wrapped by the error Read returns after a violation.
var ErrProtocol = errors.New("respguard: protocol error")

// Wrap returns a conn whose Read enforces l (after WithDefaults); all other
// methods delegate to c, with read deadlines combined as the package doc says.
func Wrap(c net.Conn, l Limits) net.Conn {
	l = l.WithDefaults()
	return &conn{Conn: c, lim: l, sc: scanner{lim: l}}
}

type conn struct {
	net.Conn
	lim Limits

	// Owned by the goroutine in Read.
	sc       scanner
	stash    []byte    // scanned bytes of a partial command, held back
	soff     int       // stash[soff:] is not yet returned
	pending  string    // violation to report on the next Read
	err      error     // sticky error after a violation
	cmdStart time.Time // when the current partial command was first read

	mu      sync.Mutex
	user    time.Time // read deadline set by the caller
	partial time.Time // deadline of the current partial command; zero when none
	armed   time.Time // read deadline set on Conn
}

// NetConn returns the connection c wraps (as tls.Conn's NetConn does).
func (c *conn) NetConn() net.Conn { return c.Conn }

// Read reads from the underlying conn into p and returns the bytes that are
// within the limits. See the package doc.
func (c *conn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.pending != "" {
		return 0, c.fail(c.pending)
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	if c.soff < len(c.stash) {
		n = copy(p, c.stash[c.soff:])
		c.soff += n
		if c.soff < len(c.stash) {
			return n, nil
		}
		c.dropStash()
		if n == len(p) {
			return n, nil
		}
	}
	for {
		if err := c.arm(); err != nil {
			return n, err
		}
		m, err := c.Conn.Read(p[n:])
		if m > 0 {
			last, reason := c.sc.scan(p[n : n+m])
			if reason != "" {
				if last < 0 {
					return 0, c.fail(reason)
				}
				c.pending = reason
				return n + last, nil
			}
			if c.sc.started && c.sc.st != stIdle {
				c.cmdStart = time.Now()
			}
			total := n + m
			if err == nil && last >= 0 && n+last < total {
				c.stash = append(c.stash[:0], p[n+last:total]...)
				c.soff = 0
				return n + last, nil
			}
			n = total
		}
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		switch c.expired() {
		case expiredUser:
			return n, err
		case expiredPartial:
			if n > 0 {
				return n, nil // the next Read reports the timeout
			}
			c.err = fmt.Errorf("%w: command not completed within %v", ErrProtocol, c.lim.PartialTimeout)
			return 0, c.err
		default:
			if n > 0 {
				return n, nil
			}
		}
	}
}

// SetReadDeadline sets the caller's read deadline; the underlying conn gets
// the earlier of it and the current partial-command deadline.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.user = t
	want := earliest(t, c.partial)
	if err := c.Conn.SetReadDeadline(want); err != nil {
		return err
	}
	c.armed = want
	return nil
}

// SetDeadline is SetWriteDeadline and SetReadDeadline.
func (c *conn) SetDeadline(t time.Time) error {
	werr := c.Conn.SetWriteDeadline(t)
	rerr := c.SetReadDeadline(t)
	if werr != nil {
		return werr
	}
	return rerr
}

func (c *conn) dropStash() {
	c.soff = 0
	if cap(c.stash) > keepStash {
		c.stash = nil
	} else {
		c.stash = c.stash[:0]
	}
}

// fail makes reason the sticky error and writes it to the peer.
func (c *conn) fail(reason string) error {
	c.pending = ""
	c.err = fmt.Errorf("%w: %s", ErrProtocol, reason)
	_ = c.Conn.SetWriteDeadline(time.Now().Add(errorWriteTimeout))
	_, _ = c.Conn.Write([]byte("-ERR Protocol error: " + reason + "\r\n"))
	return c.err
}

// arm sets the underlying read deadline for the next Read of Conn. An
// earlier deadline armed for a previous partial command is left in place:
// its expiry is classified as spurious by expired.
func (c *conn) arm() error {
	var pd time.Time
	if c.lim.PartialTimeout > 0 && c.sc.st != stIdle {
		pd = c.cmdStart.Add(c.lim.PartialTimeout)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = pd
	want := earliest(c.user, pd)
	if want.Equal(c.armed) {
		return nil
	}
	if !c.armed.IsZero() && !c.armed.Equal(c.user) && (want.IsZero() || c.armed.Before(want)) {
		return nil
	}
	if err := c.Conn.SetReadDeadline(want); err != nil {
		return err
	}
	c.armed = want
	return nil
}

type expiry int

const (
	expiredSpurious expiry = iota // no deadline has passed; rearmed
	expiredUser                   // the caller's deadline passed
	expiredPartial                // the partial-command deadline passed
)

// expired classifies a timeout of the underlying Read and, if it was
// spurious, arms the exact deadline.
func (c *conn) expired() expiry {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.user.IsZero() && !now.Before(c.user) {
		return expiredUser
	}
	if !c.partial.IsZero() && !now.Before(c.partial) {
		return expiredPartial
	}
	want := earliest(c.user, c.partial)
	if err := c.Conn.SetReadDeadline(want); err == nil {
		c.armed = want
	}
	return expiredSpurious
}

// earliest returns the earlier of two deadlines, where zero means none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

type state uint8

const (
	stIdle      state = iota // at a command boundary
	stInline                 // in an inline line, before '\n'
	stCount                  // after '*', before "\r\n"
	stBulkStart              // expecting '$'
	stBulkLen                // after '$', before "\r\n"
	stBody                   // in a bulk payload
	stBodyCR                 // expecting '\r' after a payload
	stBodyLF                 // expecting '\n' after a payload
)

// scanner tracks RESP framing the way redcon v1.6.4 frames commands: lines
// end in "\r\n" inside multibulk commands and in '\n' for inline ones;
// numbers are what strconv.Atoi accepts.
type scanner struct {
	lim     Limits
	st      state
	started bool // a command started during the last scan
	cmd     int  // bytes of the current command so far
	line    int  // bytes of the current line so far, excluding its prefix
	seps    int  // separators in the current inline line
	cr      bool // the current number line ended in '\r'
	neg     bool // the current number has a '-' sign
	digits  int  // digits in the current number
	val     int  // value of the current number, capped above its limit
	bulks   int  // bulk frames left in the current command
	body    int  // payload bytes left in the current bulk
}

// scan consumes b. It returns the offset just past the last command boundary
// in b (-1 if none) and, on a violation, its reason; scanning stops at the
// first violation and the scanner must not be used again.
func (s *scanner) scan(b []byte) (last int, reason string) {
	last = -1
	s.started = false
	for i := 0; i < len(b); {
		switch s.st {
		case stIdle:
			s.started = true
			s.cmd = 0
			if b[i] == '*' {
				s.startNumber(stCount)
				s.cmd++
				i++
			} else {
				s.st = stInline
				s.line, s.seps = 0, 0
			}
		case stInline:
			c := b[i]
			i++
			s.cmd++
			if c == '\n' {
				s.st = stIdle
				last = i
				break
			}
			if s.line++; s.line > s.lim.MaxInline {
				return last, "too big inline request"
			}
			if c == ' ' || c == '"' || c == '\'' {
				if s.seps++; s.seps >= s.lim.MaxMultibulk {
					return last, "too many arguments in inline request"
				}
			}
		case stCount, stBulkLen:
			c := b[i]
			i++
			s.cmd++
			if c == '\n' {
				if r := s.endNumber(); r != "" {
					return last, r
				}
				if s.st == stIdle {
					last = i
				}
				break
			}
			if r := s.numberByte(c); r != "" {
				return last, r
			}
		case stBulkStart:
			if b[i] != '$' {
				return last, "expected '$', got '" + printable(b[i]) + "'"
			}
			s.startNumber(stBulkLen)
			s.cmd++
			i++
		case stBody:
			k := min(s.body, len(b)-i)
			i += k
			s.cmd += k
			s.body -= k
			if s.body == 0 {
				s.st = stBodyCR
			}
		case stBodyCR:
			if b[i] != '\r' {
				return last, "invalid bulk length"
			}
			s.st = stBodyLF
			s.cmd++
			i++
		case stBodyLF:
			if b[i] != '\n' {
				return last, "invalid bulk length"
			}
			s.cmd++
			i++
			s.bulks--
			if s.bulks == 0 {
				s.st = stIdle
				last = i
			} else {
				s.st = stBulkStart
			}
		}
		if s.cmd > s.lim.MaxCommand {
			return last, "command too large"
		}
	}
	return last, ""
}

func (s *scanner) startNumber(st state) {
	s.st = st
	s.line, s.digits, s.val = 0, 0, 0
	s.cr, s.neg = false, false
}

// numberByte consumes one byte of a number line other than its '\n'.
func (s *scanner) numberByte(c byte) string {
	s.line++
	switch {
	case s.line > maxNumberLine:
		if s.st == stCount {
			return "too big mbulk count string"
		}
		return "too big bulk count string"
	case s.cr:
		return s.invalid()
	case c == '\r':
		s.cr = true
	case (c == '+' || c == '-') && s.line == 1:
		s.neg = c == '-'
	case c >= '0' && c <= '9':
		s.digits++
		s.val = s.val*10 + int(c-'0')
		if s.val > s.maxVal() {
			return s.invalid()
		}
	default:
		return s.invalid()
	}
	return ""
}

// maxVal is the largest magnitude the current number may have.
func (s *scanner) maxVal() int {
	switch {
	case s.st == stCount && s.neg:
		return 1 // "*-1" is an empty command
	case s.st == stCount:
		return s.lim.MaxMultibulk
	case s.neg:
		return 0 // "$-0" is an empty bulk to strconv.Atoi
	default:
		return s.lim.MaxBulk
	}
}

// endNumber completes a number line at its '\n'.
func (s *scanner) endNumber() string {
	if !s.cr || s.digits == 0 {
		return s.invalid()
	}
	if s.st == stCount {
		if s.val == 0 || s.neg {
			s.st = stIdle // "*0" and "*-1": empty command
			return ""
		}
		s.bulks = s.val
		s.st = stBulkStart
		return ""
	}
	if s.cmd+s.val+2 > s.lim.MaxCommand {
		return "command too large"
	}
	s.body = s.val
	s.st = stBody
	if s.body == 0 {
		s.st = stBodyCR
	}
	return ""
}

func (s *scanner) invalid() string {
	if s.st == stCount {
		return "invalid multibulk length"
	}
	return "invalid bulk length"
}

// printable renders c for an error line, which must hold no CR or LF.
func printable(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return string(rune(c))
	}
	const hex = "0123456789abcdef"
	return `\x` + string(hex[c>>4]) + string(hex[c&0xf])
}
