package replication

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/lockd/lockd/lock"
)

// installs records the snapshots a node installed from its leader (its
// "installed snapshot" log records): what a test can observe of an install
// without reaching into the applier.
type installs struct {
	mu      sync.Mutex
	indexes []uint64
}

func (h *installs) Enabled(context.Context, slog.Level) bool { return true }
func (h *installs) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *installs) WithGroup(string) slog.Handler            { return h }

func (h *installs) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "installed snapshot" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "index" {
			h.mu.Lock()
			h.indexes = append(h.indexes, a.Value.Uint64())
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func (h *installs) last() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.indexes) == 0 {
		return 0
	}
	return h.indexes[len(h.indexes)-1]
}

// A follower that was down while the others wrote enough for several
// snapshots, and compacted their logs past its last entry, catches up from
// the leader's snapshot: its table becomes the leader's, byte for byte, and
// it goes on applying new writes.
func TestLaggingFollowerCatchesUpBySnapshot(t *testing.T) {
	var mu sync.Mutex
	logs := map[uint64]*installs{}
	nodes := testCluster(t, 3, func(c *Config) {
		c.SnapshotEntries = 10 // the log keeps 5 entries behind a snapshot
		c.NoFsync = true
		h := &installs{}
		mu.Lock()
		logs[c.ID] = h
		mu.Unlock()
		c.Logger = slog.New(h)
	})
	lead := waitLeader(t, nodes)
	ctx := context.Background()
	lockAll(t, nodes[lead], "early-", 5)
	id := followerOf(nodes, lead)
	lagging := nodes[id]
	poll(t, "the follower to apply the early writes", func() bool { return lagging.Table().Len() == 5 })
	lagging.Close()
	delete(nodes, id)
	behind := lagging.Status().Applied

	// One entry per command: 90 entries, 9 snapshots.
	for i := range 60 {
		if _, err := nodes[lead].Execute(ctx, lock.Command{Op: lock.OpLock, Name: fmt.Sprint("k", i), Owner: "o"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 60; i += 2 {
		if v, err := nodes[lead].Execute(ctx, lock.Command{Op: lock.OpUnlock, Name: fmt.Sprint("k", i), Owner: "o"}); v != 1 || err != nil {
			t.Fatalf("UNLOCK k%d = %d, %v", i, v, err)
		}
	}
	// The entries the follower misses are gone from the leader's log: only
	// a snapshot can bring it up to date.
	poll(t, "the leader to compact its log past the follower's last entry", func() bool {
		first, err := nodes[lead].mem.FirstIndex()
		return err == nil && first > behind+1
	})

	lagging = restart(t, lagging, nil)
	nodes[id] = lagging
	poll(t, "the restarted follower's table to equal the leader's", func() bool {
		return lagging.Status().Applied == nodes[lead].Status().Applied &&
			bytes.Equal(lagging.Table().Snapshot(), nodes[lead].Table().Snapshot())
	})
	if got := logs[id].last(); got <= behind {
		t.Fatalf("the follower, %d entries behind at index %d, installed no snapshot from the leader (last install: %d)",
			nodes[lead].Status().Applied-behind, behind, got)
	}
	if n := lagging.Table().Len(); n != 5+30 {
		t.Fatalf("the follower holds %d locks; want 35", n)
	}

	// It applies what comes next, from the leader and through itself.
	tok, err := nodes[lead].Execute(ctx, lock.Command{Op: lock.OpLock, Name: "after", Owner: "o"})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "the follower to apply a write after the snapshot", func() bool {
		info, ok := lagging.Table().Get("after")
		return ok && int64(info.Token) == tok
	})
	if own, err := lagging.Execute(ctx, lock.Command{Op: lock.OpLock, Name: "own", Owner: "o"}); err != nil || own != tok+1 {
		t.Fatalf("LOCK through the follower = %d, %v; want %d", own, err, tok+1)
	}
}
