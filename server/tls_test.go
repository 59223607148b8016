package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lockd/lockd/replication"
)

// A TLSConfig that cannot serve is refused by New, which starts nothing.
func TestTLSConfigValidate(t *testing.T) {
	cert, key := tlsPair(t, 1)
	for _, tc := range []struct {
		name string
		tls  TLSConfig
	}{
		{"no-certificate", TLSConfig{KeyFile: key, AuthClients: TLSAuthClientsNo}},
		{"no-key", TLSConfig{CertFile: cert, AuthClients: TLSAuthClientsNo}},
		{"auth-clients-yes-without-CA", TLSConfig{CertFile: cert, KeyFile: key}},
		{"auth-clients-optional-without-CA", TLSConfig{CertFile: cert, KeyFile: key, AuthClients: TLSAuthClientsOptional}},
		{"auth-clients-unknown", TLSConfig{CertFile: cert, KeyFile: key, CAFile: cert, AuthClients: "sometimes"}},
		{"auth-clients-user-unknown", TLSConfig{CertFile: cert, KeyFile: key, CAFile: cert, AuthClients: TLSAuthClientsYes, AuthClientsUser: "SAN"}},
		{"auth-clients-user-CN-without-client-certificates", TLSConfig{CertFile: cert, KeyFile: key, AuthClients: TLSAuthClientsNo, AuthClientsUser: TLSAuthClientsUserCN}},
		{"negative-handshake-timeout", TLSConfig{CertFile: cert, KeyFile: key, AuthClients: TLSAuthClientsNo, HandshakeTimeout: -1}},
		{"missing-file", TLSConfig{CertFile: cert + ".missing", KeyFile: key, AuthClients: TLSAuthClientsNo}},
		{"key-of-another-certificate", TLSConfig{CertFile: cert, KeyFile: func() string { _, k := tlsPair(t, 2); return k }(), AuthClients: TLSAuthClientsNo}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			srv, err := New(Config{TLSListener: ln, TLS: tc.tls, Node: nodeConfig(t)})
			if err == nil {
				srv.Close()
				t.Fatalf("New with %+v started a node", tc.tls)
			}
			t.Log(err)
		})
	}
}

// Close ends the handshakes under way, however long their timeout, and
// returns; the connections are closed.
func TestTLSCloseEndsHandshakes(t *testing.T) {
	cert, key := tlsPair(t, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{TLSListener: ln, Node: nodeConfig(t),
		TLS: TLSConfig{CertFile: cert, KeyFile: key, AuthClients: TLSAuthClientsNo, HandshakeTimeout: time.Hour}})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	var strangers []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", srv.TLSAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		strangers = append(strangers, c)
	}
	// A client that completes its handshake is served meanwhile.
	tc, err := tls.Dial("tcp", srv.TLSAddr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(replyTimeout))
	io.WriteString(tc, "PING\r\n")
	pong := make([]byte, 7)
	if _, err := io.ReadFull(tc, pong); err != nil || string(pong) != "+PONG\r\n" {
		t.Fatalf("PING over TLS beside the strangers = %q, %v", pong, err)
	}

	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return within 20s with handshakes under way")
	}
	for i, c := range strangers {
		c.SetReadDeadline(time.Now().Add(replyTimeout))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Errorf("stranger %d after Close: %v; want the connection closed", i, err)
		}
	}
}

// nodeConfig is a single node's replication config in a test directory.
func nodeConfig(t testing.TB) replication.Config {
	return replication.Config{ID: 1, DataDir: t.TempDir()}
}

// tlsPair writes a self-signed ECDSA P-256 certificate for 127.0.0.1 with
// serial number serial, and its key, to files in a test directory.
func tlsPair(t testing.TB, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "lockd test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// At most MaxClients handshakes run at once: a connection past them is
// closed at once, while those under way go on.
func TestTLSPendingHandshakesBounded(t *testing.T) {
	cert, key := tlsPair(t, 1)
	srv := startServer(t, func(c *Config) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c.MaxClients = 2
		c.TLSListener = ln
		c.TLS = TLSConfig{CertFile: cert, KeyFile: key, AuthClients: TLSAuthClientsNo, HandshakeTimeout: time.Hour}
	})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", srv.TLSAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	pending := []net.Conn{dial(), dial()}
	past := dial()
	past.SetReadDeadline(time.Now().Add(replyTimeout))
	if _, err := io.Copy(io.Discard, past); err != nil {
		t.Fatalf("a third handshake with MaxClients 2: %v; want the connection closed", err)
	}
	for i, c := range pending {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond)) // they stay open: a read times out
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("handshake %d under way: %v; want it still open", i, err)
		}
	}
}
