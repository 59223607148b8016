package server

import (
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockd/lockd/replication"
	"github.com/tidwall/redcon"
)

// Server is one running lockd node.
type Server struct {
	cfg     Config
	log     *slog.Logger
	node    *replication.Node
	ln      net.Listener
	started time.Time

	mu      sync.Mutex
	clients map[uint64]*client
	nextID  atomic.Uint64
	served  chan struct{} // closed when redcon's accept loop returns
	conns   sync.WaitGroup
	once    sync.Once

	commands atomic.Uint64 // commands processed, for INFO
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
	quit    bool // QUIT ran or the client hung up: the rest of its pipeline is ignored (own goroutine only)

	resp3 atomic.Bool
	last  atomic.Pointer[commandSpec] // the last command run

	mu      sync.Mutex
	name    string
	libName string
	libVer  string
}

// New starts a node: recovers its data, joins its cluster and serves clients
// on cfg.Listener until Close.
func New(c Config) (*Server, error) {
	cfg := c.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.Node.ID),
		ln:      listener{Listener: cfg.Listener, limits: cfg.WireLimits, writeTimeout: cfg.WriteTimeout, idleTimeout: cfg.IdleTimeout},
		started: time.Now(),
		clients: make(map[uint64]*client),
		served:  make(chan struct{}),
	}
	cfg.Node.Validate = s.validCommand
	cfg.Node.RunScript = s.runScript
	node, err := replication.Start(cfg.Node)
	if err != nil {
		return nil, err
	}
	s.node = node
	go func() {
		defer close(s.served)
		if err := redcon.Serve(s.ln, s.handle, s.accept, s.closed); err != nil {
			s.log.Error("client listener stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the client address.
func (s *Server) Addr() net.Addr { return s.cfg.Listener.Addr() }

// Node returns the node's replication layer.
func (s *Server) Node() *replication.Node { return s.node }

// Close stops the node first, so requests still waiting in it are answered
// -TRYAGAIN, gives every connection up to a second to send what it has
// (until its goroutine is back reading), then closes the listener and every
// connection and returns when all of them are done.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.node.Close()
		deadline := time.Now().Add(time.Second)
		for !s.allReading() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		s.ln.Close()
		<-s.served // redcon closes the remaining connections on its way out
		s.conns.Wait()
	})
	return nil
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
		id:      s.nextID.Add(1),
		conn:    conn,
		nc:      conn.NetConn().(*clientConn), // s.ln accepted it
		addr:    conn.RemoteAddr(),
		laddr:   conn.NetConn().LocalAddr().String(),
		authed:  s.cfg.Password == "",
		created: time.Now(),
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
	s.mu.Lock()
	delete(s.clients, c.id)
	s.mu.Unlock()
	s.conns.Done()
}

// handle runs one command. redcon calls it on the connection's goroutine.
// A write followed by more pipelined commands starts a pipeline instead.
func (s *Server) handle(conn redcon.Conn, cmd redcon.Command) {
	c := conn.Context().(*client)
	if c.quit {
		return
	}
	if len(conn.PeekPipeline()) > 0 {
		if _, _, ok := s.batchable(c, cmd); ok {
			s.pipeline(conn, c, cmd)
			return
		}
	}
	s.run(conn, c, cmd)
}

// run runs one command and writes its reply.
func (s *Server) run(conn redcon.Conn, c *client, cmd redcon.Command) {
	r := reply{c: conn, resp3: c.resp3.Load()}
	spec := s.admit(c, r, cmd)
	if spec == nil {
		return
	}
	spec.run(s, c, r, cmd.Args)
}

// admit counts cmd and checks that it exists, that the client may run it
// and its arity; when not, it replies with the error and returns nil.
func (s *Server) admit(c *client, r reply, cmd redcon.Command) *commandSpec {
	s.commands.Add(1)
	if len(cmd.Args) == 0 {
		r.err(errEmptyCommand)
		return nil
	}
	name := strings.ToUpper(string(cmd.Args[0]))
	spec, ok := commandTable[name]
	if !ok {
		r.err(unknownCommandError{args: cmd.Args})
		return nil
	}
	c.last.Store(spec)
	if !c.authed && !spec.noAuth {
		r.err(errNoAuth)
		return nil
	}
	if n := len(cmd.Args); (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
		r.err(arityError{cmd: spec.name})
		return nil
	}
	return spec
}
