// Package respguard bounds what a client may send on a RESP connection before
// github.com/tidwall/redcon parses it.
//
// redcon v1.6.4 enforces no limits: a multibulk header with a huge count makes
// its connection goroutine spin forever, and its read buffer grows with
// whatever arrives. Wrap returns a net.Conn whose Read tracks RESP framing as
// redcon does (multibulk "*<n>\r\n" followed by n "$<len>\r\n<len bytes>\r\n"
// frames, or an inline line ending in '\n'), enforces Limits, and on a
// violation writes "-ERR Protocol error: <reason>\r\n" to the underlying conn
// and returns an error wrapping ErrProtocol from that Read and every later
// one. A command that has started but not completed within
// Limits.PartialTimeout fails the same way, without a reply. Bytes that are
// within the limits pass through unchanged and in order; a violating command
// is never passed on, the complete commands before it are.
//
// Read returns data ending at a command boundary whenever the caller's buffer
// holds the whole command, holding back the partial command that follows
// until more of it arrives. redcon grows its buffer whenever a read fills it
// and ends inside a command, so without this a fast pipelining client makes
// that buffer double without bound.
//
// Ownership: the wrapped conn owns its framing state and the bytes held back;
// the caller keeps owning the underlying conn and must Close it after Read
// returns an error (redcon does). The guard never closes it.
//
// Concurrency: Read must be called by one goroutine at a time. Write, Close,
// LocalAddr, RemoteAddr, SetWriteDeadline, SetReadDeadline and SetDeadline
// may be called from any goroutine, concurrently with Read, as on any
// net.Conn. The guard owns the underlying read deadline: SetReadDeadline
// records the caller's deadline and the guard arms the earlier of it and the
// partial-command deadline. After a violation the guard sets a short write
// deadline on the underlying conn to write the error line.
package respguard
