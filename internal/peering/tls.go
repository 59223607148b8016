package peering

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/lockd/lockd/internal/tlsfiles"
)

// Mutual TLS on the cluster port (Config.TLS). With it every connection is
// TLS 1.3 first, and the handshake of handshake.go runs inside it, so a
// member needs both a certificate the CA signed for its own address and the
// cluster secret: a stolen secret alone, or a CA-signed certificate alone,
// does not admit a peer.
//
//   - The listener asks for and verifies the dialer's certificate against
//     the CA (chain, validity dates, client-auth key usage) before reading
//     anything from it; the TLS handshake counts among the connections in
//     their handshake (maxHandshakes) and must end within handshakeTimeout
//     of the accept.
//   - The dialer verifies the listener's certificate against the CA and
//     for the host of the address it dialed (the peer's --peers address):
//     crypto/tls's host name check, a DNS name or IP address SAN.
//   - Once the dialer has proved the secret and that it is member id, the
//     listener checks that its certificate is valid for the host of member
//     id's address, the same check the other way: a member's certificate
//     cannot speak for another member.
//
// A refusal is logged by the side that refuses, with the remote address and
// why; the other side hears a TLS alert or "-ERR refused".

// ClusterTLS is how the cluster port loads its files: certificates verified
// both ways against CAFile, TLS 1.3 only (every member is a lockd).
func ClusterTLS(certFile, keyFile, caFile string) tlsfiles.Config {
	return tlsfiles.Config{
		Name: "cluster tls", CertFile: certFile, KeyFile: keyFile, CAFile: caFile,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13,
	}
}

// acceptTLS completes the TLS handshake of an accepted connection, when the
// cluster port has TLS, within handshakeTimeout; it returns conn itself
// without TLS. On an error the caller closes conn.
func (t *Transport) acceptTLS(conn net.Conn) (net.Conn, error) {
	if t.cfg.TLS == nil {
		return conn, nil
	}
	tc := tls.Server(conn, t.serverTLS)
	ctx, cancel := context.WithTimeout(t.ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		if isAlert(err) {
			return nil, fmt.Errorf("TLS handshake: the dialer refused this node's certificate: %w", err)
		}
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// isAlert reports whether err is a TLS alert the other side sent: it
// refused this node's certificate, or the handshake.
func isAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}

// dialTLS completes the TLS handshake of a connection to the peer at addr,
// when the cluster port has TLS, within handshakeTimeout; it returns conn
// itself without TLS. On an error conn is closed.
func (t *Transport) dialTLS(conn net.Conn, addr string) (net.Conn, error) {
	if t.cfg.TLS == nil {
		return conn, nil
	}
	tc := tls.Client(conn, t.cfg.TLS.ClientConfig(hostOf(addr)))
	ctx, cancel := context.WithTimeout(t.ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// checkIdentity checks that the certificate of the dialer on conn, which
// proved it is the member whose cluster address is addr, is valid for that
// address's host. Without TLS there is nothing to check.
func checkIdentity(conn net.Conn, addr string) error {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return nil
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return errors.New("no certificate") // RequireAndVerifyClientCert makes this unreachable
	}
	if err := certs[0].VerifyHostname(hostOf(addr)); err != nil {
		return fmt.Errorf("certificate of %q is not for this member's address %s: %w", certs[0].Subject.String(), addr, err)
	}
	return nil
}

// hostOf is the host part of a host:port address, or addr itself.
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
