package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/lockd/lockd/replication"
	"github.com/lockd/lockd/respguard"
)

// Config describes one lockd node. Zero fields take the defaults documented
// on them.
type Config struct {
	// Listener accepts clients. Required; Close closes it.
	Listener net.Listener
	// Node configures replication (id, peers, data directory, cluster
	// listener, fsync, timeouts). Node.ClientAddr defaults to Listener's
	// address.
	Node replication.Config
	// Password, when set, must be given with AUTH or HELLO AUTH first.
	Password string
	// MaxNameLen and MaxOwnerLen bound lock names and owners in bytes
	// (defaults 512 and 256).
	MaxNameLen  int
	MaxOwnerLen int
	// MaxTTL bounds PX/EX (default 7 days).
	MaxTTL time.Duration
	// MaxClients bounds open client connections (default 10000); past it a
	// new connection is told "max number of clients reached" and closed.
	MaxClients int
	// WireLimits bound what a client may send (defaults: 1024 arguments,
	// 64 KiB per argument, 128 KiB per command, 8 KiB per inline command,
	// 30s to finish a command once started).
	WireLimits respguard.Limits
	// WriteTimeout bounds each write of replies (default 30s): a client that
	// sends commands but never reads its replies is disconnected.
	WriteTimeout time.Duration
	// IdleTimeout, when positive, disconnects a client that sends nothing for
	// that long while the node waits for its next command (Redis's timeout;
	// default 0, never). A client blocked in LOCK ... WAIT is not idle.
	IdleTimeout time.Duration
	// ReadTimeout bounds how long reads (OWNER, LOCKINFO, DBSIZE, GET, SCAN,
	// WATCH, ...) wait for the local replica to apply what is known to be
	// committed (default 1s); past it they answer -TRYAGAIN.
	ReadTimeout time.Duration
	// Version is reported by INFO and HELLO.
	Version string
	Logger  *slog.Logger
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.MaxNameLen == 0 {
		d.MaxNameLen = 512
	}
	if d.MaxOwnerLen == 0 {
		d.MaxOwnerLen = 256
	}
	if d.MaxTTL == 0 {
		d.MaxTTL = 7 * 24 * time.Hour
	}
	if d.MaxClients == 0 {
		d.MaxClients = 10000
	}
	if d.WireLimits.MaxBulk == 0 {
		d.WireLimits.MaxBulk = 64 << 10
	}
	if d.WireLimits.MaxCommand == 0 {
		d.WireLimits.MaxCommand = 128 << 10
	}
	if d.WireLimits.MaxInline == 0 {
		d.WireLimits.MaxInline = 8 << 10
	}
	if d.WriteTimeout == 0 {
		d.WriteTimeout = 30 * time.Second
	}
	d.WireLimits = d.WireLimits.WithDefaults()
	if d.ReadTimeout == 0 {
		d.ReadTimeout = time.Second
	}
	if d.Version == "" {
		d.Version = "0.1.0"
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Node.Logger == nil {
		d.Node.Logger = d.Logger
	}
	if d.Node.ClientAddr == "" && d.Listener != nil {
		d.Node.ClientAddr = d.Listener.Addr().String()
	}
	return d
}

func (c *Config) validate() error {
	switch {
	case c.Listener == nil:
		return errors.New("no client listener")
	case c.MaxNameLen < 1 || c.MaxOwnerLen < 1:
		return errors.New("name and owner limits must be positive")
	case c.MaxTTL < time.Millisecond:
		return fmt.Errorf("max ttl %v: too small", c.MaxTTL)
	case c.MaxClients < 1:
		return errors.New("max clients must be positive")
	case c.IdleTimeout < 0:
		return errors.New("idle timeout must not be negative")
	case c.MaxNameLen+c.MaxOwnerLen+64 > c.WireLimits.MaxCommand:
		return errors.New("name and owner limits exceed the command size limit")
	}
	return nil
}
