package server

import (
	"crypto/tls"
	"net"
)

// certificateUser returns the ACL user a TLS connection's client
// certificate names, with TLSConfig.AuthClientsUser CN: the subject common
// name of a certificate the CA file's CAs verified, when a user of that
// name exists and is on (Redis 8.6's tls-auth-clients-user). Otherwise, and
// for a plaintext connection, ok is false and the connection starts as any
// other. Like AUTH, it is checked against the users this node has applied
// (see provisional).
func (s *Server) certificateUser(nc *clientConn) (name string, ok bool) {
	if s.cfg.TLS.AuthClientsUser != TLSAuthClientsUserCN {
		return "", false
	}
	var c net.Conn = nc.Conn
	for range 4 { // the client conn, the wire guard, TLS: never deeper
		if tc, isTLS := c.(*tls.Conn); isTLS {
			st := tc.ConnectionState()
			if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
				return "", false
			}
			name = st.PeerCertificates[0].Subject.CommonName
			if u, found := s.user(name); found && u.On && name != "" {
				return name, true
			}
			return "", false
		}
		w, wraps := c.(interface{ NetConn() net.Conn })
		if !wraps {
			return "", false
		}
		c = w.NetConn()
	}
	return "", false
}
