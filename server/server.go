package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockd/lockd/acl"
	"github.com/lockd/lockd/internal/glob"
	"github.com/lockd/lockd/internal/tlsfiles"
	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/pubsub"
	"github.com/lockd/lockd/replication"
	"github.com/lockd/lockd/resp"
	"github.com/tidwall/redcon"
)

// Server is one running lockd node.
type Server struct {
	cfg     Config
	log     *slog.Logger
	node    *replication.Node
	lns     []net.Listener  // plaintext, TLS or both, each wrapped by listener
	tls     *tlsfiles.Files // nil without a TLS port
	peerTLS *tlsfiles.Files // the cluster port's; nil without TLS there
	started time.Time

	mu       sync.Mutex
	clients  map[uint64]*client
	nextID   atomic.Uint64
	serving  sync.WaitGroup // redcon's accept loops, and the TLS files' poller
	denials  denials        // connections protected mode refuses
	stopPoll chan struct{}  // closed by Close: the TLS files' poller and watchUsers stop
	conns    sync.WaitGroup
	once     sync.Once

	commands atomic.Uint64 // commands processed, for INFO

	hub       *pubsub.Hub    // this node's subscriptions (pubsub.go)
	notify    keyspaceEvents // which keyspace notifications to deliver
	backingUp atomic.Bool    // a BACKUP is being written (backup.go)

	localDefault *acl.User // the default user until one is replicated (see acl.go)

	// usersReady is set once the node caught up after it started: the
	// users it checks are then the cluster's (userscurrent.go).
	usersReady atomic.Bool
}

// client is the state of one client connection. Its connection's goroutine
// reads and writes it; CLIENT LIST and KILL on other connections read the
// fields that mu guards and the atomics.
type client struct {
	id      uint64
	conn    redcon.Conn
	nc      *clientConn // conn's net.Conn
	addr    string
	laddr   string
	created time.Time
	authed  bool // its own goroutine only
	// user is the ACL user it is authenticated as ("" before AUTH). Its
	// own goroutine writes it under mu (setUser) and reads it without.
	user string
	// linearizable: its reads wait for a read index (CLIENT READS); its own
	// goroutine only.
	linearizable bool
	quit         bool // QUIT ran or the client hung up: the rest of its pipeline is ignored (own goroutine only)

	// MULTI and WATCH (multi.go), own goroutine only: tx is the transaction
	// being queued, nil outside MULTI; watched the keys WATCH saw, at the
	// versions it saw, until EXEC, DISCARD or UNWATCH.
	tx      *txState
	watched []lock.Check

	resp3 atomic.Bool
	last  atomic.Pointer[commandSpec] // the last command run

	result Result // how the command being answered was answered so far, for the observer (own goroutine only)

	mu      sync.Mutex
	name    string
	libName string
	libVer  string
	// While the users may not be current (userscurrent.go): provisional,
	// and the users it was admitted under (nil: none replicated yet).
	provisional bool
	authUsers   *acl.Users

	// Pub/sub (pubsub.go, subscriber.go). sub is made by the client's first (P)SUBSCRIBE
	// on its own goroutine, which then detaches the connection (dconn,
	// detached); backlog holds the commands it had pipelined after that
	// one. From then on the subscriber goroutine owns what the client's
	// goroutine owned, and wmu orders its writes with pump's. sub is
	// written under mu, so watchUsers may read it under mu.
	sub      *pubsub.Sub
	dconn    redcon.DetachedConn
	detached atomic.Bool
	backlog  [][][]byte
	wmu      sync.Mutex
}

// New starts a node: recovers its data, joins its cluster and serves clients
// on cfg.Listener and cfg.TLSListener until Close. It fails, starting
// nothing, when the TLS files cannot be loaded.
func New(c Config) (*Server, error) {
	cfg := c.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:          cfg,
		log:          cfg.Logger.With("node", cfg.Node.ID),
		started:      time.Now(),
		clients:      make(map[uint64]*client),
		stopPoll:     make(chan struct{}),
		denials:      denials{sem: make(chan struct{}, maxDenials)},
		localDefault: acl.NewDefault(cfg.Password),
	}
	if cfg.TLSListener != nil {
		files, err := tlsfiles.Load(cfg.TLS.files(), s.log)
		if err != nil {
			return nil, err
		}
		s.tls = files
	}
	if cfg.ClusterTLS != nil {
		if err := s.loadClusterTLS(&cfg); err != nil {
			return nil, err
		}
	}
	cfg.Node.Validate = s.validCommand
	s.notify, _ = parseKeyspaceEvents(cfg.NotifyKeyspaceEvents) // validated above
	s.hub = pubsub.NewHub(glob.Match, cfg.PubSubBufferLimit)
	cfg.Node.Events = s.deliver
	cfg.Node.EventsLost = s.dropSubscribers
	cfg.Node.RunScript = s.runScript
	node, err := replication.Start(cfg.Node)
	if err != nil {
		return nil, err
	}
	s.node = node
	s.serving.Add(2)
	go s.watchUsers()
	go s.awaitCurrentUsers()
	if cfg.Listener != nil {
		s.serve(cfg.Listener)
	}
	if s.tls != nil {
		s.serve(newTLSListener(cfg.TLSListener, s.tls.ServerConfig(), cfg.TLS.HandshakeTimeout, cfg.MaxClients, s.log))
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			s.tls.Poll(cfg.TLS.ReloadInterval, s.stopPoll)
		}()
	}
	if s.peerTLS != nil {
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			s.peerTLS.Poll(cfg.TLS.ReloadInterval, s.stopPoll)
		}()
	}
	return s, nil
}

// serve serves the clients ln accepts, over the wire guard, until Close.
func (s *Server) serve(ln net.Listener) {
	wrapped := listener{Listener: ln, limits: s.cfg.WireLimits, writeTimeout: s.cfg.WriteTimeout, idleTimeout: s.cfg.IdleTimeout,
		refuse: s.protectedRefuses, denials: &s.denials}
	s.lns = append(s.lns, wrapped)
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		if err := redcon.Serve(wrapped, s.handle, s.accept, s.closed); err != nil {
			s.log.Error("client listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// Addr is the plaintext client address, nil when the node serves TLS only.
func (s *Server) Addr() net.Addr {
	if s.cfg.Listener == nil {
		return nil
	}
	return s.cfg.Listener.Addr()
}

// TLSAddr is the TLS client address, nil without a TLS port.
func (s *Server) TLSAddr() net.Addr {
	if s.cfg.TLSListener == nil {
		return nil
	}
	return s.cfg.TLSListener.Addr()
}

// ReloadTLS loads the TLS port's and the cluster port's certificate, key and
// CA files now (as on SIGHUP), changed or not; new handshakes use them. On
// an error they keep what was loaded before. Without TLS it does nothing.
func (s *Server) ReloadTLS() error {
	var errs []error
	for _, f := range []*tlsfiles.Files{s.tls, s.peerTLS} {
		if f != nil {
			_, err := f.Reload(true)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Node returns the node's replication layer.
func (s *Server) Node() *replication.Node { return s.node }

// Close stops the node first, so requests still waiting in it are answered
// -TRYAGAIN, gives every connection up to a second to send what it has
// (until its goroutine is back reading), then closes the listeners (ending
// TLS handshakes under way) and every connection, stops watching the TLS
// files and returns when all of them are done.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.node.Close()
		deadline := time.Now().Add(time.Second)
		for !s.allReading() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		for _, ln := range s.lns {
			ln.Close()
		}
		close(s.stopPoll)
		s.serving.Wait() // redcon closes the remaining connections on its way out
		s.closeDetached()
		s.denials.wait()
		s.conns.Wait()
	})
	return nil
}

// closeDetached closes the connections of subscribers, which redcon no
// longer knows (outside s.mu: closing a TLS connection may wait to send its
// close alert).
func (s *Server) closeDetached() {
	s.mu.Lock()
	var ncs []*clientConn
	for _, c := range s.clients {
		if c.detached.Load() {
			ncs = append(ncs, c.nc)
		}
	}
	s.mu.Unlock()
	for _, nc := range ncs {
		nc.Close() // not c.conn's Close, which would flush its buffer
	}
}

// allReading reports whether every client connection is waiting for input,
// that is, has written all its replies.
func (s *Server) allReading() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clients {
		if !c.nc.reading.Load() {
			return false
		}
	}
	return true
}

func (s *Server) accept(conn redcon.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.clients) >= s.cfg.MaxClients {
		conn.NetConn().SetWriteDeadline(time.Now().Add(time.Second))
		conn.NetConn().Write([]byte("-" + errMaxClients.Error() + "\r\n"))
		return false
	}
	c := &client{
		id:    s.nextID.Add(1),
		conn:  conn,
		nc:    conn.NetConn().(*clientConn), // s.ln accepted it
		addr:  conn.RemoteAddr(),
		laddr: conn.NetConn().LocalAddr().String(),

		linearizable: s.cfg.LinearizableReads,
		created:      time.Now(),
	}
	if name, ok := s.certificateUser(c.nc); ok {
		c.authed, c.user = true, name
		s.provisional(c)
	} else if s.defaultOpen() {
		c.authed, c.user = true, acl.DefaultName
		s.provisional(c)
	}
	s.clients[c.id] = c
	conn.SetContext(c)
	s.conns.Add(1)
	return true
}

func (s *Server) closed(conn redcon.Conn, err error) {
	c, ok := conn.Context().(*client)
	if !ok {
		return
	}
	if c.detached.Load() {
		go s.subscriber(c) // redcon is done with it: the client lives on
		return
	}
	s.mu.Lock()
	delete(s.clients, c.id)
	s.mu.Unlock()
	s.conns.Done()
}

// handle runs one command. redcon calls it on the connection's goroutine.
// A write that may join a wave (see pipeline.go), followed by more
// pipelined commands, starts a pipeline instead.
func (s *Server) handle(conn redcon.Conn, cmd redcon.Command) {
	c := conn.Context().(*client)
	if c.quit {
		return
	}
	p := s.prepare(c, cmd.Args)
	if p.waveable(c) && len(conn.PeekPipeline()) > 0 {
		s.pipeline(conn, c, p)
		return
	}
	s.dispatch(conn, c, p)
	s.observe(c, p.spec, p.start)
}

// prepared is one command as admitted: its spec, its arguments and, for a
// command with a build func, the table's command; or the error it is
// answered with instead. Its connection's goroutine makes and runs it.
type prepared struct {
	spec *commandSpec // nil for an empty or unknown command
	args [][]byte
	cmd  lock.Command
	err  error

	start time.Time // when it was read, for the observer (zero without one)
}

// prepare counts a command and checks that it exists, that the client may
// run it and its arity, and builds it. It replies nothing: every command,
// alone or in a pipeline, is admitted here and run by dispatch.
func (s *Server) prepare(c *client, args [][]byte) prepared {
	s.commands.Add(1)
	p := prepared{args: args, start: s.now()}
	if len(args) == 0 {
		p.err = errEmptyCommand
		return p
	}
	spec, ok := commandTable[strings.ToUpper(string(args[0]))]
	if !ok {
		p.err = unknownCommandError{args: args}
		return p
	}
	c.last.Store(spec)
	p.spec = spec
	switch n := len(args); {
	case !c.authed && !spec.noAuth:
		p.err = errNoAuth
	case (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity):
		p.err = arityError{cmd: spec.name}
	default:
		if p.err = s.permit(c, spec, args); p.err == nil && spec.build != nil {
			p.cmd, p.err = spec.build(s, args)
		}
	}
	return p
}

// dispatch runs a prepared command and writes its reply: between MULTI and
// EXEC it is queued instead (see multi.go); a read is answered from the
// local replica, a write through the cluster.
func (s *Server) dispatch(conn redcon.Conn, c *client, p prepared) {
	c.result = ResultOK
	r := reply{c: conn, resp3: c.resp3.Load(), res: &c.result}
	switch {
	case c.tx != nil && (p.err != nil || !runsInMulti(p.spec)):
		s.queue(c, r, p)
	case p.err != nil:
		r.err(p.err)
	case p.spec.build == nil:
		p.spec.run(s, c, r, p.args)
	case p.spec.read:
		if err := s.catchUp(c); err != nil {
			r.err(err)
			return
		}
		render(r, p.spec, s.node.Table().Read(&p.cmd, s.node.SinceApply().Milliseconds()))
	case p.cmd.Op == lock.OpLockWait || p.cmd.Wait > 0: // LOCK, RWLOCK, SEMLOCK ... WAIT
		s.lockWait(c, r, p.spec, p.cmd)
	default:
		res, err := s.node.Do(context.Background(), p.cmd)
		s.answer(r, p.spec, &p.cmd, res, err)
	}
}

// answer writes the reply to the write cmd whose result is res, or err.
// PUBLISH's is the number of this node's subscriptions that match its
// channel now.
func (s *Server) answer(r reply, spec *commandSpec, cmd *lock.Command, res lock.Result, err error) {
	op := cmd.Op
	switch {
	case err != nil:
		r.err(err)
	case op == lock.OpPublish:
		r.int(int64(s.hub.Receivers(cmd.Name)))
	case res.Reply != nil:
		render(r, spec, *res.Reply)
	default:
		render(r, spec, lockReply(op, res.Value))
	}
}

// render writes v, a reply of spec's command, in the connection's protocol.
func render(r reply, spec *commandSpec, v resp.Value) {
	if spec.render != nil {
		spec.render(r, v)
		return
	}
	r.value(v)
}
