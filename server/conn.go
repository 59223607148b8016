package server

import (
	"crypto/subtle"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lockd/lockd/replication"
)

func (s *Server) cmdPing(c *client, r reply, args [][]byte) {
	switch len(args) {
	case 1:
		r.status("PONG")
	case 2:
		r.bulkBytes(args[1])
	default:
		r.err(arityError{cmd: "ping"})
	}
}

func (s *Server) cmdEcho(c *client, r reply, args [][]byte) { r.bulkBytes(args[1]) }

func (s *Server) cmdQuit(c *client, r reply, args [][]byte) {
	r.ok()
	c.conn.Close()
}

func (s *Server) cmdSelect(c *client, r reply, args [][]byte) {
	n, err := parseInt(args[1])
	switch {
	case err != nil:
		r.err(err)
	case n != 0:
		r.err(errDBIndex)
	default:
		r.ok()
	}
}

// cmdAuth: AUTH [user] password. The only user is "default".
func (s *Server) cmdAuth(c *client, r reply, args [][]byte) {
	if len(args) > 3 {
		r.err(errSyntax)
		return
	}
	user, pass := "default", args[len(args)-1]
	if len(args) == 3 {
		user = string(args[1])
	}
	if s.cfg.Password == "" {
		// As Redis with a password-less default user: AUTH default <any>
		// succeeds, AUTH <password> alone is a configuration mistake.
		switch {
		case len(args) == 2:
			r.err(errNoPassword)
		case user != "default":
			r.err(errWrongPass)
		default:
			r.ok()
		}
		return
	}
	if err := s.checkAuth(c, user, pass); err != nil {
		r.err(err)
		return
	}
	r.ok()
}

func (s *Server) checkAuth(c *client, user string, pass []byte) error {
	if user != "default" || subtle.ConstantTimeCompare(pass, []byte(s.cfg.Password)) != 1 {
		return errWrongPass
	}
	c.authed = true
	return nil
}

// cmdHello: HELLO [protover [AUTH user pass] [SETNAME name]]
func (s *Server) cmdHello(c *client, r reply, args [][]byte) {
	proto := 0
	if len(args) >= 2 {
		n, err := parseInt(args[1])
		if err != nil {
			r.err(errProtoNotInt)
			return
		}
		if n != 2 && n != 3 {
			r.err(errNoProto)
			return
		}
		proto = int(n)
	}
	var setName *string
	authTried := false
	for i := 2; i < len(args); i++ {
		switch opt := strings.ToUpper(string(args[i])); {
		case opt == "AUTH" && i+2 < len(args):
			if s.cfg.Password == "" {
				// Redis accepts AUTH default <anything> when no password is set.
				if string(args[i+1]) != "default" {
					r.err(errWrongPass)
					return
				}
			} else if err := s.checkAuth(c, string(args[i+1]), args[i+2]); err != nil {
				r.err(err)
				return
			}
			authTried = true
			i += 2
		case opt == "SETNAME" && i+1 < len(args):
			name := string(args[i+1])
			setName = &name
			i++
		default:
			r.err(fmt.Errorf("ERR Syntax error in HELLO option '%s'", clip(args[i])))
			return
		}
	}
	if !c.authed && !authTried {
		r.err(errHelloNoAuth)
		return
	}
	if setName != nil {
		if !validClientName(*setName) {
			r.err(errClientName)
			return
		}
		c.mu.Lock()
		c.name = *setName
		c.mu.Unlock()
	}
	if proto != 0 {
		c.resp3.Store(proto == 3)
		r.resp3 = proto == 3
	}
	st := s.node.Status()
	role := "master"
	if st.Role != "leader" {
		role = "replica"
	}
	r.mapHeader(7)
	r.bulk("server")
	r.bulk("lockd")
	r.bulk("version")
	r.bulk(s.cfg.Version)
	r.bulk("proto")
	r.int(int64(respVersion(r.resp3)))
	r.bulk("id")
	r.int(int64(c.id))
	r.bulk("mode")
	r.bulk("standalone")
	r.bulk("role")
	r.bulk(role)
	r.bulk("modules")
	r.array(0)
}

func validClientName(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] < '!' || name[i] > '~' {
			return false
		}
	}
	return true
}

// cmdClient: CLIENT ID|SETNAME|GETNAME|SETINFO|INFO|LIST|KILL|HELP
func (s *Server) cmdClient(c *client, r reply, args [][]byte) {
	sub := strings.ToUpper(string(args[1]))
	n := len(args)
	switch {
	case sub == "ID" && n == 2:
		r.int(int64(c.id))
	case sub == "GETNAME" && n == 2:
		c.mu.Lock()
		name := c.name
		c.mu.Unlock()
		if name == "" {
			r.null()
		} else {
			r.bulk(name)
		}
	case sub == "SETNAME" && n == 3:
		name := string(args[2])
		if !validClientName(name) {
			r.err(errClientName)
			return
		}
		c.mu.Lock()
		c.name = name
		c.mu.Unlock()
		r.ok()
	case sub == "SETINFO" && n == 4:
		attr, val := strings.ToUpper(string(args[2])), string(args[3])
		if !validClientName(val) && val != "" {
			r.err(fmt.Errorf("ERR %s cannot contain spaces, newlines or special characters.", attr))
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		switch attr {
		case "LIB-NAME":
			c.libName = val
		case "LIB-VER":
			c.libVer = val
		default:
			r.err(fmt.Errorf("ERR Unrecognized option '%s'", clip(args[2])))
			return
		}
		r.ok()
	case sub == "INFO" && n == 2:
		r.bulk(s.clientLine(c) + "\n")
	case sub == "LIST":
		s.mu.Lock()
		ids := make([]uint64, 0, len(s.clients))
		for id := range s.clients {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		var b strings.Builder
		for _, id := range ids {
			b.WriteString(s.clientLine(s.clients[id]))
			b.WriteByte('\n')
		}
		s.mu.Unlock()
		r.bulk(b.String())
	case sub == "KILL" && n >= 3:
		s.clientKill(c, r, args[2:])
	case sub == "HELP":
		lines := []string{
			"CLIENT <subcommand> [<arg> ...]. Subcommands are:",
			"ID", "GETNAME", "SETNAME <name>", "SETINFO LIB-NAME|LIB-VER <value>",
			"INFO", "LIST", "KILL <ip:port> | KILL ID <id> | KILL ADDR <ip:port>",
		}
		r.array(len(lines))
		for _, l := range lines {
			r.status(l)
		}
	case slices.Contains([]string{"ID", "GETNAME", "SETNAME", "SETINFO", "INFO", "KILL"}, sub):
		r.err(arityError{cmd: "client|" + strings.ToLower(sub)})
	default:
		r.err(unknownSubcommandError{cmd: "client", sub: string(args[1])})
	}
}

// clientLine formats one CLIENT LIST line.
func (s *Server) clientLine(c *client) string {
	c.mu.Lock()
	name, lib, ver := c.name, c.libName, c.libVer
	c.mu.Unlock()
	cmd := "NULL"
	if sp := c.last.Load(); sp != nil {
		cmd = sp.name
	}
	return fmt.Sprintf("id=%d addr=%s laddr=%s fd=0 name=%s age=%d idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 cmd=%s user=default lib-name=%s lib-ver=%s resp=%d",
		c.id, c.addr, c.laddr, name, int(time.Since(c.created).Seconds()), cmd, lib, ver, respVersion(c.resp3.Load()))
}

func respVersion(resp3 bool) int {
	if resp3 {
		return 3
	}
	return 2
}

// clientKill: CLIENT KILL ip:port | CLIENT KILL ID id | ADDR ip:port [...].
// With filters, the caller itself is spared unless SKIPME no.
func (s *Server) clientKill(self *client, r reply, args [][]byte) {
	match := func(*client) bool { return false }
	legacy := len(args) == 1
	skipMe := !legacy
	if legacy {
		addr := string(args[0])
		match = func(c *client) bool { return c.addr == addr }
	} else {
		if len(args)%2 != 0 {
			r.err(errSyntax)
			return
		}
		var filters []func(*client) bool
		for i := 0; i < len(args); i += 2 {
			val := string(args[i+1])
			switch strings.ToUpper(string(args[i])) {
			case "ID":
				id, err := strconv.ParseUint(val, 10, 64)
				if err != nil {
					r.err(errNotInteger)
					return
				}
				filters = append(filters, func(c *client) bool { return c.id == id })
			case "ADDR":
				filters = append(filters, func(c *client) bool { return c.addr == val })
			case "LADDR":
				filters = append(filters, func(c *client) bool { return c.laddr == val })
			case "SKIPME":
				switch strings.ToLower(val) {
				case "yes":
					skipMe = true
				case "no":
					skipMe = false
				default:
					r.err(errSyntax)
					return
				}
			case "USER", "TYPE", "MAXAGE":
				// accepted, not used as filters
			default:
				r.err(errSyntax)
				return
			}
		}
		match = func(c *client) bool {
			for _, f := range filters {
				if !f(c) {
					return false
				}
			}
			return len(filters) > 0
		}
	}
	s.mu.Lock()
	killed := 0
	for _, c := range s.clients {
		if match(c) && !(skipMe && c == self) {
			c.conn.NetConn().Close()
			killed++
		}
	}
	s.mu.Unlock()
	switch {
	case legacy && killed == 0:
		r.err(errNoSuchClient)
	case legacy:
		r.ok()
	default:
		r.int(int64(killed))
	}
}

// cmdCommand: COMMAND, COMMAND COUNT, COMMAND INFO name..., COMMAND DOCS [name...].
func (s *Server) cmdCommand(c *client, r reply, args [][]byte) {
	if len(args) == 1 {
		names := sortedCommands()
		r.array(len(names))
		for _, n := range names {
			s.commandInfo(r, commandTable[n])
		}
		return
	}
	switch sub := strings.ToUpper(string(args[1])); sub {
	case "COUNT":
		r.int(int64(len(commandTable)))
	case "INFO":
		names := sortedCommands()
		if len(args) > 2 {
			names = names[:0]
			for _, a := range args[2:] {
				names = append(names, strings.ToUpper(string(a)))
			}
		}
		r.array(len(names))
		for _, n := range names {
			if sp, ok := commandTable[n]; ok {
				s.commandInfo(r, sp)
			} else {
				r.null()
			}
		}
	case "DOCS":
		// No documentation: an empty reply lets redis-cli fall back to its
		// built-in hints.
		r.mapHeader(0)
	default:
		r.err(unknownSubcommandError{cmd: "command", sub: string(args[1])})
	}
}

func sortedCommands() []string {
	names := make([]string, 0, len(commandTable))
	for n := range commandTable {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// commandInfo writes one COMMAND INFO entry in Redis 7's ten-field form.
func (s *Server) commandInfo(r reply, sp *commandSpec) {
	r.array(10)
	r.bulk(sp.name)
	r.int(int64(sp.arity))
	r.array(len(sp.flags))
	for _, f := range sp.flags {
		r.status(f)
	}
	r.int(int64(sp.key))
	r.int(int64(sp.key))
	r.int(int64(min(sp.key, 1)))
	r.array(0) // ACL categories
	r.array(0) // tips
	r.array(0) // key specs
	r.array(0) // subcommands
}

// cmdInfo: INFO [section ...]
func (s *Server) cmdInfo(c *client, r reply, args [][]byte) {
	want := map[string]bool{}
	for _, a := range args[1:] {
		want[strings.ToLower(string(a))] = true
	}
	all := len(want) == 0 || want["all"] || want["everything"] || want["default"]
	st := s.node.Status()
	var b strings.Builder
	section := func(name string, lines ...string) {
		if !all && !want[strings.ToLower(name)] {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
	}
	_, port, _ := net.SplitHostPort(s.Addr().String())
	s.mu.Lock()
	nclients := len(s.clients)
	s.mu.Unlock()
	var ms runtime.MemStats
	if all || want["memory"] {
		runtime.ReadMemStats(&ms)
	}
	section("Server",
		"redis_version:7.2.0",
		"lockd_version:"+s.cfg.Version,
		"redis_mode:standalone",
		"os:"+runtime.GOOS,
		"arch_bits:64",
		"go_version:"+runtime.Version(),
		"process_id:"+strconv.Itoa(os.Getpid()),
		"tcp_port:"+port,
		"uptime_in_seconds:"+strconv.Itoa(int(time.Since(s.started).Seconds())),
	)
	section("Clients",
		"connected_clients:"+strconv.Itoa(nclients),
		"maxclients:"+strconv.Itoa(s.cfg.MaxClients),
	)
	section("Memory",
		"used_memory:"+strconv.FormatUint(ms.HeapAlloc, 10),
		"used_memory_rss:"+strconv.FormatUint(ms.Sys, 10),
	)
	section("Persistence",
		"loading:0",
		"async_loading:0",
	)
	section("Stats",
		"total_commands_processed:"+strconv.FormatUint(s.commands.Load(), 10),
		"pending_requests:"+strconv.Itoa(st.Pending),
	)
	repl := []string{
		"role:" + st.Role,
		"node_id:" + strconv.FormatUint(st.ID, 10),
		"leader_id:" + strconv.FormatUint(st.Leader, 10),
		"leader_addr:" + st.LeaderAddr,
		"raft_term:" + strconv.FormatUint(st.Term, 10),
		"commit_index:" + strconv.FormatUint(st.Commit, 10),
		"applied_index:" + strconv.FormatUint(st.Applied, 10),
		"connected_peers:" + strconv.Itoa(connected(st)),
	}
	slices.SortFunc(st.Peers, func(a, b replication.PeerStatus) int { return int(a.ID) - int(b.ID) })
	for _, p := range st.Peers {
		repl = append(repl, fmt.Sprintf("peer%d:addr=%s,connected=%d,dropped=%d", p.ID, p.Addr, b2i(p.Connected), p.Dropped))
	}
	section("Replication", repl...)
	section("Keyspace", fmt.Sprintf("locks:%d", s.node.Table().Len()), fmt.Sprintf("waiters:%d", s.node.Table().Waiting()))
	r.bulk(b.String())
}

func connected(st replication.Status) int {
	n := 0
	for _, p := range st.Peers {
		if p.Connected {
			n++
		}
	}
	return n
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// cmdRole answers in Redis's form: ["master", applied, []] on the leader,
// ["slave", leader host, leader port, state, applied] elsewhere.
func (s *Server) cmdRole(c *client, r reply, args [][]byte) {
	st := s.node.Status()
	if st.Role == "leader" {
		r.array(3)
		r.bulk("master")
		r.int(int64(st.Applied))
		r.array(0)
		return
	}
	host, port, _ := net.SplitHostPort(st.LeaderAddr)
	p, _ := strconv.Atoi(port)
	state := "connected"
	if st.Leader == 0 {
		state = "connect"
	}
	r.array(5)
	r.bulk("slave")
	r.bulk(host)
	r.int(int64(p))
	r.bulk(state)
	r.int(int64(st.Applied))
}

func (s *Server) cmdTime(c *client, r reply, args [][]byte) {
	now := time.Now()
	r.array(2)
	r.bulk(strconv.FormatInt(now.Unix(), 10))
	r.bulk(strconv.Itoa(now.Nanosecond() / 1000))
}
