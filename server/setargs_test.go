package server

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lockd/lockd/lock"
)

// FuzzSetArgs checks SET's option parser against the forms Redis accepts,
// stated as a property. The input is SET's options, split at spaces ("_"
// stands for an empty argument). The parser never panics, and it accepts
// exactly the options in which
//
//   - every word is NX, XX, GET, KEEPTTL, or IFEQ, IFNE, EX, PX, EXAT or
//     PXAT followed by its argument (any case);
//   - at most one condition (NX, XX, IFEQ, IFNE) and at most one expiry
//     (EX, PX, EXAT, PXAT, KEEPTTL) appear, each perhaps more than once;
//   - the last expiry's number is a Redis integer, positive, within MaxTTL
//     of now, and IFEQ's or IFNE's value at most MaxOwnerLen bytes.
//
// Anything else gets an error: ERR syntax error (or lockd's refusal of the
// digest conditions) when a word breaks the first two rules. An accepted
// command carries exactly the options given (the last value of a repeated
// one), and passes validCommand, as the leader checks it.
func FuzzSetArgs(f *testing.F) {
	for _, seed := range []string{
		"", "NX", "xx GET", "IFEQ a", "IFNE _ GET PX 100", "EX 10 NX", "PX 0", "EXAT 1", "PXAT 99999999999999",
		"KEEPTTL XX", "EX 10 EX 20", "NX XX", "IFEQ a IFNE b", "EX 1 PX 1", "EX", "IFDEQ abc", "GET get Get",
		"EX abc", "EX +1", "EX 007", "PX -5", "EX 9223372036854775807", "EXAT 9223372036854775807", "IFEQ 123456789",
		"EX 3600", "EX 3601", "PXAT 1700003600000", "PXAT 1700003600001", "foo", "NX nx", "KEEPTTL EX 1",
	} {
		f.Add(seed)
	}
	s := &Server{cfg: Config{MaxNameLen: 16, MaxOwnerLen: 8, MaxTTL: time.Hour}.WithDefaults()}
	const nowMS = 1_700_000_000_000
	f.Fuzz(func(t *testing.T, options string) {
		args := [][]byte{[]byte("SET"), []byte("k"), []byte("v")}
		for _, w := range strings.Fields(options) {
			if w == "_" {
				w = ""
			}
			args = append(args, []byte(w))
		}
		cmd, err := s.parseSet(args, nowMS)
		want, wantErr := setProperty(s.cfg, args[3:], nowMS)
		switch {
		case wantErr != nil && err == nil:
			t.Fatalf("SET k v %s: accepted as %+v; want %v", options, cmd, wantErr)
		case wantErr != nil && !sameErrClass(err, wantErr):
			t.Fatalf("SET k v %s: %v; want %v", options, err, wantErr)
		case wantErr == nil && err != nil:
			t.Fatalf("SET k v %s: %v; want accepted as %+v", options, err, want)
		case wantErr == nil && (cmd.Op != lock.OpSet || cmd.Name != "k" || cmd.Owner != "v" || cmd.Flags != want.Flags ||
			cmd.TTL != want.TTL || cmd.At != want.At || cmd.Match != want.Match || cmd.X != nil):
			t.Fatalf("SET k v %s: %+v; want %+v", options, cmd, want)
		case wantErr == nil:
			if err := validAt(s, &cmd, nowMS); err != nil {
				t.Fatalf("SET k v %s: %+v, which the leader refuses: %v", options, cmd, err)
			}
		}
	})
}

// validAt is validCommand for a command parsed at nowMS: an absolute
// deadline is moved by the time since then, as the leader would see it.
func validAt(s *Server, c *lock.Command, nowMS int64) error {
	d := *c
	if d.At != 0 {
		d.At += time.Now().UnixMilli() - nowMS
	}
	return s.validCommand(&d)
}

// setProperty is the property FuzzSetArgs states: the command SET k v
// options means, or the error it gets.
func setProperty(cfg Config, options [][]byte, nowMS int64) (lock.Command, error) {
	want := lock.Command{Op: lock.OpSet, Name: "k", Owner: "v"}
	takesArg := map[string]bool{"IFEQ": true, "IFNE": true, "IFDEQ": true, "IFDNE": true, "EX": true, "PX": true, "EXAT": true, "PXAT": true}
	kind := map[string]int{"NX": setCondition, "XX": setCondition, "IFEQ": setCondition, "IFNE": setCondition,
		"KEEPTTL": setExpiry, "EX": setExpiry, "PX": setExpiry, "EXAT": setExpiry, "PXAT": setExpiry, "GET": 0}
	seen := map[int]string{}
	var expiry string
	var expiryArg []byte
	for i := 0; i < len(options); i++ {
		w := strings.ToUpper(string(options[i]))
		if takesArg[w] && i+1 == len(options) {
			return want, errSyntax
		}
		if w == "IFDEQ" || w == "IFDNE" {
			return want, errDigest
		}
		k, known := kind[w]
		if !known {
			return want, errSyntax
		}
		if k != 0 && seen[k] != "" && seen[k] != w {
			return want, errSyntax
		}
		if k != 0 {
			seen[k] = w
		}
		switch w {
		case "GET":
			want.Flags |= lock.FlagGet
		case "IFEQ", "IFNE":
			want.Match = string(options[i+1])
		case "EX", "PX", "EXAT", "PXAT":
			expiry, expiryArg = w, options[i+1]
		}
		if takesArg[w] {
			i++
		}
	}
	want.Flags |= map[string]lock.Flags{"NX": lock.FlagNX, "XX": lock.FlagXX, "IFEQ": lock.FlagIfEq, "IFNE": lock.FlagIfNe}[seen[setCondition]]
	if seen[setExpiry] == "KEEPTTL" {
		want.Flags |= lock.FlagKeepTTL
	}
	if len(want.Match) > cfg.MaxOwnerLen {
		return want, errInvalidOwner
	}
	if expiry == "" {
		return want, nil
	}
	n, err := parseInt(expiryArg)
	if err != nil {
		return want, err
	}
	bad := expireError{cmd: "set"}
	maxMS := cfg.MaxTTL.Milliseconds()
	if n <= 0 || ((expiry == "EX" || expiry == "EXAT") && n > math.MaxInt64/1000) {
		return want, bad
	}
	if expiry == "EX" || expiry == "EXAT" {
		n *= 1000
	}
	switch {
	case expiry == "EX" || expiry == "PX":
		want.TTL = n
		if n > maxMS {
			return want, bad
		}
	case n <= nowMS:
		want.Flags |= lock.FlagExpireNow
	case n-nowMS > maxMS:
		return want, bad
	default:
		want.At = n
	}
	return want, nil
}

// sameErrClass reports whether got is the error want stands for: the same
// text, or both an invalid expire time.
func sameErrClass(got, want error) bool {
	return got.Error() == want.Error() || (errors.Is(got, errInvalidExpire) && errors.Is(want, errInvalidExpire))
}
