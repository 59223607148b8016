package peering

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/lockd/lockd/internal/datadir"
	"github.com/lockd/lockd/respguard"
	"github.com/tidwall/redcon"
)

// The cluster handshake. Every peer connection opens with it; the shared
// secret never crosses the wire. The dialer D and the listener L each
// contribute a fresh 32-byte nonce and prove they hold the secret with an
// HMAC-SHA256 over both nonces, both ids, the cluster id and what they claim
// about themselves, each under its own label:
//
//	D → L  HELLO 2 <cluster-id> <D-id> <D-nonce>
//	L → D  CHALLENGE <L-id> <L-nonce> <L-incarnation> <L-mac>
//	D → L  AUTH <D-incarnation> <D-client-addr> <D-mac>
//	L → D  VERDICT <OK | LOSTSTATE text> <verdict-mac>
//
// D checks L's mac and that L is the node it dialed; L checks D's mac, the
// cluster id and that D is a member. A failure of any of these is answered
// "-ERR refused" whatever failed (the refusing side logs why), so a stranger
// learns nothing; a replayed exchange fails because the other side's nonce
// is new. Once both are authenticated, each compares the other's
// incarnation with the one it recorded when it first met that node
// (Handler.CheckPeer, which datadir.Dir.CheckPeer answers): a node whose
// data directory was wiped or replaced comes back with another incarnation
// and is refused with a verdict it can trust, which stops it (it lost the
// votes and entries it had promised). With TLS (tls.go) the listener also
// checks, once D is authenticated, that D's certificate is valid for D's
// address; frames after the handshake are authenticated by TLS, and not at
// all without it.
const (
	handshakeVersion = "2"
	nonceSize        = 32
	labelListener    = "lockd peer v2 listener"
	labelDialer      = "lockd peer v2 dialer"
	labelVerdict     = "lockd peer v2 verdict"
)

// helloLimits bound what an unauthenticated peer may send.
var helloLimits = respguard.Limits{MaxMultibulk: 8, MaxBulk: 512, MaxCommand: 4 << 10, MaxInline: 512, PartialTimeout: handshakeTimeout}

// errRefused is every authentication failure, as the other side hears it.
var errRefused = errors.New("refused")

// peerClaims is what the two sides of a handshake learn about each other.
type peerClaims struct {
	id          uint64
	incarnation string
	clientAddr  string
	// after, on the dialer's side, reads what the listener writes after
	// its verdict (features.go).
	after *handshakeConn
}

// mac computes the HMAC-SHA256 under secret of label and fields, each
// length-prefixed so that no two field lists collide.
func mac(secret []byte, label string, fields ...[]byte) []byte {
	h := hmac.New(sha256.New, secret)
	var n [4]byte
	for _, f := range append([][]byte{[]byte(label)}, fields...) {
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return h.Sum(nil)
}

func newNonce() []byte {
	b := make([]byte, nonceSize)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return b
}

func u64(v uint64) []byte { return []byte(strconv.FormatUint(v, 10)) }

// writeArray writes one RESP array of bulk strings.
func writeArray(conn net.Conn, args ...[]byte) error {
	b := redcon.AppendArray(nil, len(args))
	for _, a := range args {
		b = redcon.AppendBulk(b, a)
	}
	_, err := conn.Write(b)
	return err
}

// handshakeConn reads the other side's handshake messages.
type handshakeConn struct {
	conn net.Conn
	rd   *redcon.Reader
}

func newHandshakeConn(conn net.Conn) *handshakeConn {
	return &handshakeConn{conn: conn, rd: redcon.NewReader(respguard.Wrap(conn, helloLimits))}
}

// read reads one message and checks its name and argument count. A
// refusal, the line "-ERR refused", reads as an inline command.
func (h *handshakeConn) read(name string, args int) ([][]byte, error) {
	cmd, err := h.rd.ReadCommand()
	if err != nil {
		return nil, err
	}
	if len(cmd.Args) != args+1 || string(cmd.Args[0]) != name {
		if len(cmd.Args) > 0 && string(cmd.Args[0]) == "-ERR" {
			return nil, errRefused
		}
		return nil, fmt.Errorf("expected %s", name)
	}
	return cmd.Args[1:], nil
}

// dialerHandshake runs the dialer's side on conn, to the peer expected to
// be node peer. The handler's CheckPeer vets the listener's incarnation
// once it is authenticated. A *lostStateVerdict error means the listener
// refused this node because it lost its state.
func (t *Transport) dialerHandshake(conn net.Conn, peer uint64) (*peerClaims, error) {
	c := &t.cfg
	secret := []byte(c.Secret)
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	defer conn.SetDeadline(time.Time{})
	dn := newNonce()
	if err := writeArray(conn, []byte("HELLO"), []byte(handshakeVersion), []byte(c.ClusterID), u64(c.ID), dn); err != nil {
		return nil, err
	}
	h := newHandshakeConn(conn)
	a, err := h.read("CHALLENGE", 4)
	if err != nil {
		return nil, err
	}
	lid, err := strconv.ParseUint(string(a[0]), 10, 64)
	ln, linc, lmac := a[1], string(a[2]), a[3]
	want := mac(secret, labelListener, []byte(c.ClusterID), u64(c.ID), u64(peer), dn, ln, []byte(linc))
	if err != nil || lid != peer || len(ln) != nonceSize || !hmac.Equal(lmac, want) {
		return nil, fmt.Errorf("peer %d failed authentication (wrong --cluster-secret or --cluster-id, or not node %d)", peer, peer)
	}
	if err := t.h.CheckPeer(peer, linc); err != nil {
		return nil, err // it lost its state: do not talk to it
	}
	inc, addr := []byte(c.Incarnation), []byte(c.ClientAddr)
	dmac := mac(secret, labelDialer, []byte(c.ClusterID), u64(c.ID), u64(peer), dn, ln, inc, addr)
	if err := writeArray(conn, []byte("AUTH"), inc, addr, dmac); err != nil {
		return nil, err
	}
	v, err := h.read("VERDICT", 2)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(v[1], mac(secret, labelVerdict, dn, ln, v[0])) {
		return nil, fmt.Errorf("peer %d: verdict fails authentication", peer)
	}
	switch verdict := string(v[0]); {
	case verdict == "OK":
		return &peerClaims{id: peer, incarnation: linc, after: h}, nil
	case len(verdict) > 10 && verdict[:10] == "LOSTSTATE ":
		return nil, &lostStateVerdict{peer: peer, text: verdict[10:]}
	default:
		return nil, fmt.Errorf("peer %d: unknown verdict %q", peer, clipString(verdict))
	}
}

// lostStateVerdict is a peer's authenticated word that this node lost its
// state: the node must stop.
type lostStateVerdict struct {
	peer uint64
	text string
}

func (e *lostStateVerdict) Error() string {
	return fmt.Sprintf("node %d refused this node: %s", e.peer, e.text)
}

// listenerHandshake runs the listener's side on an accepted conn. It
// returns the authenticated dialer, or an error saying why it was refused
// (for the log; the dialer hears only "refused").
func (t *Transport) listenerHandshake(conn net.Conn) (*peerClaims, error) {
	c := &t.cfg
	secret := []byte(c.Secret)
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	defer conn.SetDeadline(time.Time{})
	h := newHandshakeConn(conn)
	refuse := func(why error) (*peerClaims, error) {
		conn.Write([]byte("-ERR refused\r\n"))
		return nil, why
	}
	a, err := h.read("HELLO", 4)
	if err != nil {
		return refuse(err)
	}
	if string(a[0]) != handshakeVersion {
		return refuse(fmt.Errorf("handshake version %s", clipString(string(a[0]))))
	}
	cid, dn := a[1], a[3]
	did, derr := strconv.ParseUint(string(a[2]), 10, 64)
	if len(dn) != nonceSize {
		return refuse(errors.New("bad nonce"))
	}
	// Answer whatever the claims: a stranger must not learn which check
	// fails. The mac binds the claimed cluster id and ids.
	ln := newNonce()
	inc := []byte(c.Incarnation)
	lmac := mac(secret, labelListener, cid, a[2], u64(c.ID), dn, ln, inc)
	if err := writeArray(conn, []byte("CHALLENGE"), u64(c.ID), ln, inc, lmac); err != nil {
		return nil, err
	}
	b, err := h.read("AUTH", 3)
	if err != nil {
		return refuse(err)
	}
	dinc, addr, dmac := b[0], b[1], b[2]
	switch want := mac(secret, labelDialer, cid, a[2], u64(c.ID), dn, ln, dinc, addr); {
	case !hmac.Equal(dmac, want):
		return refuse(errors.New("wrong secret or cluster id"))
	case string(cid) != c.ClusterID:
		return refuse(fmt.Errorf("cluster id %s", clipString(string(cid))))
	case derr != nil || did == c.ID || !t.isPeer(did):
		return refuse(fmt.Errorf("not a member: node id %s", clipString(string(a[2]))))
	case !validHostPort(string(addr)):
		return refuse(fmt.Errorf("bad client address %s", clipString(string(addr))))
	}
	if err := checkIdentity(conn, t.peerAddr(did)); err != nil {
		return refuse(fmt.Errorf("node %d: %w", did, err))
	}
	verdict := "OK"
	var lost *datadir.LostStateError
	if err := t.h.CheckPeer(did, string(dinc)); errors.As(err, &lost) {
		verdict = "LOSTSTATE " + err.Error()
	} else if err != nil {
		return refuse(err)
	}
	if err := writeArray(conn, []byte("VERDICT"), []byte(verdict), mac(secret, labelVerdict, dn, ln, []byte(verdict))); err != nil {
		return nil, err
	}
	if verdict != "OK" {
		return nil, lost
	}
	if err := t.announceFeatures(conn); err != nil {
		return nil, err
	}
	return &peerClaims{id: did, incarnation: string(dinc), clientAddr: string(addr)}, nil
}

func validHostPort(s string) bool {
	if s == "" {
		return true // a node may not say
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p > 0 && p < 65536 && len(s) <= 256
}

func clipString(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strconv.Quote(s)
}
