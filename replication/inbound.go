package replication

import (
	"crypto/subtle"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/respguard"
	"github.com/tidwall/redcon"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// helloLimits bound what an unauthenticated peer may send.
var helloLimits = respguard.Limits{MaxMultibulk: 8, MaxBulk: 4096, MaxCommand: 16 << 10, PartialTimeout: handshakeTimeout}

// inbound accepts peers on the cluster port. Each connection must open with
// HELLO <cluster-id> <node-id> <secret> <client-addr>; after +OK it carries
// RAFT and FORWARD frames from that peer, and nothing is written back.
type inbound struct {
	n  *Node
	ln net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newInbound(n *Node, ln net.Listener) *inbound {
	return &inbound{n: n, ln: ln, conns: make(map[net.Conn]struct{})}
}

func (in *inbound) start() {
	in.wg.Add(1)
	go in.accept()
}

// close stops accepting and closes every peer connection.
func (in *inbound) close() {
	in.mu.Lock()
	in.closed = true
	for c := range in.conns {
		c.Close()
	}
	in.mu.Unlock()
	in.ln.Close()
}

func (in *inbound) wait() { in.wg.Wait() }

func (in *inbound) accept() {
	defer in.wg.Done()
	for {
		conn, err := in.ln.Accept()
		if err != nil {
			in.mu.Lock()
			closed := in.closed
			in.mu.Unlock()
			if closed {
				return
			}
			in.n.log.Warn("cluster accept", "err", err)
			select {
			case <-time.After(backoffMin):
			case <-in.n.stopc:
				return
			}
			continue
		}
		in.mu.Lock()
		if in.closed {
			in.mu.Unlock()
			conn.Close()
			return
		}
		in.conns[conn] = struct{}{}
		in.wg.Add(1)
		in.mu.Unlock()
		go in.serve(conn)
	}
}

func (in *inbound) serve(conn net.Conn) {
	defer in.wg.Done()
	defer func() {
		in.mu.Lock()
		delete(in.conns, conn)
		in.mu.Unlock()
		conn.Close()
	}()
	n := in.n
	from, ok := in.handshake(conn)
	if !ok {
		return
	}
	rd := redcon.NewReader(respguard.Wrap(conn, n.cfg.WireLimits))
	for {
		cmd, err := rd.ReadCommand()
		if err != nil {
			return
		}
		if len(cmd.Args) != 2 {
			n.log.Warn("bad frame from peer", "peer", from)
			return
		}
		switch string(cmd.Args[0]) {
		case "RAFT":
			m := &raftpb.Message{}
			if err := proto.Unmarshal(cmd.Args[1], m); err != nil || m.GetFrom() != from {
				n.log.Warn("bad raft message from peer", "peer", from, "err", err)
				return
			}
			if err := n.step(m); err != nil {
				return // stopping
			}
		case "FORWARD":
			c, rest, err := lock.DecodeCommand(cmd.Args[1])
			if err != nil || len(rest) != 0 || c.ID>>48 != from {
				n.log.Warn("bad forwarded command from peer", "peer", from, "err", err)
				return
			}
			n.submit(c)
		default:
			n.log.Warn("unknown frame from peer", "peer", from)
			return
		}
	}
}

// handshake reads and checks HELLO, and answers it.
func (in *inbound) handshake(conn net.Conn) (uint64, bool) {
	n := in.n
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	cmd, err := redcon.NewReader(respguard.Wrap(conn, helloLimits)).ReadCommand()
	if err != nil {
		return 0, false
	}
	refuse := func(why string) (uint64, bool) {
		n.log.Warn("refused peer", "remote", conn.RemoteAddr().String(), "why", why)
		conn.Write([]byte("-ERR " + why + "\r\n"))
		return 0, false
	}
	a := cmd.Args
	if len(a) != 5 || !strings.EqualFold(string(a[0]), "HELLO") {
		return refuse("expected HELLO")
	}
	if string(a[1]) != n.cfg.ClusterID {
		return refuse("wrong cluster id")
	}
	if subtle.ConstantTimeCompare(a[3], []byte(n.cfg.Secret)) != 1 {
		return refuse("wrong secret")
	}
	id, err := strconv.ParseUint(string(a[2]), 10, 64)
	if err != nil || id == n.cfg.ID || n.cfg.Peers[id] == "" {
		return refuse("unknown node id")
	}
	if _, err := conn.Write([]byte("+OK\r\n")); err != nil {
		return 0, false
	}
	conn.SetDeadline(time.Time{})
	n.setClientAddr(id, string(a[4]))
	return id, true
}
