// Command lockd runs one node of a lockd cluster.
//
//	lockd                      # one node: clients on 127.0.0.1:6379, data in ./lockd-data
//	lockd --id 1 --listen 127.0.0.1:6381 --cluster-listen 127.0.0.1:7381 \
//	      --peers 1=127.0.0.1:7381,2=127.0.0.1:7382,3=127.0.0.1:7383 --data-dir /var/lib/lockd/1
//	lockd --listen "" --tls-port 127.0.0.1:6380 --tls-cert-file node.crt --tls-key-file node.key \
//	      --tls-ca-cert-file ca.crt   # TLS only, client certificates required
//
//	lockd --id 4 --listen 127.0.0.1:6384 --cluster-listen 127.0.0.1:7384 --join \
//	      --peers 1=127.0.0.1:7381,4=127.0.0.1:7384 --data-dir /var/lib/lockd/4   # after MEMBER ADD 4 127.0.0.1:7384
//
// SIGTERM and SIGINT shut the node down cleanly (a leader first hands its
// leadership to the most caught-up voter); SIGHUP reloads the TLS
// certificate, key and CA files. Exit status: 0 after a clean
// shutdown, 1 when the node fails, 2 for bad flags.
//
//	lockd --version            # the version and the build's module information, on stdout
//	lockd --log-format json    # one JSON object per log line on stderr
//	lockd restore --from FILE --data-dir DIR --id N --peers ...   # seed a new node from a BACKUP file
//	lockd --metrics-listen 127.0.0.1:9121   # Prometheus /metrics, /livez, /readyz
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lockd/lockd/replication"
	"github.com/lockd/lockd/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	id             uint64
	listen         string
	clusterListen  string
	peers          string
	join           bool
	forceNew       bool
	dataDir        string
	clusterID      string
	clusterSecret  string
	secretFile     string
	password       string
	passwordFile   string
	fsync          string
	protectedMode  string
	requestTimeout time.Duration
	tick           time.Duration
	snapEntries    uint64
	maxNameLen     int
	maxOwnerLen    int
	maxTTL         time.Duration
	lockDelay      time.Duration
	maxClients     int
	timeout        int
	logLevel       string
	logFormat      string
	version        bool
	debugListen    string
	backupDir      string
	metricsListen  string

	tlsPort             string
	tlsCertFile         string
	tlsKeyFile          string
	tlsCAFile           string
	tlsAuthClients      string
	tlsAuthClientsUser  string
	tlsHandshakeTimeout time.Duration
	tlsReloadInterval   time.Duration

	tlsCluster           string // clustertls.go
	tlsClusterCertFile   string
	tlsClusterKeyFile    string
	notifyKeyspaceEvents string
	aclPubsubDefault     string
	pubsubBufferLimit    int
	reads                string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("lockd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Uint64Var(&o.id, "id", 1, "this node's id (1-65535), one of --peers")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:6379", `plaintext client address (RESP); "" turns plaintext off (Redis's port 0), for TLS only`)
	fs.StringVar(&o.clusterListen, "cluster-listen", "", "cluster address for peers (default: client port + 1000; the TLS port's without --listen)")
	fs.StringVar(&o.peers, "peers", "", "a new cluster's members as id=host:port of their cluster addresses, comma separated (default: this node alone); once the data directory holds state the members come from it (MEMBER ADD/REMOVE change them)")
	fs.BoolVar(&o.join, "join", false, "join a running cluster (after MEMBER ADD on it): with an empty --data-dir, make no cluster and wait for the leader's snapshot; --peers names this node and members to reach")
	fs.BoolVar(&o.forceNew, "force-new-cluster", false, "disaster recovery: restart this node as the only member of its cluster, with its state (the other members are removed; grow it again with MEMBER ADD)")
	fs.StringVar(&o.dataDir, "data-dir", "./lockd-data", "directory for the raft log and snapshots")
	fs.StringVar(&o.clusterID, "cluster-id", "lockd", "cluster name; peers with another are refused")
	fs.StringVar(&o.clusterSecret, "cluster-secret", "", "shared secret of the cluster's members, at least 16 characters (prefer --cluster-secret-file: arguments are visible to every local user)")
	fs.StringVar(&o.secretFile, "cluster-secret-file", "", "file holding the cluster secret (surrounding whitespace ignored)")
	fs.StringVar(&o.password, "requirepass", "", "password clients must give with AUTH or HELLO AUTH (prefer --requirepass-file: arguments are visible to every local user)")
	fs.StringVar(&o.passwordFile, "requirepass-file", "", "file holding the --requirepass password (surrounding whitespace ignored)")
	fs.StringVar(&o.protectedMode, "protected-mode", "yes", "yes: without --requirepass, refuse clients that do not connect from 127.0.0.1 or ::1 (Redis's protected mode); no: accept them")
	fs.StringVar(&o.fsync, "fsync", "always", "always: sync the log before acknowledging; never: leave it to the OS (a machine crash may lose acknowledged writes)")
	fs.DurationVar(&o.requestTimeout, "request-timeout", replication.DefaultRequestTimeout, "how long a write may wait for the cluster before -TRYAGAIN (10ms-20s)")
	fs.DurationVar(&o.tick, "raft-tick", replication.DefaultTickInterval, fmt.Sprintf(
		"raft tick; elections start after %d-%d ticks without a leader", replication.DefaultElectionTicks, 2*replication.DefaultElectionTicks))
	fs.Uint64Var(&o.snapEntries, "snapshot-entries", replication.DefaultSnapshotEntries, "log entries between snapshots")
	fs.IntVar(&o.maxNameLen, "max-name-len", server.DefaultMaxNameLen, "longest lock name, in bytes")
	fs.IntVar(&o.maxOwnerLen, "max-owner-len", server.DefaultMaxOwnerLen, "longest owner, in bytes")
	fs.DurationVar(&o.maxTTL, "max-ttl", server.DefaultMaxTTL, "longest lease a client may ask for")
	fs.DurationVar(&o.lockDelay, "lock-delay", server.DefaultLockDelay, "lock-delay of LOCK and MLOCK without DELAY: how long a name whose lease ran out stays unavailable (0: none; at most 1h)")
	fs.IntVar(&o.maxClients, "max-clients", server.DefaultMaxClients, "most client connections at once")
	fs.IntVar(&o.timeout, "timeout", 0, "close a client connection idle for this many seconds (0: never); one blocked in LOCK ... WAIT is not idle")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", DefaultLogFormat, "text: slog's key=value lines; json: one JSON object a line, with the same keys")
	fs.BoolVar(&o.version, "version", false, "print the version and the build's module information (as go version -m does), then exit")
	fs.StringVar(&o.backupDir, "backup-dir", "", "a directory for backups only, where BACKUP may write files; a relative BACKUP path is relative to it (without it, BACKUP is off)")
	fs.StringVar(&o.debugListen, "debug-listen", "", "serve Go's /debug/pprof on this address (e.g. 127.0.0.1:6060); off when empty")
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "serve Prometheus /metrics, /livez and /readyz over HTTP on this address (e.g. 127.0.0.1:9121); off when empty")
	fs.StringVar(&o.tlsPort, "tls-port", "", "TLS client address (e.g. 127.0.0.1:6380); off when empty")
	fs.StringVar(&o.tlsCertFile, "tls-cert-file", "", "the TLS port's certificate (PEM, chain after it); reloaded when it changes and on SIGHUP")
	fs.StringVar(&o.tlsKeyFile, "tls-key-file", "", "the private key of --tls-cert-file (PEM)")
	fs.StringVar(&o.tlsCAFile, "tls-ca-cert-file", "", "CA certificates (PEM) that client certificates are verified against")
	fs.StringVar(&o.tlsAuthClients, "tls-auth-clients", server.DefaultTLSAuthClients, "yes: require a client certificate signed by --tls-ca-cert-file; optional: verify one if given; no: ask for none")
	fs.StringVar(&o.tlsAuthClientsUser, "tls-auth-clients-user", server.TLSAuthClientsUserOff, "CN: a connection whose verified client certificate's common name is an ACL user that is on is that user, without AUTH; off: certificates name no user")
	fs.DurationVar(&o.tlsHandshakeTimeout, "tls-handshake-timeout", server.DefaultTLSHandshakeTimeout, "disconnect a TLS client that has not completed its handshake within this time")
	fs.DurationVar(&o.tlsReloadInterval, "tls-reload-interval", server.DefaultTLSReloadInterval, "how often the TLS files are read to see whether they changed")
	o.clusterTLSFlags(fs)
	fs.StringVar(&o.notifyKeyspaceEvents, "notify-keyspace-events", "", `keyspace notifications this node delivers, in Redis's letters (e.g. "KEA"); none when empty`)
	fs.StringVar(&o.aclPubsubDefault, "acl-pubsub-default", server.DefaultACLPubsubDefault, "the channels a user made by ACL SETUSER through this node starts with: resetchannels (none) or allchannels")
	fs.IntVar(&o.pubsubBufferLimit, "pubsub-buffer-limit", server.DefaultPubSubBufferLimit, "bytes of messages waiting for one subscriber before it is disconnected")
	fs.StringVar(&o.reads, "reads", "local", "local: reads answer from this node's replica; linearizable: every client's reads first confirm the leader's commit index (CLIENT READS sets it per connection)")
	if err := fs.Parse(args); err != nil {
		return nil, errPrinted{err} // the flag package printed it, with the usage
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.version {
		return o, nil // nothing else is checked: lockd only prints its version
	}
	if o.logFormat != LogFormatText && o.logFormat != LogFormatJSON {
		return nil, fmt.Errorf("--log-format %q: want %s or %s", o.logFormat, LogFormatText, LogFormatJSON)
	}
	if err := o.checkTLS(); err != nil {
		return nil, err
	}
	if err := o.checkClusterTLS(); err != nil {
		return nil, err
	}
	if o.clusterListen == "" {
		flag, addr := "--listen", o.listen
		if addr == "" {
			flag, addr = "--tls-port", o.tlsPort
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p+1000 > 65535 {
			return nil, fmt.Errorf("%s %s: give --cluster-listen", flag, addr)
		}
		o.clusterListen = net.JoinHostPort(host, strconv.Itoa(p+1000))
	}
	if o.timeout < 0 || int64(o.timeout) > math.MaxInt64/int64(time.Second) {
		return nil, fmt.Errorf("--timeout %d: want 0 (never) or a number of seconds", o.timeout)
	}
	if o.fsync != "always" && o.fsync != "never" {
		return nil, fmt.Errorf("--fsync %q: want always or never", o.fsync)
	}
	if o.protectedMode != "yes" && o.protectedMode != "no" {
		return nil, fmt.Errorf("--protected-mode %q: want yes or no", o.protectedMode)
	}
	if o.reads != "local" && o.reads != "linearizable" {
		return nil, fmt.Errorf("--reads %q: want local or linearizable", o.reads)
	}
	if o.pubsubBufferLimit < 1 {
		return nil, fmt.Errorf("--pubsub-buffer-limit %d: must be positive", o.pubsubBufferLimit)
	}
	if o.secretFile != "" {
		if o.clusterSecret != "" {
			return nil, errors.New("give --cluster-secret or --cluster-secret-file, not both")
		}
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--cluster-secret-file: %w", err)
		}
		o.clusterSecret = strings.TrimSpace(string(b))
	}
	if o.passwordFile != "" {
		if o.password != "" {
			return nil, errors.New("give --requirepass or --requirepass-file, not both")
		}
		b, err := os.ReadFile(o.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--requirepass-file: %w", err)
		}
		if o.password = strings.TrimSpace(string(b)); o.password == "" {
			return nil, fmt.Errorf("--requirepass-file %s is empty", o.passwordFile)
		}
	}
	return o, nil
}

// checkTLS refuses combinations of the client ports and TLS flags that
// cannot serve. Whether the files can be read and hold a certificate and its
// key is checked when the node starts.
func (o *options) checkTLS() error {
	switch {
	case o.listen == "" && o.tlsPort == "":
		return errors.New(`--listen "" turns the plaintext port off: give --tls-port`)
	case o.tlsPort == "" && o.tlsCluster != "yes" && (o.tlsCertFile != "" || o.tlsKeyFile != "" || o.tlsCAFile != ""):
		return errors.New("--tls-cert-file, --tls-key-file and --tls-ca-cert-file serve the TLS port: give --tls-port (or --tls-cluster yes)")
	case o.tlsPort == "":
		return nil
	case o.tlsCertFile == "" || o.tlsKeyFile == "":
		return errors.New("--tls-port needs --tls-cert-file and --tls-key-file")
	}
	switch o.tlsAuthClients {
	case server.TLSAuthClientsYes, server.TLSAuthClientsOptional:
		if o.tlsCAFile == "" {
			return fmt.Errorf("--tls-auth-clients %s verifies client certificates: give --tls-ca-cert-file (or --tls-auth-clients no)", o.tlsAuthClients)
		}
	case server.TLSAuthClientsNo:
	default:
		return fmt.Errorf("--tls-auth-clients %q: want yes, no or optional", o.tlsAuthClients)
	}
	switch {
	case o.tlsAuthClientsUser != server.TLSAuthClientsUserCN && o.tlsAuthClientsUser != server.TLSAuthClientsUserOff:
		return fmt.Errorf("--tls-auth-clients-user %q: want CN or off", o.tlsAuthClientsUser)
	case o.tlsAuthClientsUser == server.TLSAuthClientsUserCN && o.tlsAuthClients == server.TLSAuthClientsNo:
		return errors.New("--tls-auth-clients-user CN takes the user from a verified client certificate: give --tls-auth-clients yes or optional")
	}
	if o.tlsHandshakeTimeout <= 0 || o.tlsReloadInterval <= 0 {
		return errors.New("--tls-handshake-timeout and --tls-reload-interval must be positive")
	}
	return nil
}

// config is the node's configuration: the flags' values, with the client and
// cluster listeners, the members and the logger run made of them, and the
// build's version. ln and tln, the plaintext and TLS client listeners, may
// be nil.
func (o *options) config(ln, tln, cln net.Listener, peers map[uint64]string, log *slog.Logger) server.Config {
	return server.Config{
		Listener:    ln,
		TLSListener: tln,
		ClusterTLS:  o.clusterTLS(),
		TLS: server.TLSConfig{
			CertFile:         o.tlsCertFile,
			KeyFile:          o.tlsKeyFile,
			CAFile:           o.tlsCAFile,
			AuthClients:      o.tlsAuthClients,
			AuthClientsUser:  o.tlsAuthClientsUser,
			HandshakeTimeout: o.tlsHandshakeTimeout,
			ReloadInterval:   o.tlsReloadInterval,
		},
		Node: replication.Config{
			ID:              o.id,
			Peers:           peers,
			Join:            o.join,
			ForceNewCluster: o.forceNew,
			DataDir:         o.dataDir,
			ClusterID:       o.clusterID,
			Secret:          o.clusterSecret,
			Listener:        cln,
			NoFsync:         o.fsync == "never",
			RequestTimeout:  o.requestTimeout,
			TickInterval:    o.tick,
			SnapshotEntries: o.snapEntries,
		},
		Password:    o.password,
		Unprotected: o.protectedMode == "no",
		MaxNameLen:  o.maxNameLen,
		MaxOwnerLen: o.maxOwnerLen,
		MaxTTL:      o.maxTTL,
		LockDelay:   o.lockDelay,
		MaxClients:  o.maxClients,
		IdleTimeout: time.Duration(o.timeout) * time.Second,

		NotifyKeyspaceEvents: o.notifyKeyspaceEvents,
		ACLPubsubDefault:     o.aclPubsubDefault,
		PubSubBufferLimit:    o.pubsubBufferLimit,
		LinearizableReads:    o.reads == "linearizable",

		Logger:    log,
		Build:     versionOf(buildInfo()),
		BackupDir: o.backupDir,
	}
}

// errPrinted is a flag error the flag package has already printed.
type errPrinted struct{ error }

// parsePeers reads "1=host:port,2=host:port".
func parsePeers(s string) (map[uint64]string, error) {
	peers := map[uint64]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		idStr, addr, ok := strings.Cut(part, "=")
		id, err := strconv.ParseUint(idStr, 10, 64)
		if !ok || err != nil || addr == "" {
			return nil, fmt.Errorf("--peers: %q is not id=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("--peers: %q: %v", part, err)
		}
		if _, dup := peers[id]; dup {
			return nil, fmt.Errorf("--peers: id %d twice", id)
		}
		peers[id] = addr
	}
	return peers, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "restore" {
		return runRestore(args[1:], stdout, stderr) // restore.go
	}
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var printed errPrinted
	if errors.As(err, &printed) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "lockd:", err)
		return 2
	}
	if o.version {
		writeVersion(stdout, buildInfo())
		return 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintln(stderr, "lockd: --log-level:", err)
		return 2
	}
	log := newLogger(stderr, o.logFormat, level)
	slog.SetDefault(log) // the log package's lines too (net/http's, behind --debug-listen)
	// cannotStart reports why the node did not start: "lockd: ..." as
	// always, or in JSON mode a log line, so that every line parses.
	cannotStart := func(what string, err error) int {
		if o.logFormat == LogFormatJSON {
			if what != "" {
				err = fmt.Errorf("%s: %w", what, err)
			}
			log.Error("cannot start", "node", o.id, "err", err.Error())
		} else if what != "" {
			fmt.Fprintf(stderr, "lockd: %s: %v\n", what, err)
		} else {
			fmt.Fprintln(stderr, "lockd:", err)
		}
		return 1
	}

	peers := map[uint64]string{o.id: o.clusterListen}
	if o.peers != "" {
		if peers, err = parsePeers(o.peers); err != nil {
			fmt.Fprintln(stderr, "lockd:", err)
			return 2
		}
		if peers[o.id] == "" {
			fmt.Fprintf(stderr, "lockd: --id %d is not in --peers\n", o.id)
			return 2
		}
	}

	var lns [3]net.Listener // plaintext, TLS and cluster; nil for a port that is off
	for i, addr := range []string{o.listen, o.tlsPort, o.clusterListen} {
		if addr == "" {
			continue
		}
		if lns[i], err = net.Listen("tcp", addr); err != nil {
			break
		}
	}
	ln, tln, cln := lns[0], lns[1], lns[2]
	var srv *server.Server
	m := o.newMetrics()
	if err == nil {
		srv, err = server.New(m.observe(o.config(ln, tln, cln, peers, log)))
	}
	if err != nil {
		for _, l := range lns {
			if l != nil {
				l.Close()
			}
		}
		return cannotStart("", err)
	}
	log.Info("lockd ready", "node", o.id, "version", versionOf(buildInfo()), "listen", addrOf(ln), "tls", addrOf(tln),
		"cluster", cln.Addr().String(), "data", o.dataDir, "fsync", o.fsync)

	if o.metricsListen != "" {
		ms, err := m.serve(o.metricsListen, srv, log)
		if err != nil {
			srv.Close()
			return cannotStart("--metrics-listen", err)
		}
		defer ms.Close()
	}

	if o.debugListen != "" {
		dln, err := net.Listen("tcp", o.debugListen)
		if err != nil {
			srv.Close()
			return cannotStart("--debug-listen", err)
		}
		defer dln.Close()
		go http.Serve(dln, nil) // net/http/pprof registers on the default mux; ends when dln closes
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				reloadTLS(srv, tln != nil || o.tlsCluster == "yes", log)
				continue
			}
			log.Info("shutting down", "node", o.id, "signal", s.String())
			handOff(srv.Node(), log)
			srv.Close()
			return 0
		case <-srv.Node().Failed():
			log.Error("node failed; exiting", "node", o.id, "err", srv.Node().Err())
			srv.Close()
			return 1
		}
	}
}

// reloadTLS answers SIGHUP: the TLS files are loaded again.
func reloadTLS(srv *server.Server, on bool, log *slog.Logger) {
	switch err := srv.ReloadTLS(); {
	case !on:
		log.Info("SIGHUP: no TLS, nothing to reload")
	case err != nil:
		log.Error("SIGHUP: TLS files not loaded; new handshakes keep the old certificate", "err", err)
	default:
		log.Info("SIGHUP: TLS files loaded; new handshakes use them")
	}
}

// addrOf is ln's address, "" for none.
func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}
