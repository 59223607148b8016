package server

import (
	"fmt"
	"math/bits"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lockd/lockd/acl"
	"github.com/lockd/lockd/replication"
)

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
	last := sp.key
	if sp.lastKey != 0 {
		last = sp.lastKey
	}
	r.int(int64(sp.key))
	r.int(int64(last))
	r.int(int64(min(sp.key, 1)))
	r.array(bits.OnesCount16(uint16(sp.cats)))
	for _, cat := range acl.CategoryNames() {
		if sp.cats&acl.CategoryByName(cat) != 0 {
			r.status("@" + cat)
		}
	}
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
	port := func(a net.Addr) string {
		if a == nil {
			return "0" // as Redis shows a port that is off
		}
		_, p, _ := net.SplitHostPort(a.String())
		return p
	}
	s.mu.Lock()
	nclients := len(s.clients)
	s.mu.Unlock()
	var ms runtime.MemStats
	if all || want["memory"] {
		runtime.ReadMemStats(&ms)
	}
	section("Server",
		"redis_version:7.2.0",
		"lockd_version:"+s.cfg.Build,
		"redis_mode:standalone",
		"os:"+runtime.GOOS,
		"arch_bits:64",
		"go_version:"+runtime.Version(),
		"process_id:"+strconv.Itoa(os.Getpid()),
		"tcp_port:"+port(s.Addr()),
		"tls_port:"+port(s.TLSAddr()),
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
		membersLine(s.node.Members()),
	}
	slices.SortFunc(st.Peers, func(a, b replication.PeerStatus) int { return int(a.ID) - int(b.ID) })
	for _, p := range st.Peers {
		repl = append(repl, fmt.Sprintf("peer%d:addr=%s,connected=%d,dropped=%d", p.ID, p.Addr, b2i(p.Connected), p.Dropped))
	}
	section("Replication", repl...)
	t := s.node.Table()
	n := t.Len()
	var keyspace []string
	if n > 0 {
		// Redis's line, which client libraries and tools parse; Redis has
		// none for an empty database. The table does not count its leases,
		// so expires is 0 (docs/PROTOCOL.md).
		keyspace = append(keyspace, fmt.Sprintf("db0:keys=%d,expires=0,avg_ttl=0", n))
	}
	keyspace = append(keyspace, fmt.Sprintf("locks:%d", n), fmt.Sprintf("waiters:%d", t.Waiting()))
	keyspace = append(keyspace, fmt.Sprintf("shared_locks:%d", t.SharedLen()))
	section("Keyspace", keyspace...)
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
