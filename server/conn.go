package server

import (
	"fmt"
	"strings"
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
	c.quit = true
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

// cmdAuth: AUTH [user] password (see acl.go for the users).
func (s *Server) cmdAuth(c *client, r reply, args [][]byte) {
	if len(args) > 3 {
		r.err(errSyntax)
		return
	}
	user, pass := "default", args[len(args)-1]
	if len(args) == 3 {
		user = string(args[1])
	}
	if d, _ := s.user(user); len(args) == 2 && d.NoPass {
		// As Redis with a password-less default user: AUTH <password>
		// alone is a configuration mistake.
		r.err(errNoPassword)
		return
	}
	if err := s.checkAuth(c, user, pass); err != nil {
		r.err(err)
		return
	}
	r.ok()
}

// checkAuth makes user the user of c if it is on and pass opens it (any
// pass does a nopass user).
func (s *Server) checkAuth(c *client, user string, pass []byte) error {
	u, ok := s.user(user)
	if !ok || !u.On || !u.CheckPassword(pass) {
		return errWrongPass
	}
	c.setUser(user)
	s.mu.Lock()
	s.provisional(c)
	s.mu.Unlock()
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
			if err := s.checkAuth(c, string(args[i+1]), args[i+2]); err != nil {
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
