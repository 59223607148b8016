package respguard

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/tidwall/redcon"
)

// FuzzGuard feeds arbitrary bytes through Wrap in arbitrary chunks: the guard
// must not panic, must pass a prefix of the input (all of it unless it
// reports ErrProtocol), must report the same violation however the input is
// split, and redcon must parse what passes without hanging.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{
		mb("PING"), mb("ECHO", "a\r\nb") + "PING\r\n", "SET k \"a b\"\n\n",
		"*0\r\n*-1\r\n$-0\r\n", "*4611686018427387904\r\n", "*1\r\n$2147483648\r\n",
		"*1\r\n+x\r\n", "*1\r\n$3\r\nabcde", strings.Repeat("a ", 40) + "\n",
		"*" + strings.Repeat("0", 40) + "\r\n", "\x00\xff*\r\n$",
	} {
		f.Add([]byte(s), uint8(0), uint8(0))
		f.Add([]byte(s), uint8(1), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk, buf uint8) {
		for _, lim := range []Limits{{}, {MaxMultibulk: 3, MaxBulk: 8, MaxInline: 16, MaxCommand: 40}} {
			whole := &fakeConn{in: in}
			wout, werr := pump(t, Wrap(whole, lim), 1<<16)
			split := &fakeConn{in: in, chunk: int(chunk % 17)}
			sout, serr := pump(t, Wrap(split, lim), 1+int(buf))

			for _, r := range []struct {
				out     []byte
				err     error
				written string
			}{{wout, werr, whole.written()}, {sout, serr, split.written()}} {
				if !bytes.HasPrefix(in, r.out) {
					t.Fatalf("passed %q, not a prefix of the input", r.out)
				}
				if r.err == nil {
					if len(r.out) != len(in) || r.written != "" {
						t.Fatalf("no error, but passed %d of %d bytes and wrote %q", len(r.out), len(in), r.written)
					}
					continue
				}
				if !errors.Is(r.err, ErrProtocol) {
					t.Fatalf("err = %v, want ErrProtocol", r.err)
				}
				line, ok := strings.CutPrefix(r.written, "-ERR Protocol error: ")
				if !ok || !strings.HasSuffix(line, "\r\n") || strings.ContainsAny(line[:len(line)-2], "\r\n") {
					t.Fatalf("wrote %q, want one error line", r.written)
				}
			}
			if (werr == nil) != (serr == nil) || whole.written() != split.written() || len(wout) > len(sout) {
				t.Fatalf("split changed the outcome: whole %q %v %q, split %q %v %q",
					wout, werr, whole.written(), sout, serr, split.written())
			}

			rd := redcon.NewReader(bytes.NewReader(wout))
			for range len(wout) + 1 {
				// io.EOF ends the input; redcon's own protocol errors
				// (e.g. for "*0") end it too.
				if _, err := rd.ReadCommands(); err != nil {
					break
				}
			}
		}
	})
}
