package server

import (
	"slices"
	"strings"
	"time"
)

// CommandObserver hears of every command a client ran, for metrics
// (package metrics implements it).
//
// Concurrency: every client connection's goroutine calls Command, at once;
// it must return at once.
type CommandObserver interface {
	// Command says that the command at index cmd of CommandNames (or
	// UnknownCommand: a name that is not a command, or an empty command)
	// was answered with result, took after it was read. A command queued
	// by MULTI counts when it is queued (+QUEUED is ok), and EXEC once;
	// LOCK ... WAIT takes as long as it waited.
	Command(cmd int, result Result, took time.Duration)
}

// UnknownCommand is the index CommandObserver.Command gets for a command
// not in CommandNames.
const UnknownCommand = -1

// CommandNames returns the names of the commands lockd knows, lower case,
// at the indexes CommandObserver.Command reports. Only these names (and
// UnknownCommand) ever reach an observer, never a client's spelling, so a
// metric labelled by them has a bounded number of series.
func CommandNames() []string { return slices.Clone(commandsByID) }

// Result is how a command was answered: ok, or the kind of its error (the
// first word of a RESP error, among those lockd answers). A script's error
// reply with a code of its own is ResultOther.
type Result uint8

// Results. Never renumber: Results lists their names by value.
const (
	ResultOK Result = iota
	ResultErr
	ResultTryAgain
	ResultNoAuth
	ResultWrongPass
	ResultWrongType
	ResultNoProto
	ResultExecAbort
	ResultNoScript
	ResultBusy
	ResultNoPerm
	ResultOther
)

// Results are the names of the Result values, by value: metric label values.
var Results = [...]string{"ok", "err", "tryagain", "noauth", "wrongpass", "wrongtype", "noproto", "execabort", "noscript", "busy", "noperm", "other"}

func (r Result) String() string { return Results[r] }

// resultOf returns the kind of the RESP error msg (without its '-').
func resultOf(msg string) Result {
	code, _, _ := strings.Cut(msg, " ")
	switch code {
	case "ERR":
		return ResultErr
	case "TRYAGAIN":
		return ResultTryAgain
	case "NOAUTH":
		return ResultNoAuth
	case "WRONGPASS":
		return ResultWrongPass
	case "WRONGTYPE":
		return ResultWrongType
	case "NOPROTO":
		return ResultNoProto
	case "EXECABORT":
		return ResultExecAbort
	case "NOSCRIPT":
		return ResultNoScript
	case "BUSY", "NOTBUSY":
		return ResultBusy
	case "NOPERM":
		return ResultNoPerm
	}
	return ResultOther
}

// observe tells the observer, if any, that the command of spec (nil: not
// a command) was answered with c's result, started at start.
func (s *Server) observe(c *client, spec *commandSpec, start time.Time) {
	o := s.cfg.Observer
	if o == nil {
		return
	}
	id := UnknownCommand
	if spec != nil {
		id = spec.id
	}
	o.Command(id, c.result, time.Since(start))
}

// now returns the time a command starts, when an observer will want it.
func (s *Server) now() time.Time {
	if s.cfg.Observer == nil {
		return time.Time{}
	}
	return time.Now()
}

// ConnectedClients returns the number of client connections open now.
func (s *Server) ConnectedClients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}
