package replication

import (
	"log/slog"
	"os"
)

// dbgLogger logs the test nodes to stderr when DBGLOG is set (DBGLOG=1 go
// test -run X ./replication/), for debugging; nil (silent) otherwise.
var dbgLogger *slog.Logger

func init() {
	if os.Getenv("DBGLOG") != "" {
		dbgLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
}
