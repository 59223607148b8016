package server

import (
	"errors"
	"fmt"
	"strings"
)

//lint:file-ignore ST1005 the texts Redis has are Redis's, word for word, final periods included

// Errors a command can answer with. Each maps to its RESP text in respError.
var (
	errSyntax          = errors.New("ERR syntax error")
	errNotInteger      = errors.New("ERR value is not an integer or out of range")
	errInvalidName     = errors.New("ERR invalid lock name")
	errInvalidOwner    = errors.New("ERR invalid owner")
	errNoAuth          = errors.New("NOAUTH Authentication required.")
	errWrongPass       = errors.New("WRONGPASS invalid username-password pair or user is disabled.")
	errNoPassword      = errors.New("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
	errNoProto         = errors.New("NOPROTO unsupported protocol version")
	errProtoNotInt     = errors.New("ERR Protocol version is not an integer or out of range")
	errDBIndex         = errors.New("ERR DB index is out of range")
	errHelloNoAuth     = errors.New("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
	errNoSuchClient    = errors.New("ERR No such client")
	errClientName      = errors.New("ERR Client names cannot contain spaces, newlines or special characters.")
	errChannelLen      = errors.New("ERR channel name or pattern too long")
	errInvalidWait     = errors.New("ERR invalid wait time in 'lock' command")
	errShuttingDown    = errors.New("TRYAGAIN node shutting down; retry on another node")
	errClosedUnknown   = errors.New("TRYAGAIN node shutting down; outcome unknown")
	errMaxClients      = errors.New("ERR max number of clients reached")
	errTryNoLeader     = errors.New("TRYAGAIN no leader; retry later")
	errTryTimeout      = errors.New("TRYAGAIN request timed out; outcome unknown")
	errCatchingUp      = errors.New("TRYAGAIN replica is catching up; retry later")
	errStaleRead       = errors.New("TRYAGAIN no recent contact with a leader; this replica may be stale, retry later or on another node")
	errUnconfirmedRead = errors.New("TRYAGAIN no leader confirmed the read with a quorum; retry later or on another node")
	errReadsMode       = errors.New("ERR CLIENT READS takes LINEARIZABLE or LOCAL")
	errEmptyCommand    = errors.New("ERR empty command")
	errInvalidExpire   = errors.New("invalid expire time") // wrapped by expireError
	errBackupOff       = errors.New("ERR BACKUP is off: start lockd with --backup-dir, a directory for backups only")
	errMemberID        = errors.New("ERR invalid member id: want an integer 1..65535")

	// The key space (keys.go, scan.go).
	errDigest          = errors.New("ERR IFDEQ and IFDNE (digest conditions) are not supported by lockd; use IFEQ or IFNE")
	errExpireNXAndMore = errors.New("ERR NX and XX, GT or LT options at the same time are not compatible")
	errExpireGTAndLT   = errors.New("ERR GT and LT options at the same time are not compatible")
	errInvalidCursor   = errors.New("ERR invalid cursor")

	// Transactions (multi.go).
	errNestedMulti    = errors.New("ERR MULTI calls can not be nested")
	errExecNoMulti    = errors.New("ERR EXEC without MULTI")
	errDiscardNoMulti = errors.New("ERR DISCARD without MULTI")
	errWatchInMulti   = errors.New("ERR WATCH inside MULTI is not allowed")
	errExecAbort      = errors.New("EXECABORT Transaction discarded because of previous errors.")
	errNotInMulti     = errors.New("ERR Command not allowed inside a transaction: lockd queues only key-space and lock commands")
	errTxTooBig       = fmt.Errorf("ERR transaction too big: at most %d commands and %d bytes of arguments", maxTxCommands, maxTxBytes)
	errWatchTooMany   = fmt.Errorf("ERR too many watched keys: at most %d keys and %d bytes of names", maxWatched, maxWatchBytes)
	errMalformed      = errors.New("ERR malformed command")
)

// arityError is the reply to a command with the wrong number of arguments.
type arityError struct{ cmd string }

func (e arityError) Error() string {
	return fmt.Sprintf("ERR wrong number of arguments for '%s' command", strings.ToLower(e.cmd))
}

// expireError is the reply to a zero, negative or too large PX/EX.
type expireError struct{ cmd string }

func (e expireError) Error() string {
	return fmt.Sprintf("ERR invalid expire time in '%s' command", strings.ToLower(e.cmd))
}

func (e expireError) Unwrap() error { return errInvalidExpire }

// unknownCommandError is the reply to a command lockd does not know.
type unknownCommandError struct{ args [][]byte }

func (e unknownCommandError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ERR unknown command '%s', with args beginning with: ", clip(e.args[0]))
	for _, a := range e.args[1:min(len(e.args), 4)] {
		fmt.Fprintf(&b, "'%s' ", clip(a))
	}
	return b.String()
}

// unknownSubcommandError is the reply to CLIENT FOO and the like.
type unknownSubcommandError struct{ cmd, sub string }

func (e unknownSubcommandError) Error() string {
	return fmt.Sprintf("ERR unknown subcommand '%s'. Try %s HELP.", clip([]byte(e.sub)), strings.ToUpper(e.cmd))
}

// clip shortens an argument for an error text and removes line breaks.
func clip(b []byte) string {
	if len(b) > 128 {
		b = b[:128]
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, string(b))
}
