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

// Defaults for zero Config fields; cmd/lockd's flags default to them too.
const (
	DefaultMaxNameLen   = 512                // bytes of a lock name
	DefaultMaxOwnerLen  = 256                // bytes of an owner
	DefaultMaxTTL       = 7 * 24 * time.Hour // longest lease a client may ask for
	DefaultMaxClients   = 10000              // open client connections
	DefaultWriteTimeout = 30 * time.Second   // each write of replies
	DefaultReadTimeout  = time.Second        // a read waiting for the local replica
	DefaultVersion      = "0.1.0"            // this source tree's release, reported by INFO and HELLO

	// The client port's wire limits where they differ from respguard's.
	DefaultWireMaxBulk    = 64 << 10  // bytes of one argument
	DefaultWireMaxCommand = 128 << 10 // bytes of one command
	DefaultWireMaxInline  = 8 << 10   // bytes of one inline command line
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
	// (defaults DefaultMaxNameLen and DefaultMaxOwnerLen).
	MaxNameLen  int
	MaxOwnerLen int
	// MaxTTL bounds PX/EX (default DefaultMaxTTL).
	MaxTTL time.Duration
	// MaxClients bounds open client connections (default DefaultMaxClients);
	// past it a new connection is told "max number of clients reached" and
	// closed.
	MaxClients int
	// WireLimits bound what a client may send (defaults: DefaultWireMaxBulk,
	// DefaultWireMaxCommand and DefaultWireMaxInline, respguard's defaults
	// for the rest: 1024 arguments, 30s to finish a command once started).
	WireLimits respguard.Limits
	// WriteTimeout bounds each write of replies (default DefaultWriteTimeout):
	// a client that sends commands but never reads its replies is
	// disconnected.
	WriteTimeout time.Duration
	// IdleTimeout, when positive, disconnects a client that sends nothing for
	// that long while the node waits for its next command (Redis's timeout;
	// default 0, never). A client blocked in LOCK ... WAIT is not idle.
	IdleTimeout time.Duration
	// ReadTimeout bounds how long reads (OWNER, LOCKINFO, DBSIZE, GET, SCAN,
	// WATCH, ...) wait for the local replica to apply what is known to be
	// committed (default DefaultReadTimeout); past it they answer -TRYAGAIN.
	ReadTimeout time.Duration
	// Version is reported by INFO and HELLO (default DefaultVersion).
	Version string
	Logger  *slog.Logger
}

// WithDefaults returns c with its zero fields set to the defaults documented
// on them, Node.Logger set to Logger and Node.ClientAddr to Listener's
// address when they are unset. Node's other fields are defaulted by
// replication.Start. New calls it.
func (c Config) WithDefaults() Config {
	d := c
	if d.MaxNameLen == 0 {
		d.MaxNameLen = DefaultMaxNameLen
	}
	if d.MaxOwnerLen == 0 {
		d.MaxOwnerLen = DefaultMaxOwnerLen
	}
	if d.MaxTTL == 0 {
		d.MaxTTL = DefaultMaxTTL
	}
	if d.MaxClients == 0 {
		d.MaxClients = DefaultMaxClients
	}
	if d.WireLimits.MaxBulk == 0 {
		d.WireLimits.MaxBulk = DefaultWireMaxBulk
	}
	if d.WireLimits.MaxCommand == 0 {
		d.WireLimits.MaxCommand = DefaultWireMaxCommand
	}
	if d.WireLimits.MaxInline == 0 {
		d.WireLimits.MaxInline = DefaultWireMaxInline
	}
	if d.WriteTimeout == 0 {
		d.WriteTimeout = DefaultWriteTimeout
	}
	d.WireLimits = d.WireLimits.WithDefaults()
	if d.ReadTimeout == 0 {
		d.ReadTimeout = DefaultReadTimeout
	}
	if d.Version == "" {
		d.Version = DefaultVersion
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
