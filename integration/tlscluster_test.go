package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterPKI is the certificates of a cluster with TLS on both ports
// (clusterOpts.tls): a CA, each member's certificate, for 127.0.0.1 with
// the server and client key usages, in files that serve both its client port
// (--tls-cert-file) and its cluster port (--tls-cluster yes reuses them),
// and a client certificate.
type clusterPKI struct {
	ca      *testCA
	client  leaf
	members map[int]*memberCert
}

// memberCert is a member's certificate files and what they hold now.
type memberCert struct {
	certFile, keyFile string
	cert              leaf
}

// useTLS makes the cluster's certificates and has every node serve clients
// on TLS only (its client address becomes its --tls-port, --listen "") and
// speak to its peers over mutual TLS, client certificates required on both
// ports. Called by startCluster before the nodes start.
func (c *cluster) useTLS() {
	c.t.Helper()
	c.pki = &clusterPKI{ca: newCA(c.t, "lockd cluster test CA"), members: map[int]*memberCert{}}
	c.pki.client = c.pki.ca.issue(c.t, certSpec{cn: "test-client", client: true})
	for i, p := range c.nodes {
		m := &memberCert{cert: c.pki.ca.issue(c.t, certSpec{cn: fmt.Sprintf("lockd-%d", i), member: true})}
		m.certFile, m.keyFile = m.cert.files(c.t)
		c.pki.members[i] = m
		p.args = append(p.args, "--listen", "", "--tls-port", p.client, "--tls-cert-file", m.certFile, "--tls-key-file", m.keyFile,
			"--tls-ca-cert-file", c.pki.ca.file, "--tls-cluster", "yes")
	}
}

// clientTLS is the TLS configuration of the cluster's clients, nil without
// TLS.
func (c *cluster) clientTLS() *tls.Config {
	if c.pki == nil {
		return nil
	}
	return trusting(c.pki.ca, &c.pki.client)
}

// dialClient opens a connection to a node's client address within timeout,
// TLS handshake included when the cluster has TLS.
func (c *cluster) dialClient(addr string, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if c.pki == nil {
		return d.Dial("tcp", addr)
	}
	return tls.DialWithDialer(d, "tcp", addr, c.clientTLS())
}

// tlsNode is node i seen as a TLS node, for the TLS helpers of
// tlsnode_test.go (load, presented certificates).
func (c *cluster) tlsNode(i int) *tlsNode {
	m := c.pki.members[i]
	return &tlsNode{c: c, addr: c.nodes[i].client, ca: c.pki.ca, cert: m.cert, certFile: m.certFile, keyFile: m.keyFile, client: c.pki.client}
}

// clusterPortSerial completes a TLS handshake with node i's cluster port as
// a client with a certificate the CA signed (the secret's handshake is not
// attempted) and returns the serial number of the certificate it presented.
func (c *cluster) clusterPortSerial(i int) (int64, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", c.nodes[i].cluster, trusting(c.pki.ca, &c.pki.client))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// peerConnected reports whether node i's INFO says its link to node j is up.
func (c *cluster) peerConnected(i, j int) bool {
	m := c.info(i)
	return m != nil && strings.Contains(m["peer"+strconv.Itoa(j)], ",connected=1,")
}

// TestTLSCluster: three lockd processes with TLS on both ports: clients
// over TLS only, peers over mutual TLS with the secret's handshake inside.
// A lock taken on one node is seen on the others, a follower killed and
// restarted catches up over TLS, and the cluster ports refuse a plaintext
// peer and a TLS client whose certificate another CA signed.
func TestTLSCluster(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{tls: true})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	follower := 1 + lead%3
	if tok, err := lockCmd(ctx, c.client(follower), "tls-cluster", "me"); err != nil || tok <= 0 {
		t.Fatalf("LOCK on follower %d = %d, %v", follower, tok, err)
	}
	for i := 1; i <= 3; i++ {
		poll(t, 10*time.Second, fmt.Sprintf("node %d to see the lock", i), func() bool {
			o, err := ownerOf(ctx, c.client(i), "tls-cluster")
			return err == nil && o == "me"
		})
	}

	c.kill(follower)
	if tok, err := lockCmd(ctx, c.client(lead), "while-it-was-down", "me"); err != nil || tok <= 0 {
		t.Fatalf("LOCK with a follower down = %d, %v", tok, err)
	}
	c.start(follower)
	poll(t, 20*time.Second, "the restarted follower to catch up over TLS", func() bool {
		o, err := ownerOf(ctx, c.client(follower), "while-it-was-down")
		return err == nil && o == "me"
	})
	for i := 1; i <= 3; i++ {
		for j := 1; j <= 3; j++ {
			if i != j {
				poll(t, 10*time.Second, fmt.Sprintf("node %d's link to %d", i, j), func() bool { return c.peerConnected(i, j) })
			}
		}
	}

	t.Run("plaintext-peer", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", c.nodes[lead].cluster, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, encodeRESP("HELLO", "2", "lockd", "2", strings.Repeat("n", 32)))
		if b, _ := io.ReadAll(conn); strings.Contains(string(b), "CHALLENGE") {
			t.Fatalf("a plaintext HELLO was answered %q", b)
		}
		poll(t, 10*time.Second, "the refusal in the log", func() bool {
			return strings.Contains(c.logOf(lead), "does not look like a TLS handshake")
		})
	})
	t.Run("another-CA", func(t *testing.T) {
		other := newCA(t, "another CA")
		stranger := other.issue(t, certSpec{cn: "lockd-2", member: true})
		cfg := trusting(c.pki.ca, &stranger)
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", c.nodes[lead].cluster, cfg)
		if err == nil { // TLS 1.3: the client hears the refusal at its first read
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, encodeRESP("HELLO", "2", "lockd", "2", strings.Repeat("n", 32)))
			if b, _ := io.ReadAll(conn); len(b) != 0 {
				t.Fatalf("HELLO with another CA's certificate was answered %q", b)
			}
		}
		poll(t, 10*time.Second, "the refusal in the log", func() bool {
			return strings.Contains(c.logOf(lead), "certificate signed by unknown authority")
		})
	})
}

// TestTLSClusterRotation: every member's certificate files (serving both
// its client port and its cluster port) are replaced while clients run
// LOCK/UNLOCK over TLS on a follower, whose writes cross the cluster port
// to the leader: no request fails, new client connections and new
// connections to each cluster port are presented the new certificates, and
// a link between members cut after the rotation comes back over the new
// certificates.
func TestTLSClusterRotation(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{tls: true, extra: []string{"--tls-reload-interval", "200ms"}})
	lead := c.waitLeader(10*time.Second, nil)
	f1, f2 := 1+lead%3, 1+(lead+1)%3
	cfg := c.clientTLS()
	n := c.tlsNode(f1)
	l := startTLSLoad(t, n, cfg)
	l.waitEach(t, 10)

	next := map[int]leaf{}
	for i, m := range c.pki.members {
		next[i] = c.pki.ca.issue(t, certSpec{cn: fmt.Sprintf("lockd-%d", i), member: true})
		replaceFile(t, m.keyFile, next[i].keyPEM) // key, then certificate: for a moment they do not match
		replaceFile(t, m.certFile, next[i].certPEM)
	}
	for i := range c.nodes {
		waitPresented(t, c.tlsNode(i), cfg, next[i].serial)
		poll(t, 20*time.Second, fmt.Sprintf("node %d's cluster port to present the new certificate", i), func() bool {
			s, err := c.clusterPortSerial(i)
			if err != nil {
				t.Fatalf("a TLS handshake with node %d's cluster port: %v", i, err)
			}
			return s == next[i].serial
		})
	}

	// The leader's link to the other follower: it carries heartbeats, so
	// the leader notices the cut at once (a link without frames to send
	// notices at its next frame), while the load's follower keeps the
	// leader's quorum. Its new connection is verified both ways with the
	// new certificates.
	c.cut(lead, f2, true)
	poll(t, 10*time.Second, "the cut link to go down", func() bool { return !c.peerConnected(lead, f2) })
	c.healAll()
	poll(t, 10*time.Second, "the cut link to come back over the new certificates", func() bool { return c.peerConnected(lead, f2) })

	l.waitEach(t, 30)
	l.stop(t)
	if !l.sawSerial(next[f1].serial) || !l.sawSerial(n.cert.serial) {
		t.Fatalf("new client connections under load saw serials %v; want %d then %d", l.serials(), n.cert.serial, next[f1].serial)
	}
	for i := range c.nodes {
		if s := strings.Count(c.logOf(i), "cluster tls: files changed; new handshakes use them"); s == 0 {
			t.Errorf("node %d's log does not tell the cluster port's reload", i)
		}
	}
}

// TestTLSClusterIdentity: two lockd processes whose cluster ports are on
// 127.0.0.1 and 127.0.0.2, standing for two hosts, with --tls-cluster yes
// (and plaintext client ports). Node 2 first has a certificate the CA
// signed for 127.0.0.1, node 1's address: node 1 refuses it both ways (when
// node 2 dials it, and when it dials node 2), says so in its log, and no
// raft message crosses, so no leader is elected. Restarted with a
// certificate for its own address, node 2 is admitted and a leader elected.
func TestTLSClusterIdentity(t *testing.T) {
	ca := newCA(t, "lockd cluster test CA")
	secret := writeTemp(t, "cluster-secret", []byte(strings.Repeat("s", 32)))
	c := &cluster{t: t, nodes: map[int]*proc{}, proxies: map[[2]int]*proxy{}}
	var peers []string
	for i := 1; i <= 2; i++ {
		_, port, err := net.SplitHostPort(freePort(t))
		if err != nil {
			t.Fatal(err)
		}
		p := &proc{id: i, client: freePort(t), cluster: net.JoinHostPort(fmt.Sprintf("127.0.0.%d", i), port),
			dir: filepath.Join(t.TempDir(), fmt.Sprint(i)), logPath: filepath.Join(t.TempDir(), fmt.Sprintf("lockd-%d.log", i))}
		c.nodes[i] = p
		peers = append(peers, fmt.Sprintf("%d=%s", i, p.cluster))
	}
	certs := map[int]leaf{
		1: ca.issue(t, certSpec{cn: "lockd-1", member: true}),
		2: ca.issue(t, certSpec{cn: "lockd-2", member: true}), // for 127.0.0.1: not node 2's
	}
	files := map[int][2]string{}
	for i, p := range c.nodes {
		certFile, keyFile := certs[i].files(t)
		files[i] = [2]string{certFile, keyFile}
		p.args = []string{"--id", fmt.Sprint(i), "--listen", p.client, "--cluster-listen", p.cluster,
			"--peers", strings.Join(peers, ","), "--data-dir", p.dir, "--cluster-secret-file", secret, "--log-level", "debug",
			"--tls-cluster", "yes", "--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", ca.file}
	}
	t.Cleanup(func() {
		for i, p := range c.nodes {
			p.kill()
			if t.Failed() {
				c.dumpLog(i)
			}
		}
	})
	c.start(1)
	c.start(2)
	poll(t, 10*time.Second, "node 1 to refuse node 2's certificate both ways", func() bool {
		log := c.logOf(1)
		return strings.Contains(log, "node 2: certificate of") && strings.Contains(log, "is not for this member's address 127.0.0.2") &&
			strings.Contains(log, `msg="cannot connect to peer" node=1 peer=2`) && strings.Contains(log, "not 127.0.0.2")
	})
	for i := 1; i <= 2; i++ {
		if m := c.info(i); m["connected_peers"] != "0" || m["leader_id"] != "0" {
			t.Fatalf("node %d, the link refused: connected_peers %q, leader %q; want 0 and 0", i, m["connected_peers"], m["leader_id"])
		}
	}

	c.kill(2)
	right := ca.issue(t, certSpec{cn: "lockd-2", member: true, ip: "127.0.0.2"})
	replaceFile(t, files[2][1], right.keyPEM)
	replaceFile(t, files[2][0], right.certPEM)
	c.start(2)
	c.waitLeader(20*time.Second, nil)
}
