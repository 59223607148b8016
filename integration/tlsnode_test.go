package integration

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// tlsNode is a one-node cluster that serves TLS clients on addr, and
// plaintext ones on c.nodes[1].client unless it serves TLS only.
type tlsNode struct {
	c        *cluster
	addr     string // the TLS port
	ca       *testCA
	cert     leaf   // the certificate the node started with
	certFile string // the node's --tls-cert-file
	keyFile  string
	client   leaf // a client certificate ca issued
}

// tlsNodeOpts says how to start a tlsNode.
type tlsNodeOpts struct {
	tlsOnly bool     // --listen "": no plaintext port
	noCA    bool     // no --tls-ca-cert-file
	expired bool     // the node's certificate has expired
	extra   []string // more flags
}

// startTLSNode starts a node whose TLS port presents a certificate ca
// issued, and waits until it answers PING over TLS. It is killed at the end
// of the test.
func startTLSNode(t testing.TB, ca *testCA, o tlsNodeOpts) *tlsNode {
	t.Helper()
	n := &tlsNode{ca: ca, addr: freePort(t)}
	n.cert = ca.issue(t, certSpec{cn: "lockd-1", expired: o.expired})
	n.client = ca.issue(t, certSpec{cn: "test-client", client: true})
	n.certFile, n.keyFile = n.cert.files(t)
	p := &proc{id: 1, client: freePort(t), cluster: freePort(t), dir: filepath.Join(t.TempDir(), "1")}
	listen := p.client
	if o.tlsOnly {
		listen, p.client = "", ""
	}
	p.args = []string{
		"--id", "1", "--listen", listen, "--cluster-listen", p.cluster, "--data-dir", p.dir, "--log-level", "debug",
		"--tls-port", n.addr, "--tls-cert-file", n.certFile, "--tls-key-file", n.keyFile,
	}
	if !o.noCA {
		p.args = append(p.args, "--tls-ca-cert-file", ca.file)
	}
	p.args = append(p.args, o.extra...)
	p.logPath = filepath.Join(t.TempDir(), "lockd-1.log")
	n.c = &cluster{t: t, nodes: map[int]*proc{1: p}, proxies: map[[2]int]*proxy{}}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			n.c.dumpLog(1)
		}
	})
	ex := n.c.launch(1)
	// Ready when it answers PING to a client that trusts anything and has
	// a certificate, whatever the node's certificate, client policy and
	// password.
	probe := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{n.client.pair}}
	poll(t, 10*time.Second, "the node to answer PING over TLS", func() bool {
		select {
		case <-ex:
			n.c.dumpLog(1)
			t.Fatalf("the node exited at start")
		default:
		}
		reply, err := n.rawCommand(probe, "PING")
		return err == nil && (reply == "+PONG" || reply == "-NOAUTH Authentication required.")
	})
	return n
}

// trusting is the TLS configuration of a client that trusts ca and
// presents cert, if any, whichever CAs the node says it accepts (as
// OpenSSL's clients do; crypto/tls's would send none it deems unsuitable).
func trusting(ca *testCA, cert *leaf) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c := &tls.Config{RootCAs: pool}
	if cert != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.pair, nil }
	}
	return c
}

// goRedis returns a go-redis client of the TLS port with cfg, which never
// retries on its own, closed at the end of the test.
func (n *tlsNode) goRedis(t testing.TB, cfg *tls.Config, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: n.addr, TLSConfig: cfg, MaxRetries: -1,
		DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 5 * time.Second}
	for _, f := range opts {
		f(o)
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// dialTLS opens a TLS connection to the node with cfg and completes the
// handshake; the connection is closed at the end of the test.
func (n *tlsNode) dialTLS(t testing.TB, cfg *tls.Config) *tls.Conn {
	t.Helper()
	conn, err := n.handshake(cfg)
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", n.addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// handshake opens a TLS connection with cfg, within 5s.
func (n *tlsNode) handshake(cfg *tls.Config) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", n.addr, cfg)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// rawCommand sends one command on a new TLS connection with cfg and
// returns its reply flattened as readReply does.
func (n *tlsNode) rawCommand(cfg *tls.Config, args ...string) (string, error) {
	conn, err := n.handshake(cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, encodeRESP(args...)); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

// presented opens a new TLS connection with cfg, runs PING on it and
// returns the serial number of the certificate the node presented.
func (n *tlsNode) presented(cfg *tls.Config) (int64, error) {
	conn, err := n.handshake(cfg)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return 0, err
	}
	if r, err := readReply(bufio.NewReader(conn)); r != "+PONG" || err != nil {
		return 0, fmt.Errorf("PING = %q, %v", r, err)
	}
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// logCount is how many lines of the node's log contain s.
func (n *tlsNode) logCount(s string) int {
	return strings.Count(n.c.logOf(1), s)
}
