package peering

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// FuzzHandshake plays a stranger without the cluster secret, sending
// whatever the fuzzer makes, against both sides of the handshake: the
// listener never admits it, the dialer never accepts it as a peer, and
// neither panics or waits past the end of the stranger's input.
func FuzzHandshake(f *testing.F) {
	nonce := make([]byte, nonceSize)
	mac32 := make([]byte, 32)
	for _, seed := range [][]byte{
		frameOf([]byte("HELLO"), []byte(handshakeVersion), []byte("test"), []byte("2"), nonce),
		append(frameOf([]byte("HELLO"), []byte(handshakeVersion), []byte("test"), []byte("2"), nonce),
			frameOf([]byte("AUTH"), []byte(incarnation(2)), []byte("127.0.0.1:6380"), mac32)...),
		frameOf([]byte("CHALLENGE"), []byte("2"), nonce, []byte(incarnation(2)), mac32),
		append(frameOf([]byte("CHALLENGE"), []byte("2"), nonce, []byte(incarnation(2)), mac32),
			frameOf([]byte("VERDICT"), []byte("OK"), mac32)...),
		[]byte("-ERR refused\r\n"),
		[]byte("*5\r\n$5\r\nHELLO\r\n$999999999\r\n"),
		[]byte("PING\r\n"),
		{},
	} {
		f.Add(seed)
	}
	tr := New(Config{
		ID: 1, Peers: map[uint64]string{1: "", 2: "node-2", 3: "node-3"}, ClusterID: "test", Secret: testSecret,
		ClientAddr: "127.0.0.1:6379", Incarnation: incarnation(1), QueueLen: 4, MaxSnapshotBytes: 1 << 20,
		Logger: slog.New(slog.DiscardHandler),
	}, newRecorder())
	f.Fuzz(func(t *testing.T, stranger []byte) {
		sides := map[string]func(net.Conn) (*peerClaims, error){
			"listener": tr.listenerHandshake,
			"dialer":   func(c net.Conn) (*peerClaims, error) { return tr.dialerHandshake(c, 2) },
		}
		for side, handshake := range sides {
			ours, theirs := net.Pipe()
			go func() {
				theirs.SetDeadline(time.Now().Add(10 * time.Second))
				go io.Copy(io.Discard, theirs)
				theirs.Write(stranger)
				theirs.Close()
			}()
			claims, err := handshake(ours)
			ours.Close()
			if err == nil || claims != nil {
				t.Fatalf("the %s's side accepted a stranger without the secret (%+v) after %q", side, claims, stranger)
			}
		}
	})
}
