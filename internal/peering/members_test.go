package peering

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// An ADMIN frame reaches the peer's handler with its payload.
func TestAdminFramesReachThePeer(t *testing.T) {
	a, b := pair(t, nil)
	a.tr.Admin(2, []byte("change"))
	if got := receive(t, "admin", b.h.admins); got.from != 1 || !bytes.Equal(got.data, []byte("change")) {
		t.Fatalf("got %+v", got)
	}
}

// A member that SetPeers removes loses its authenticated connection at once
// and is refused when it dials again; a member SetPeers adds is accepted.
func TestSetPeersRemovesAndAddsMembers(t *testing.T) {
	m := lone(t)
	conn := asPeer(t, m, 2)
	m.tr.SetPeers(map[uint64]string{1: m.addr, 3: "node-3"})
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("the removed member's connection: %v, want closed by the node", err)
	}
	if r := dialRaw(t, m).handshake("test", 2, testSecret, incarnation(2)); r != "-ERR refused" {
		t.Fatalf("the removed member dialed again: %q, want -ERR refused", r)
	}
	if r := dialRaw(t, m).handshake("test", 4, testSecret, incarnation(4)); r != "-ERR refused" {
		t.Fatalf("a non-member: %q, want -ERR refused", r)
	}
	m.tr.SetPeers(map[uint64]string{1: m.addr, 3: "node-3", 4: "node-4"})
	if r := dialRaw(t, m).handshake("test", 4, testSecret, incarnation(4)); r != "" {
		t.Fatalf("the added member: %q, want accepted", r)
	}
	ids := map[uint64]bool{}
	for _, p := range m.tr.Peers() {
		ids[p.ID] = true
	}
	if len(ids) != 2 || !ids[3] || !ids[4] {
		t.Fatalf("Peers() = %v, want 3 and 4", ids)
	}
}

// SetPeers may run while the Transport closes (a node's loop follows the
// members while the node closes): no link starts that Close would not wait
// for. Run with -race.
func TestSetPeersDuringClose(t *testing.T) {
	for i := range 20 {
		m := lone(t)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for j := range 20 {
				m.tr.SetPeers(map[uint64]string{1: m.addr, uint64(10 + i*20 + j): "node-x:1"})
			}
		}()
		m.tr.Close()
		<-done
	}
}
