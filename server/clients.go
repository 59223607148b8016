package server

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lockd/lockd/acl"
)

// cmdClient: CLIENT ID|SETNAME|GETNAME|SETINFO|INFO|LIST|KILL|HELP
func (s *Server) cmdClient(c *client, r reply, args [][]byte) {
	sub := strings.ToUpper(string(args[1]))
	n := len(args)
	switch {
	case sub == "ID" && n == 2:
		r.int(int64(c.id))
	case sub == "READS" && n == 3:
		// lockd's own: this connection's reads wait for a read index
		// (linearizable) or answer from the replica as it is (local).
		switch strings.ToUpper(string(args[2])) {
		case "LINEARIZABLE":
			c.linearizable = true
		case "LOCAL":
			c.linearizable = false
		default:
			r.err(errReadsMode)
			return
		}
		r.ok()
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
	name, lib, ver, user := c.name, c.libName, c.libVer, c.user
	c.mu.Unlock()
	if user == "" {
		user = acl.DefaultName // as Redis, before AUTH
	}
	cmd := "NULL"
	if sp := c.last.Load(); sp != nil {
		cmd = sp.name
	}
	return fmt.Sprintf("id=%d addr=%s laddr=%s fd=0 name=%s age=%d idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 cmd=%s user=%s lib-name=%s lib-ver=%s resp=%d",
		c.id, c.addr, c.laddr, name, int(time.Since(c.created).Seconds()), cmd, user, lib, ver, respVersion(c.resp3.Load()))
}

func respVersion(resp3 bool) int {
	if resp3 {
		return 3
	}
	return 2
}

// clientKill: CLIENT KILL ip:port | CLIENT KILL ID id | ADDR ip:port | USER name [...].
// With filters, the caller itself is spared unless SKIPME no.
func (s *Server) clientKill(self *client, r reply, args [][]byte) {
	var match func(*client) bool
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
			case "USER":
				filters = append(filters, func(c *client) bool {
					c.mu.Lock()
					defer c.mu.Unlock()
					return c.user == val
				})
			case "TYPE", "MAXAGE":
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
