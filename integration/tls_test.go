package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestTLSHandshakes: go-redis over TLS, against nodes with each
// --tls-auth-clients policy. A client with a certificate the node's CA
// signed is served; one without, or with another CA's, is refused where the
// policy requires or verifies certificates; a client that does not trust the
// node's CA, or a node whose certificate has expired, is refused by the
// client. The plaintext port serves beside the TLS one, or not at all with
// --listen "", and INFO tells both ports.
func TestTLSHandshakes(t *testing.T) {
	ca, other := newCA(t, "lockd test CA"), newCA(t, "another CA")
	yes := startTLSNode(t, ca, tlsNodeOpts{})
	optional := startTLSNode(t, ca, tlsNodeOpts{extra: []string{"--tls-auth-clients", "optional"}})
	tlsOnly := startTLSNode(t, ca, tlsNodeOpts{tlsOnly: true, noCA: true, extra: []string{"--tls-auth-clients", "no"}})
	expired := startTLSNode(t, ca, tlsNodeOpts{expired: true})
	stranger := other.issue(t, certSpec{cn: "stranger", client: true})

	for _, tc := range []struct {
		name    string
		node    *tlsNode
		cfg     *tls.Config
		wantErr string // "" when served
	}{
		{"yes/client-certificate", yes, trusting(ca, &yes.client), ""},
		{"yes/no-client-certificate", yes, trusting(ca, nil), "certificate required"},
		{"yes/client-certificate-of-another-CA", yes, trusting(ca, &stranger), "remote error: tls: "},
		{"yes/client-trusts-another-CA", yes, trusting(other, &yes.client), "x509: certificate signed by unknown authority"},
		{"optional/no-client-certificate", optional, trusting(ca, nil), ""},
		{"optional/client-certificate", optional, trusting(ca, &optional.client), ""},
		{"optional/client-certificate-of-another-CA", optional, trusting(ca, &stranger), "remote error: tls: "},
		{"no/tls-only/no-client-certificate", tlsOnly, trusting(ca, nil), ""},
		{"expired-server-certificate", expired, trusting(ca, &expired.client), "x509: certificate has expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := tc.node.goRedis(t, tc.cfg)
			if tc.wantErr == "" {
				roundTrip(t, rdb, "tls-"+strings.ReplaceAll(tc.name, "/", "-"))
				return
			}
			_, err := lockCmd(context.Background(), rdb, "refused", "me")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("LOCK over TLS: %v; want an error with %q", err, tc.wantErr)
			}
		})
	}

	t.Run("plaintext-beside-TLS", func(t *testing.T) {
		roundTrip(t, yes.c.client(1), "plaintext-beside")
		_, plainPort, _ := net.SplitHostPort(yes.c.nodes[1].client)
		_, tlsPort, _ := net.SplitHostPort(yes.addr)
		m := infoSection(t, yes.goRedis(t, trusting(ca, &yes.client)), "server")
		if m["tcp_port"] != plainPort || m["tls_port"] != tlsPort {
			t.Fatalf("INFO server: tcp_port %q, tls_port %q; want %s and %s", m["tcp_port"], m["tls_port"], plainPort, tlsPort)
		}
	})
	t.Run("plaintext-client-on-the-TLS-port", func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: yes.addr, MaxRetries: -1, DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second})
		t.Cleanup(func() { rdb.Close() })
		if _, err := lockCmd(context.Background(), rdb, "plain", "me"); err == nil {
			t.Fatal("a plaintext LOCK on the TLS port succeeded")
		}
	})
	t.Run("tls-only", func(t *testing.T) {
		_, tlsPort, _ := net.SplitHostPort(tlsOnly.addr)
		m := infoSection(t, tlsOnly.goRedis(t, trusting(ca, nil)), "server")
		if m["tcp_port"] != "0" || m["tls_port"] != tlsPort {
			t.Fatalf("INFO server: tcp_port %q, tls_port %q; want 0 and %s", m["tcp_port"], m["tls_port"], tlsPort)
		}
		if !strings.Contains(tlsOnly.c.logOf(1), `listen="" tls=`+tlsOnly.addr) {
			t.Fatalf("the log does not say the node listens on TLS only:\n%s", tlsOnly.c.logOf(1))
		}
	})
}

// TestTLSBadStart: a TLS port that cannot serve stops lockd at start with
// a message that names what is wrong: exit 2 for flags that do not go
// together, 1 for files that cannot be loaded.
func TestTLSBadStart(t *testing.T) {
	ca := newCA(t, "lockd test CA")
	certFile, keyFile := ca.issue(t, certSpec{cn: "lockd-1"}).files(t)
	otherKey := writeTemp(t, "other.key", ca.issue(t, certSpec{cn: "other"}).keyPEM)
	garbage := writeTemp(t, "garbage.pem", []byte("not a certificate\n"))
	missing := certFile + ".missing"
	for _, tc := range []struct {
		name string
		args []string
		rc   int
		want string
	}{
		{"no-cert", []string{"--tls-key-file", keyFile, "--tls-auth-clients", "no"}, 2, "--tls-port needs --tls-cert-file and --tls-key-file"},
		{"no-key", []string{"--tls-cert-file", certFile, "--tls-auth-clients", "no"}, 2, "--tls-port needs --tls-cert-file and --tls-key-file"},
		{"auth-clients-yes-without-CA", []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile}, 2, "--tls-auth-clients yes verifies client certificates: give --tls-ca-cert-file"},
		{"auth-clients-bad", []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-auth-clients", "maybe"}, 2, `--tls-auth-clients "maybe": want yes, no or optional`},
		{"cert-missing", []string{"--tls-cert-file", missing, "--tls-key-file", keyFile, "--tls-auth-clients", "no"}, 1, "no such file or directory"},
		{"cert-garbage", []string{"--tls-cert-file", garbage, "--tls-key-file", keyFile, "--tls-auth-clients", "no"}, 1, "failed to find any PEM data in certificate input"},
		{"key-of-another-certificate", []string{"--tls-cert-file", certFile, "--tls-key-file", otherKey, "--tls-auth-clients", "no"}, 1, "private key does not match public key"},
		{"CA-garbage", []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", garbage}, 1, "holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--listen", "", "--tls-port", freePort(t), "--cluster-listen", freePort(t), "--data-dir", t.TempDir()}, tc.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, lockdBin, args...).CombinedOutput()
			if rc := exitCode(err); rc != tc.rc || !strings.Contains(string(out), tc.want) {
				t.Fatalf("lockd %q: exit %d, output:\n%s\nwant exit %d and %q", args, rc, out, tc.rc, tc.want)
			}
		})
	}
}

// TestTLSSameLimitsAsPlaintext: a TLS client meets the plaintext port's
// limits: --requirepass, --max-clients (counted over both ports), the wire
// guard and the idle --timeout.
func TestTLSSameLimitsAsPlaintext(t *testing.T) {
	ca := newCA(t, "lockd test CA")
	n := startTLSNode(t, ca, tlsNodeOpts{extra: []string{"--requirepass", testPassword, "--max-clients", "3"}})
	cfg := trusting(ca, &n.client)

	t.Run("requirepass", func(t *testing.T) {
		if r, err := n.rawCommand(cfg, "LOCK", "a", "me"); r != "-NOAUTH Authentication required." || err != nil {
			t.Fatalf("LOCK without AUTH over TLS = %q, %v; want NOAUTH", r, err)
		}
		roundTrip(t, n.goRedis(t, cfg, func(o *redis.Options) { o.Password = testPassword }), "tls-requirepass")
	})
	t.Run("max-clients", func(t *testing.T) {
		// One plaintext client and two TLS ones fill the node.
		plain := dialRaw(t, n.c)
		io.WriteString(plain, encodeRESP("AUTH", testPassword))
		conns := []net.Conn{plain, n.dialTLS(t, cfg), n.dialTLS(t, cfg)}
		for i, conn := range conns {
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			if i > 0 {
				io.WriteString(conn, encodeRESP("AUTH", testPassword))
			}
			if r, err := readReply(bufio.NewReader(conn)); r != "+OK" || err != nil {
				t.Fatalf("AUTH on connection %d = %q, %v", i, r, err)
			}
		}
		fourth := n.dialTLS(t, cfg)
		if replies, closed := readUntilClosed(t, fourth, 10*time.Second); len(replies) != 1 || replies[0] != "-ERR max number of clients reached" || !closed {
			t.Fatalf("fourth connection, over TLS: replies %q, closed %v; want -ERR max number of clients reached and a close", replies, closed)
		}
		for _, conn := range conns {
			conn.Close()
		}
	})
	t.Run("wire-guard", func(t *testing.T) {
		poll(t, 10*time.Second, "a free client slot", func() bool {
			r, err := n.rawCommand(cfg, "PING")
			return err == nil && r == "-NOAUTH Authentication required."
		})
		conn := n.dialTLS(t, cfg)
		io.WriteString(conn, "*1\r\n$999999999\r\n")
		if replies, closed := readUntilClosed(t, conn, 10*time.Second); len(replies) != 1 || replies[0] != "-ERR Protocol error: invalid bulk length" || !closed {
			t.Fatalf("an oversized bulk over TLS: replies %q, closed %v; want the wire guard's error and a close", replies, closed)
		}
	})
	t.Run("idle-timeout", func(t *testing.T) {
		idle := startTLSNode(t, ca, tlsNodeOpts{extra: []string{"--timeout", "1"}})
		conn := idle.dialTLS(t, trusting(ca, &idle.client))
		if replies, closed := readUntilClosed(t, conn, 15*time.Second); len(replies) != 0 || !closed {
			t.Fatalf("a silent TLS client under --timeout 1: replies %q, closed %v; want a close", replies, closed)
		}
	})
}

// TestTLSStrangers: what connects to the TLS port and never completes a
// handshake (sends nothing, half a record, or plaintext RESP) is
// disconnected by --tls-handshake-timeout, holds no client slot meanwhile,
// and the node serves TLS clients throughout.
func TestTLSStrangers(t *testing.T) {
	ca := newCA(t, "lockd test CA")

	t.Run("disconnected", func(t *testing.T) {
		n := startTLSNode(t, ca, tlsNodeOpts{extra: []string{"--tls-handshake-timeout", "1s"}})
		strangers := map[string]string{
			"silent":       "",
			"half-a-hello": "\x16\x03\x01\x02\x00\x01", // a handshake record of 512 bytes, 1 sent
			"plaintext":    "PING\r\nLOCK a me\r\n",
		}
		conns := map[string]net.Conn{}
		for name, send := range strangers {
			conn, err := net.DialTimeout("tcp", n.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			io.WriteString(conn, send)
			conns[name] = conn
		}
		if tok, err := lockCmd(context.Background(), n.goRedis(t, trusting(ca, &n.client)), "served", "me"); tok <= 0 || err != nil {
			t.Fatalf("LOCK over TLS beside the strangers = %d, %v", tok, err)
		}
		for name, conn := range conns {
			// Bounded by the test, not the node: the node must close first.
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err := io.Copy(io.Discard, conn)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("%s stranger: %v; want the node to close the connection", name, err)
			}
		}
		if tok, err := lockCmd(context.Background(), n.goRedis(t, trusting(ca, &n.client)), "served-after", "me"); tok <= 0 || err != nil {
			t.Fatalf("LOCK over TLS after the strangers = %d, %v", tok, err)
		}
	})

	t.Run("no-client-slot", func(t *testing.T) {
		// The handshake timeout is long: the strangers stay for the test.
		n := startTLSNode(t, ca, tlsNodeOpts{extra: []string{"--tls-handshake-timeout", "1h", "--max-clients", "3"}})
		for range 2 {
			conn, err := net.DialTimeout("tcp", n.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
		}
		cfg := trusting(ca, &n.client)
		for i := range 3 {
			conn := n.dialTLS(t, cfg)
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(conn, "PING\r\n")
			if r, err := readReply(bufio.NewReader(conn)); r != "+PONG" || err != nil {
				t.Fatalf("PING on TLS client %d of 3, beside two strangers = %q, %v", i+1, r, err)
			}
		}
		if replies, closed := readUntilClosed(t, n.dialTLS(t, cfg), 10*time.Second); len(replies) != 1 || replies[0] != "-ERR max number of clients reached" || !closed {
			t.Fatalf("a fourth TLS client: replies %q, closed %v; want -ERR max number of clients reached", replies, closed)
		}
	})
}

// TestTLSRotation: new certificate files are served to new handshakes
// without a restart (the files are polled, and SIGHUP loads them at once)
// while LOCK/UNLOCK runs over TLS without a failed request and open
// connections go on; a new CA file decides which client certificates new
// handshakes accept; a bad new file
// (not PEM, a key that does not match, a file missing) is logged and the old
// certificate kept until good files come.
func TestTLSRotation(t *testing.T) {
	t.Run("under-load", func(t *testing.T) {
		ca := newCA(t, "lockd test CA")
		n := startTLSNode(t, ca, tlsNodeOpts{extra: []string{"--tls-reload-interval", "200ms"}})
		cfg := trusting(ca, &n.client)
		l := startTLSLoad(t, n, cfg)
		l.waitEach(t, 10)

		next := ca.issue(t, certSpec{cn: "lockd-1"})
		replaceFile(t, n.keyFile, next.keyPEM) // key, then certificate: for a moment they do not match
		replaceFile(t, n.certFile, next.certPEM)
		waitPresented(t, n, cfg, next.serial)
		l.waitEach(t, 30)
		l.stop(t)
		if !l.sawSerial(next.serial) || !l.sawSerial(n.cert.serial) {
			t.Fatalf("new connections under load saw serials %v; want %d then %d", l.serials(), n.cert.serial, next.serial)
		}
	})

	t.Run("SIGHUP", func(t *testing.T) {
		ca := newCA(t, "lockd test CA")
		// Not polled within the test: only SIGHUP can load the new files.
		n := startTLSNode(t, ca, tlsNodeOpts{extra: []string{"--tls-reload-interval", "1h"}})
		cfg := trusting(ca, &n.client)
		open := n.dialTLS(t, cfg) // an open connection goes on with what it negotiated
		next := ca.issue(t, certSpec{cn: "lockd-1"})
		replaceFile(t, n.keyFile, next.keyPEM)
		replaceFile(t, n.certFile, next.certPEM)
		if s, err := n.presented(cfg); s != n.cert.serial || err != nil {
			t.Fatalf("before SIGHUP the node presented serial %d, %v; want the old %d", s, err, n.cert.serial)
		}
		n.c.signal(1, syscall.SIGHUP)
		waitPresented(t, n, cfg, next.serial)
		if !strings.Contains(n.c.logOf(1), "SIGHUP: TLS files loaded") {
			t.Fatalf("the log does not tell the SIGHUP reload:\n%s", n.c.logOf(1))
		}
		open.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(open, "PING\r\n")
		if r, err := readReply(bufio.NewReader(open)); r != "+PONG" || err != nil {
			t.Fatalf("PING on the connection opened before the reload = %q, %v", r, err)
		}
		if s := open.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); s != n.cert.serial {
			t.Fatalf("the connection opened before the reload has serial %d; want the old %d", s, n.cert.serial)
		}
	})

	t.Run("CA", func(t *testing.T) {
		ca, next := newCA(t, "lockd test CA"), newCA(t, "the next CA")
		n := startTLSNode(t, ca, tlsNodeOpts{extra: []string{"--tls-reload-interval", "200ms"}})
		nextClient := next.issue(t, certSpec{cn: "next-client", client: true})
		if r, err := n.rawCommand(trusting(ca, &nextClient), "PING"); err == nil {
			t.Fatalf("a client of the next CA before it is loaded: PING = %q; want refused", r)
		}
		replaceFile(t, ca.file, next.pem) // the node's --tls-ca-cert-file
		poll(t, 20*time.Second, "a client of the next CA to be served", func() bool {
			r, err := n.rawCommand(trusting(ca, &nextClient), "PING")
			return err == nil && r == "+PONG"
		})
		if r, err := n.rawCommand(trusting(ca, &n.client), "PING"); err == nil {
			t.Fatalf("a client of the old CA after the new one is loaded: PING = %q; want refused", r)
		}
	})

	t.Run("bad-file-keeps-the-old", func(t *testing.T) {
		ca := newCA(t, "lockd test CA")
		n := startTLSNode(t, ca, tlsNodeOpts{extra: []string{"--tls-reload-interval", "200ms"}})
		cfg := trusting(ca, &n.client)
		l := startTLSLoad(t, n, cfg)
		next := ca.issue(t, certSpec{cn: "lockd-1"})
		const notLoaded = "files changed but not loaded"
		for i, step := range []struct {
			name   string
			change func()
		}{
			{"certificate-not-PEM", func() { replaceFile(t, n.certFile, []byte("-----BEGIN CERT")) }},
			{"key-does-not-match", func() { replaceFile(t, n.certFile, next.certPEM) }},
			{"key-missing", func() {
				if err := os.Remove(n.keyFile); err != nil {
					t.Fatal(err)
				}
			}},
		} {
			step.change()
			poll(t, 20*time.Second, "the node to log the bad files ("+step.name+")", func() bool { return n.logCount(notLoaded) == i+1 })
			if s, err := n.presented(cfg); s != n.cert.serial || err != nil {
				t.Fatalf("%s: the node presented serial %d, %v; want the old %d", step.name, s, err, n.cert.serial)
			}
		}
		n.c.signal(1, syscall.SIGHUP)
		poll(t, 20*time.Second, "the node to log the SIGHUP failure", func() bool {
			return strings.Contains(n.c.logOf(1), "SIGHUP: TLS files not loaded")
		})
		replaceFile(t, n.keyFile, next.keyPEM)
		waitPresented(t, n, cfg, next.serial)
		l.waitEach(t, 10)
		l.stop(t)
	})
}

// waitPresented polls until a new TLS connection is presented the
// certificate of serial.
func waitPresented(t testing.TB, n *tlsNode, cfg *tls.Config, serial int64) {
	t.Helper()
	poll(t, 20*time.Second, "new handshakes to present the new certificate", func() bool {
		s, err := n.presented(cfg)
		if err != nil {
			t.Fatalf("a new TLS connection: %v", err)
		}
		return s == serial
	})
}

// tlsLoad is LOCK/UNLOCK over TLS from several clients: go-redis clients
// that keep their connections, and one that opens a new connection for
// each round and notes the certificate it is presented. It runs until stop,
// at most tlsLoadRounds rounds per client.
type tlsLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	rounds []atomic.Int64
	mu     sync.Mutex
	errs   []error
	seen   map[int64]bool // serials the new connections were presented
}

const (
	tlsLoadPooled = 3
	tlsLoadRounds = 20000
)

func startTLSLoad(t testing.TB, n *tlsNode, cfg *tls.Config) *tlsLoad {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	l := &tlsLoad{cancel: cancel, rounds: make([]atomic.Int64, tlsLoadPooled+1), seen: map[int64]bool{}}
	t.Cleanup(func() { cancel(); l.wg.Wait() })
	fail := func(err error) {
		l.mu.Lock()
		l.errs = append(l.errs, err)
		l.mu.Unlock()
	}
	for w := range tlsLoadPooled {
		rdb := n.goRedis(t, cfg, func(o *redis.Options) { o.PoolSize = 2 })
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			name := "rot-" + string(rune('a'+w))
			for ctx.Err() == nil && l.rounds[w].Load() < tlsLoadRounds {
				if tok, err := lockCmd(ctx, rdb, name, "me", "PX", 10000); (err != nil || tok <= 0) && ctx.Err() == nil {
					fail(err)
				}
				if k, err := rdb.Do(ctx, "UNLOCK", name, "me").Int64(); (err != nil || k != 1) && ctx.Err() == nil {
					fail(err)
				}
				l.rounds[w].Add(1)
			}
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		w := tlsLoadPooled
		for ctx.Err() == nil && l.rounds[w].Load() < tlsLoadRounds {
			s, err := n.presented(cfg)
			if err != nil {
				fail(err)
			}
			r, err := n.rawCommand(cfg, "LOCK", "rot-fresh", "me", "PX", "10000")
			if err != nil || !strings.HasPrefix(r, ":") {
				fail(errors.Join(err, errors.New("LOCK on a new connection: "+r)))
			}
			if r, err := n.rawCommand(cfg, "UNLOCK", "rot-fresh", "me"); err != nil || r != ":1" {
				fail(errors.Join(err, errors.New("UNLOCK on a new connection: "+r)))
			}
			l.mu.Lock()
			l.seen[s] = true
			l.mu.Unlock()
			l.rounds[w].Add(1)
		}
	}()
	return l
}

// waitEach waits until every client has done k more rounds.
func (l *tlsLoad) waitEach(t testing.TB, k int64) {
	t.Helper()
	from := make([]int64, len(l.rounds))
	for i := range l.rounds {
		from[i] = l.rounds[i].Load()
	}
	poll(t, 60*time.Second, "every TLS client to do more rounds", func() bool {
		for i := range l.rounds {
			if l.rounds[i].Load() < from[i]+k {
				return false
			}
		}
		return true
	})
}

// stop ends the load and fails t if any request failed.
func (l *tlsLoad) stop(t testing.TB) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	rounds := make([]int64, len(l.rounds))
	for i := range l.rounds {
		rounds[i] = l.rounds[i].Load()
	}
	t.Logf("LOCK/UNLOCK rounds per TLS client (the last on new connections): %v", rounds)
	if len(l.errs) > 0 {
		t.Fatalf("%d requests over TLS failed; the first: %v", len(l.errs), l.errs[0])
	}
}

func (l *tlsLoad) sawSerial(s int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[s]
}

func (l *tlsLoad) serials() map[int64]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen
}
