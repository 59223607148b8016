package peering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/lockd/lockd/lock"
	"github.com/tidwall/redcon"
	"go.etcd.io/raft/v3/raftpb"
)

// forwardsPayload is a FORWARDS frame's payload of count LOCK commands of
// node as, with ids 1 to count.
func forwardsPayload(as uint64, count int) []byte {
	var b []byte
	for i := range count {
		b = lock.AppendCommand(b, &lock.Command{Op: lock.OpLock, ID: as<<48 | uint64(i+1), Name: fmt.Sprint("n", i), Owner: "o"})
	}
	return b
}

// batchRecorder is a Handler that keeps each Forward call's commands.
type batchRecorder struct {
	*recorder
	calls [][]lock.Command
}

func (r *batchRecorder) Forward(_ uint64, cmds []lock.Command) {
	r.calls = append(r.calls, slices.Clone(cmds))
}

// readFrames reads buf as a peer's frames, as a listener would, and
// returns each frame's kind and each Forward call's commands.
func readFrames(t testing.TB, buf []byte) (kinds []string, calls [][]lock.Command) {
	t.Helper()
	h := &batchRecorder{recorder: newRecorder()}
	tr := New(Config{ID: 1, Peers: map[uint64]string{1: "", 2: "node-2"}, Logger: slog.New(slog.DiscardHandler)}, h)
	r := &frameReader{t: tr, from: 2, rd: redcon.NewReader(bytes.NewReader(buf))}
	for {
		cmd, err := r.rd.ReadCommand()
		if errors.Is(err, io.EOF) {
			return kinds, h.calls
		}
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, string(cmd.Args[0]))
		if err := r.frame(cmd.Args); err != nil {
			t.Fatalf("frame %s refused: %v", cmd.Args[0], err)
		}
	}
}

// The commands a pump takes from its queue together travel in FORWARDS
// frames, each within its limits, in order, and every command reaches the
// handler once; a lone command, and every command to a peer that did not
// announce FORWARDS, travels in a FORWARD frame as before.
func TestForwardsFrames(t *testing.T) {
	cmd := func(i int, name string) frame {
		return frame{fwd: true, cmd: lock.Command{Op: lock.OpLock, ID: 2<<48 | uint64(i+1), Name: name, Owner: "o"}}
	}
	small := func(count int) []frame {
		var fs []frame
		for i := range count {
			fs = append(fs, cmd(i, fmt.Sprint("n", i)))
		}
		return fs
	}
	big := strings.Repeat("x", 100<<10)
	var from, to uint64 = 2, 1
	heartbeat := frame{msg: &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: &from, To: &to}}
	for _, tc := range []struct {
		name      string
		frames    []frame
		oldPeer   bool
		wantKinds []string
		wantSizes []int
	}{
		{"a lone command", small(1), false, []string{"FORWARD"}, []int{1}},
		{"ten together", small(10), false, []string{"FORWARDS"}, []int{10}},
		{"more than a frame's count", small(maxForwardBatch + 1), false, []string{"FORWARDS", "FORWARD"}, []int{maxForwardBatch, 1}},
		{"more than a frame's bytes", []frame{cmd(0, big), cmd(1, big), cmd(2, big)}, false, []string{"FORWARDS", "FORWARD"}, []int{2, 1}},
		{"around another frame", append(append(small(2), heartbeat), cmd(2, "last")), false, []string{"FORWARDS", "RAFT", "FORWARD"}, []int{2, 1}},
		{"to a peer that did not announce FORWARDS", small(3), true, []string{"FORWARD", "FORWARD", "FORWARD"}, []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fb forwardBatch
			fb.batches.Store(!tc.oldPeer)
			var buf []byte
			for _, f := range tc.frames {
				buf = fb.add(buf, f)
			}
			buf = fb.flush(buf)
			kinds, calls := readFrames(t, buf)
			if !slices.Equal(kinds, tc.wantKinds) || fb.frames != uint64(len(kinds)) {
				t.Fatalf("frames %q (%d counted); want %q", kinds, fb.frames, tc.wantKinds)
			}
			var sizes []int
			var got []lock.Command
			for _, c := range calls {
				sizes = append(sizes, len(c))
				got = append(got, c...)
			}
			if !slices.Equal(sizes, tc.wantSizes) {
				t.Fatalf("commands per Forward call %v; want %v", sizes, tc.wantSizes)
			}
			var want []lock.Command
			for _, f := range tc.frames {
				if f.fwd {
					want = append(want, f.cmd)
				}
			}
			if !slices.EqualFunc(got, want, func(a, b lock.Command) bool { return a.ID == b.ID && a.Name == b.Name }) {
				t.Fatalf("the handler got %d commands, not those sent in order", len(got))
			}
		})
	}
}

// A dialer reads FORWARDS from the listener's features, and from nothing
// else.
func TestReadFeatures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		written []byte
		want    bool
	}{
		{"FEATURES FORWARDS", frameOf([]byte("FEATURES"), []byte("FORWARDS")), true},
		{"among others", frameOf([]byte("FEATURES"), []byte("LATER"), []byte("FORWARDS")), true},
		{"nothing, as an older listener", nil, false},
		{"other features", frameOf([]byte("FEATURES"), []byte("LATER")), false},
		{"another message", frameOf([]byte("FORWARDS"), []byte("FEATURES")), false},
		{"over the handshake's limits", append([]byte("*2\r\n$8\r\nFEATURES\r\n$99999\r\n"), frameOf([]byte("FEATURES"), []byte("FORWARDS"))...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, theirs := net.Pipe()
			go func() {
				theirs.Write(tc.written)
				theirs.Close()
			}()
			var batches forwardBatch
			readFeatures(newHandshakeConn(ours), &batches.batches)
			ours.Close()
			if got := batches.batches.Load(); got != tc.want {
				t.Fatalf("batches %v; want %v", got, tc.want)
			}
		})
	}
}

// A node of this version linked to one of an older version, which does not
// announce FORWARDS, sends it FORWARD frames only, even with commands
// queued together.
func TestForwardsToAnOlderListener(t *testing.T) {
	ln1, ln2 := listen(t), listen(t)
	peers := map[uint64]string{1: ln1.Addr().String(), 2: ln2.Addr().String()}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	old := newRecorder()
	otr := New(Config{
		ID: 2, Peers: peers, ClusterID: "test", Secret: testSecret, Incarnation: incarnation(2), Listener: ln2, Dial: dial,
		QueueLen: 4, MaxSnapshotBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler),
	}, old)
	otr.noFeatures = true
	otr.Start()
	t.Cleanup(otr.Close)
	m := startMember(t, 1, peers, ln1, dial, nil)
	for i := range 4 { // queued before the link is up: taken together
		m.tr.Forward(2, lock.Command{Op: lock.OpLock, ID: 1<<48 | uint64(i+1), Name: fmt.Sprint("n", i), Owner: "o"})
	}
	for i := range 4 {
		if got := receive(t, "forwarded command", old.forwards); got.cmd.ID != 1<<48|uint64(i+1) {
			t.Fatalf("command %d: got id %#x", i, got.cmd.ID)
		}
		if size := receive(t, "forward call", old.sizes); size != 1 {
			t.Fatalf("a frame of %d commands reached a listener that reads only FORWARD", size)
		}
	}
}

// FuzzForwards plays an authenticated peer sending a FORWARDS frame of
// whatever the fuzzer makes: the frame is refused, or its commands, at
// least one and at most maxForwardBatch, reach the handler; nothing panics.
func FuzzForwards(f *testing.F) {
	for _, seed := range [][]byte{forwardsPayload(2, 1), forwardsPayload(2, 3), forwardsPayload(2, 3)[:7], {}, []byte("garbage")} {
		f.Add(seed)
	}
	h := &batchRecorder{recorder: newRecorder()}
	tr := New(Config{ID: 1, Peers: map[uint64]string{1: "", 2: "node-2"}, Logger: slog.New(slog.DiscardHandler)}, h)
	f.Fuzz(func(t *testing.T, payload []byte) {
		h.calls = nil
		r := &frameReader{t: tr, from: 2}
		err := r.frame([][]byte{[]byte("FORWARDS"), payload})
		switch {
		case err != nil && len(h.calls) != 0:
			t.Fatalf("a refused frame reached the handler: %v", err)
		case err == nil && (len(h.calls) != 1 || len(h.calls[0]) == 0 || len(h.calls[0]) > maxForwardBatch):
			t.Fatalf("an accepted frame made %d calls", len(h.calls))
		}
	})
}
