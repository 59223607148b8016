package peering

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockd/lockd/internal/tlsfiles"
	"go.etcd.io/raft/v3/raftpb"
)

// testCA is a certificate authority a test makes for itself.
type testCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	file   string // its certificate, PEM
	serial int64
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, file: filepath.Join(t.TempDir(), "ca.crt"), serial: 1}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// nodeCert is a node certificate ca issued, for serving and dialing alike,
// valid for host (an IP address or a DNS name), or expired.
type nodeCert struct {
	host    string
	expired bool
}

// issue writes the certificate and its key to files and returns their paths.
func (ca *testCA) issue(t testing.TB, spec nodeCert) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	ca.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: "node for " + spec.host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ip := net.ParseIP(spec.host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{spec.host}
	}
	if spec.expired {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

// files loads a certificate ca issued as the cluster port does, trusting
// ca.
func (ca *testCA) files(t testing.TB, spec nodeCert) *tlsfiles.Files {
	t.Helper()
	cert, key := ca.issue(t, spec)
	f, err := tlsfiles.Load(ClusterTLS(cert, key, ca.file), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// logBuf collects a Transport's log lines, from any goroutine.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// has reports whether a line holds every one of parts.
func (l *logBuf) has(parts ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(l.b.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// withTLS has a member use files on its cluster port and log into log.
func withTLS(files *tlsfiles.Files, log *logBuf) func(*Config) {
	return func(c *Config) {
		c.TLS = files
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
}

// tlsPair starts members 1 and 2 over loopback, each with its own TLS
// files, and returns them with their logs.
func tlsPair(t testing.TB, f1, f2 *tlsfiles.Files) (a, b *member, la, lb *logBuf) {
	t.Helper()
	ln1, ln2 := listen(t), listen(t)
	peers := map[uint64]string{1: ln1.Addr().String(), 2: ln2.Addr().String()}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	la, lb = &logBuf{}, &logBuf{}
	a = startMemberWith(t, 1, peers, ln1, dial, nil, withTLS(f1, la))
	b = startMemberWith(t, 2, peers, ln2, dial, nil, withTLS(f2, lb))
	return a, b, la, lb
}

// waitFor polls until cond holds, failing after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Members whose certificates the CA signed for their own addresses talk
// over TLS: raft messages and forwarded commands reach the other side.
func TestTLSMembersExchangeFrames(t *testing.T) {
	ca := newCA(t, "lockd test CA")
	a, b, _, _ := tlsPair(t, ca.files(t, nodeCert{host: "127.0.0.1"}), ca.files(t, nodeCert{host: "127.0.0.1"}))
	var one, two uint64 = 1, 2
	a.tr.Send(&raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: &one, To: &two})
	b.tr.Send(&raftpb.Message{Type: raftpb.MsgHeartbeatResp.Enum(), From: &two, To: &one})
	if got := receive(t, "heartbeat", b.h.steps); got.GetFrom() != one {
		t.Fatalf("member 2 got %v", got)
	}
	if got := receive(t, "heartbeat response", a.h.steps); got.GetFrom() != two {
		t.Fatalf("member 1 got %v", got)
	}
}

// A member whose certificate another CA signed, or that has expired, or
// that the CA signed for another host, is refused both ways: when it dials
// (by the listener) and when it is dialed (by the dialer). The refusing
// side logs who and why, and no raft message crosses.
func TestTLSBadCertificatesAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  func(ca *testCA) *tlsfiles.Files
		why  string // in both refusals
	}{
		{"another CA", func(ca *testCA) *tlsfiles.Files {
			// It trusts the cluster's CA too, as a stranger may: the
			// refusal is the cluster's.
			other := newCA(t, "another CA")
			cert, key := other.issue(t, nodeCert{host: "127.0.0.1"})
			both := filepath.Join(t.TempDir(), "both.crt")
			if err := os.WriteFile(both, append(readFile(t, ca.file), readFile(t, other.file)...), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := tlsfiles.Load(ClusterTLS(cert, key, both), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			return f
		}, "certificate signed by unknown authority"},
		{"expired", func(ca *testCA) *tlsfiles.Files {
			return ca.files(t, nodeCert{host: "127.0.0.1", expired: true})
		}, "certificate has expired"},
		{"another host", func(ca *testCA) *tlsfiles.Files {
			return ca.files(t, nodeCert{host: "127.0.0.9"})
		}, "certificate is valid for 127.0.0.9, not 127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := newCA(t, "lockd test CA")
			a, b, la, lb := tlsPair(t, ca.files(t, nodeCert{host: "127.0.0.1"}), tc.bad(ca))
			var one, two uint64 = 1, 2
			a.tr.Send(&raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: &one, To: &two})
			b.tr.Send(&raftpb.Message{Type: raftpb.MsgHeartbeatResp.Enum(), From: &two, To: &one})
			defer func() {
				if t.Failed() {
					t.Logf("member 1's log:\n%s", la)
				}
			}()
			waitFor(t, "refusals in member 1's log", func() bool {
				return la.has(`msg="refused peer"`, tc.why) && la.has(`msg="cannot connect to peer"`, "peer=2", tc.why)
			})
			waitFor(t, "member 2 to log that member 1 refused its certificate", func() bool {
				return lb.has(`msg="refused peer"`, "the dialer refused this node's certificate")
			})
			if len(a.h.steps) != 0 || len(b.h.steps) != 0 {
				t.Fatalf("raft messages crossed: %d to member 1, %d to member 2\n%s", len(a.h.steps), len(b.h.steps), la)
			}
			for _, m := range []*member{a, b} {
				for _, p := range m.tr.Peers() {
					if p.Connected {
						t.Fatalf("member %d is connected to %d", m.id, p.ID)
					}
				}
			}
		})
	}
}

// loneTLS is lone with TLS on its cluster port: member 1 of three, whose
// other members, at 127.0.0.1, never answer.
func loneTLS(t testing.TB, files *tlsfiles.Files, log *logBuf) *member {
	t.Helper()
	ln := listen(t)
	peers := map[uint64]string{1: ln.Addr().String(), 2: "127.0.0.1:2", 3: "127.0.0.1:3"}
	return startMemberWith(t, 1, peers, ln, func(context.Context, string) (net.Conn, error) {
		return nil, errors.New("this test's other members do not answer")
	}, nil, withTLS(files, log))
}

// dialRawTLS opens a TLS connection to m presenting the certificate of
// files (none when nil) and trusting ca, and returns a rawPeer on it, or the
// handshake's error.
func dialRawTLS(t testing.TB, m *member, ca *testCA, files *tlsfiles.Files) (*rawPeer, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
	cfg.RootCAs.AddCert(ca.cert)
	if files != nil {
		cfg = files.ClientConfig("127.0.0.1")
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	conn, err := d.Dial("tcp", m.addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	return rawOn(t, conn), nil
}

// What reaches a TLS cluster port without both a certificate the CA signed
// for its member's address and the secret is refused, and so is a handshake
// replayed inside TLS; what says nothing is disconnected once the
// handshake's time is up.
func TestTLSStrangersAreRefused(t *testing.T) {
	ca := newCA(t, "lockd test CA")
	log := &logBuf{}
	m := loneTLS(t, ca.files(t, nodeCert{host: "127.0.0.1"}), log)
	good := ca.files(t, nodeCert{host: "127.0.0.1"})

	t.Run("plaintext", func(t *testing.T) {
		p := dialRaw(t, m)
		p.send([]byte("HELLO"), []byte("2"), []byte("test"), u64(2), bytes.Repeat([]byte("n"), nonceSize))
		if ch, r := p.recv(); ch != nil || r == "" {
			t.Fatalf("a plaintext HELLO answered %q", ch)
		}
		waitFor(t, "the refusal logged", func() bool {
			return log.has(`msg="refused peer"`, "does not look like a TLS handshake")
		})
	})
	t.Run("the secret without a certificate", func(t *testing.T) {
		p, err := dialRawTLS(t, m, ca, nil)
		if err == nil { // TLS 1.3: the client hears the refusal at its first read
			p.send([]byte("HELLO"), []byte("2"), []byte("test"), u64(2), bytes.Repeat([]byte("n"), nonceSize))
			if ch, _ := p.recv(); ch != nil {
				t.Fatalf("HELLO without a certificate answered %q", ch)
			}
		}
		waitFor(t, "the refusal logged", func() bool {
			return log.has(`msg="refused peer"`, "client didn't provide a certificate")
		})
	})
	t.Run("a certificate without the secret", func(t *testing.T) {
		p, err := dialRawTLS(t, m, ca, good)
		if err != nil {
			t.Fatal(err)
		}
		if r := p.handshake("test", 2, "not-the-secret-at-all", incarnation(2)); r != "-ERR refused" {
			t.Fatalf("handshake answered %q; want -ERR refused", r)
		}
	})
	t.Run("replayed", func(t *testing.T) {
		p, err := dialRawTLS(t, m, ca, good)
		if err != nil {
			t.Fatal(err)
		}
		if r := p.handshake("test", 2, testSecret, incarnation(2)); r != "" {
			t.Fatalf("the recorded handshake: %s", r)
		}
		q, err := dialRawTLS(t, m, ca, good)
		if err != nil {
			t.Fatal(err)
		}
		q.conn.Write(p.sent[0])
		if ch, r := q.recv(); r != "" || ch[0] != "CHALLENGE" {
			t.Fatalf("replayed HELLO answered %q %q", ch, r)
		}
		q.conn.Write(p.sent[1])
		if _, r := q.recv(); r != "-ERR refused" {
			t.Fatalf("replayed AUTH answered %q; want -ERR refused", r)
		}
	})
	t.Run("silent", func(t *testing.T) {
		p := dialRaw(t, m) // reads give up after 5 s; the handshake's time is 2 s
		if _, err := io.Copy(io.Discard, p.conn); err != nil {
			t.Fatalf("a connection that sends nothing: %v; want it closed", err)
		}
	})
	if len(m.h.steps) != 0 {
		t.Fatalf("%d raft messages reached the handler", len(m.h.steps))
	}
}

// A member added after the Transport started (SetPeers) is checked against
// the address it was added with: member 1, started alone, learns of member
// 2 and admits its TLS dial (it was refused: the identity was looked up in
// the peers given at start, where member 2 was not).
func TestTLSMemberAddedLaterIsAdmitted(t *testing.T) {
	ca := newCA(t, "lockd test CA")
	ln1, ln2 := listen(t), listen(t)
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	la, lb := &logBuf{}, &logBuf{}
	a := startMemberWith(t, 1, map[uint64]string{1: ln1.Addr().String()}, ln1, dial, nil, withTLS(ca.files(t, nodeCert{host: "127.0.0.1"}), la))
	both := map[uint64]string{1: ln1.Addr().String(), 2: ln2.Addr().String()}
	b := startMemberWith(t, 2, both, ln2, dial, nil, withTLS(ca.files(t, nodeCert{host: "127.0.0.1"}), lb))
	a.tr.SetPeers(both)
	var one, two uint64 = 1, 2
	b.tr.Send(&raftpb.Message{Type: raftpb.MsgHeartbeatResp.Enum(), From: &two, To: &one})
	if got := receive(t, "heartbeat response from the added member", a.h.steps); got.GetFrom() != two {
		t.Fatalf("member 1 got %v; its log:\n%s", got, la)
	}
}
