package main

import (
	"io"
	"log/slog"
)

// --log-format's values.
const (
	LogFormatText    = "text"        // slog's TextHandler: time=... level=INFO msg="lockd ready" node=1 ...
	LogFormatJSON    = "json"        // slog's JSONHandler: {"time":...,"level":"INFO","msg":"lockd ready","node":1,...}
	DefaultLogFormat = LogFormatText // lockd's format before --log-format existed
)

// newLogger is the node's logger: lines of format (LogFormatText or
// LogFormatJSON; parseFlags has refused any other) at level and above,
// written to w. Both formats carry the same keys: time, level, msg, then
// the attributes in the order they were given (lockd logs no groups, which
// the two handlers would name differently). Values differ only in form:
// JSON quotes strings, gives the time to the nanosecond (text: the
// millisecond) and a time.Duration as a count of nanoseconds ("1.5s" in
// text).
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == LogFormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
