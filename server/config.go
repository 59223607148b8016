package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/lockd/lockd/internal/tlsfiles"
	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/replication"
	"github.com/lockd/lockd/respguard"
)

// Defaults for zero Config fields; cmd/lockd's flags default to them too.
const (
	DefaultMaxNameLen   = 512                // bytes of a lock name
	DefaultMaxOwnerLen  = 256                // bytes of an owner
	DefaultMaxTTL       = 7 * 24 * time.Hour // longest lease a client may ask for
	DefaultLockDelay    = time.Duration(0)   // the lock-delay of LOCK and MLOCK without DELAY: none
	DefaultMaxClients   = 10000              // open client connections
	DefaultWriteTimeout = 30 * time.Second   // each write of replies
	DefaultReadTimeout  = time.Second        // a read waiting for the local replica
	DefaultVersion      = "0.1.0"            // this source tree's release, reported by INFO and HELLO

	// The client port's wire limits where they differ from respguard's.
	DefaultWireMaxBulk    = 64 << 10  // bytes of one argument
	DefaultWireMaxCommand = 128 << 10 // bytes of one command
	DefaultWireMaxInline  = 8 << 10   // bytes of one inline command line

	// The TLS port's.
	DefaultTLSAuthClients      = TLSAuthClientsYes // Redis's tls-auth-clients default
	DefaultTLSHandshakeTimeout = 10 * time.Second  // from the TCP accept to the end of the handshake
	DefaultTLSReloadInterval   = 5 * time.Second   // between looks at the certificate, key and CA files

	// Pub/sub's.
	DefaultPubSubBufferLimit = 8 << 20 // bytes of messages queued for one subscriber before it is disconnected
	DefaultMaxChannelLen     = 1024    // bytes of a channel name or a pattern
	DefaultACLPubsubDefault  = "resetchannels"
)

// TLSConfig.AuthClients values, Redis's tls-auth-clients.
const (
	TLSAuthClientsYes      = "yes"      // a client certificate signed by the CA is required
	TLSAuthClientsOptional = "optional" // one is verified if the client gives one
	TLSAuthClientsNo       = "no"       // none is asked for
)

// TLSConfig.AuthClientsUser values, Redis 8.6's tls-auth-clients-user.
const (
	TLSAuthClientsUserOff = "off" // a client certificate names no user (default)
	TLSAuthClientsUserCN  = "CN"  // a verified client certificate's common name is the connection's user, when such a user exists and is on
)

// Config describes one lockd node. Zero fields take the defaults documented
// on them.
type Config struct {
	// Listener accepts plaintext clients; TLSListener accepts TLS clients
	// (see TLS). At least one is required; Close closes them.
	Listener    net.Listener
	TLSListener net.Listener
	// TLS configures TLSListener's handshakes. TLS clients have the same
	// limits, timeouts and AUTH as plaintext ones.
	TLS TLSConfig
	// ClusterTLS, when set, runs the cluster port over mutual TLS
	// (clustertls.go); nil for plain TCP. Its files are polled every
	// TLS.ReloadInterval.
	ClusterTLS *ClusterTLSConfig
	// Node configures replication (id, peers, data directory, cluster
	// listener, fsync, timeouts). Node.ClientAddr defaults to Listener's
	// address, or TLSListener's when there is no Listener.
	Node replication.Config
	// Password, when set, must be given with AUTH or HELLO AUTH first.
	Password string
	// Unprotected turns protected mode off. In protected mode (the
	// default, as Redis's protected-mode yes) a node without a Password
	// refuses clients that do not connect from 127.0.0.1 or ::1, with
	// Redis's -DENIED error (see protected.go).
	Unprotected bool
	// MaxNameLen and MaxOwnerLen bound lock names and owners in bytes
	// (defaults DefaultMaxNameLen and DefaultMaxOwnerLen).
	MaxNameLen  int
	MaxOwnerLen int
	// MaxTTL bounds PX/EX (default DefaultMaxTTL).
	MaxTTL time.Duration
	// LockDelay is the lock-delay of a LOCK or MLOCK that gives no DELAY
	// (default DefaultLockDelay, none; at most lock.MaxDelay ms): this node
	// puts it in the command, so every node applies the same.
	LockDelay time.Duration
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
	// LinearizableReads starts every client connection in linearizable
	// mode, as CLIENT READS LINEARIZABLE does for one: its reads reflect
	// every write acknowledged anywhere before they arrived. Default: local
	// reads (see docs/PROTOCOL.md, "Reads").
	LinearizableReads bool
	// PubSubBufferLimit bounds the bytes of messages waiting to be written
	// to one subscriber (default DefaultPubSubBufferLimit); a subscriber
	// past it is disconnected, as Redis's client-output-buffer-limit pubsub.
	PubSubBufferLimit int
	// MaxChannelLen bounds channel names and patterns of SUBSCRIBE,
	// PSUBSCRIBE and PUBLISH (default DefaultMaxChannelLen).
	MaxChannelLen int
	// NotifyKeyspaceEvents is Redis's notify-keyspace-events: which
	// keyspace notifications this node delivers to its subscribers (see
	// pubsub.go). Empty (the default, as Redis's) delivers none.
	NotifyKeyspaceEvents string
	// ACLPubsubDefault is Redis 7's acl-pubsub-default: the channels a
	// user made by ACL SETUSER through this node starts with,
	// "resetchannels" (none, the default, as Redis 7's) or "allchannels".
	ACLPubsubDefault string
	// Build is INFO's lockd_version: the release and what the build
	// recorded of itself (cmd/lockd adds the module version and the VCS
	// revision). Default: Version.
	Build string
	// Version is reported by HELLO, where client libraries may parse it as
	// a Redis version (three numbers), and by INFO when Build is not set
	// (default DefaultVersion).
	Version string
	Logger  *slog.Logger

	// BackupDir is where BACKUP may write; without it BACKUP is refused. A
	// relative path is taken relative to it, and a file outside it, or
	// inside the data directory, is refused (see backup.go).
	BackupDir string
	// Observer, when set, hears of every command a client runs (metrics).
	Observer CommandObserver
}

// TLSConfig configures the TLS client port. Its files are read at New and
// again every ReloadInterval and at Server.ReloadTLS: when their contents
// change, new handshakes use the new certificate, key and CA while open
// connections go on; a change that cannot be loaded is logged and the old
// material kept.
type TLSConfig struct {
	// CertFile holds the node's certificate (PEM; intermediate CA
	// certificates after it) and KeyFile its private key (PEM). Required
	// with a TLS listener.
	CertFile string
	KeyFile  string
	// CAFile holds the CA certificates (PEM) client certificates are
	// verified against.
	CAFile string
	// AuthClients is Redis's tls-auth-clients: TLSAuthClientsYes (default)
	// requires a client certificate that CAFile's CAs signed,
	// TLSAuthClientsOptional verifies one if given, TLSAuthClientsNo asks
	// for none. Yes and optional require CAFile.
	AuthClients string
	// AuthClientsUser is Redis 8.6's tls-auth-clients-user:
	// TLSAuthClientsUserCN authenticates a connection whose client
	// certificate CAFile's CAs verified as the ACL user named by the
	// certificate's subject common name, when that user exists and is on,
	// without AUTH; otherwise the connection starts as any other (the
	// default user, or not authenticated). TLSAuthClientsUserOff (default,
	// also "") uses no certificate for that.
	AuthClientsUser string
	// HandshakeTimeout bounds a TLS handshake, from the TCP accept (default
	// DefaultTLSHandshakeTimeout): a client that has not completed it by
	// then is disconnected. Until then it holds no client slot.
	HandshakeTimeout time.Duration
	// ReloadInterval is how often the files are read to see whether they
	// changed (default DefaultTLSReloadInterval).
	ReloadInterval time.Duration
}

// WithDefaults returns c with its zero fields set to the defaults documented
// on them, Node.Logger set to Logger and Node.ClientAddr to Listener's (or
// TLSListener's) address when they are unset. Node's other fields are
// defaulted by replication.Start. New calls it.
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
	if d.PubSubBufferLimit == 0 {
		d.PubSubBufferLimit = DefaultPubSubBufferLimit
	}
	if d.MaxChannelLen == 0 {
		d.MaxChannelLen = DefaultMaxChannelLen
	}
	if d.ACLPubsubDefault == "" {
		d.ACLPubsubDefault = DefaultACLPubsubDefault
	}
	if d.TLS.AuthClients == "" {
		d.TLS.AuthClients = DefaultTLSAuthClients
	}
	if d.TLS.AuthClientsUser == "" {
		d.TLS.AuthClientsUser = TLSAuthClientsUserOff
	}
	if d.TLS.HandshakeTimeout == 0 {
		d.TLS.HandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if d.TLS.ReloadInterval == 0 {
		d.TLS.ReloadInterval = DefaultTLSReloadInterval
	}
	if d.Version == "" {
		d.Version = DefaultVersion
	}
	if d.Build == "" {
		d.Build = d.Version
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Node.Logger == nil {
		d.Node.Logger = d.Logger
	}
	switch {
	case d.Node.ClientAddr != "":
	case d.Listener != nil:
		d.Node.ClientAddr = d.Listener.Addr().String()
	case d.TLSListener != nil:
		d.Node.ClientAddr = d.TLSListener.Addr().String()
	}
	return d
}

func (c *Config) validate() error {
	switch {
	case c.Listener == nil && c.TLSListener == nil:
		return errors.New("no client listener")
	case c.MaxNameLen < 1 || c.MaxOwnerLen < 1:
		return errors.New("name and owner limits must be positive")
	case c.MaxTTL < time.Millisecond:
		return fmt.Errorf("max ttl %v: too small", c.MaxTTL)
	case c.LockDelay < 0 || c.LockDelay > lock.MaxDelay*time.Millisecond:
		return fmt.Errorf("lock delay %v: not between 0 and %v", c.LockDelay, lock.MaxDelay*time.Millisecond)
	case c.MaxClients < 1:
		return errors.New("max clients must be positive")
	case c.IdleTimeout < 0:
		return errors.New("idle timeout must not be negative")
	case c.MaxNameLen+c.MaxOwnerLen+64 > c.WireLimits.MaxCommand:
		return errors.New("name and owner limits exceed the command size limit")
	case c.PubSubBufferLimit < 1 || c.MaxChannelLen < 1:
		return errors.New("pub/sub limits must be positive")
	}
	if c.ACLPubsubDefault != "" && c.ACLPubsubDefault != "resetchannels" && c.ACLPubsubDefault != "allchannels" {
		return fmt.Errorf("acl-pubsub-default %q: must be resetchannels or allchannels", c.ACLPubsubDefault)
	}
	if _, err := parseKeyspaceEvents(c.NotifyKeyspaceEvents); err != nil {
		return err
	}
	if c.ClusterTLS != nil {
		if err := c.ClusterTLS.validate(); err != nil {
			return err
		}
	}
	if c.TLSListener != nil {
		return c.TLS.validate()
	}
	return nil
}

// files is what tlsfiles loads for the TLS port.
func (c *TLSConfig) files() tlsfiles.Config {
	auth := tls.NoClientCert
	switch c.AuthClients {
	case TLSAuthClientsYes:
		auth = tls.RequireAndVerifyClientCert
	case TLSAuthClientsOptional:
		auth = tls.VerifyClientCertIfGiven
	}
	return tlsfiles.Config{Name: "tls", CertFile: c.CertFile, KeyFile: c.KeyFile, CAFile: c.CAFile, ClientAuth: auth}
}

func (c *TLSConfig) validate() error {
	switch {
	case c.CertFile == "" || c.KeyFile == "":
		return errors.New("tls: the TLS port needs a certificate file and a key file")
	case c.AuthClients != TLSAuthClientsYes && c.AuthClients != TLSAuthClientsOptional && c.AuthClients != TLSAuthClientsNo:
		return fmt.Errorf("tls: auth-clients %q: want yes, no or optional", c.AuthClients)
	case c.AuthClients != TLSAuthClientsNo && c.CAFile == "":
		return fmt.Errorf("tls: auth-clients %s verifies client certificates: it needs a CA file (or auth-clients no)", c.AuthClients)
	case c.AuthClientsUser != TLSAuthClientsUserOff && c.AuthClientsUser != TLSAuthClientsUserCN:
		return fmt.Errorf("tls: auth-clients-user %q: want CN or off", c.AuthClientsUser)
	case c.AuthClientsUser == TLSAuthClientsUserCN && c.AuthClients == TLSAuthClientsNo:
		return errors.New("tls: auth-clients-user CN takes the user from a verified client certificate: it needs auth-clients yes or optional")
	case c.HandshakeTimeout < 0 || c.ReloadInterval < 0:
		return errors.New("tls: the handshake timeout and reload interval must be positive")
	}
	return nil
}
