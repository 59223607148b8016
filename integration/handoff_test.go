package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestLeaderTransferCommand: LEADER TRANSFER on any node moves the
// leadership, to the named node or to the most caught-up one, and replies
// the new leader's id; a request that cannot be carried out is refused and
// the leader stays.
func TestLeaderTransferCommand(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	f1, f2 := 1+lead%3, 1+(lead+1)%3

	for _, tt := range []struct {
		args []any
		want string
	}{
		{[]any{"LEADER", "TRANSFER", 7}, "ERR no such node: 7"},
		{[]any{"LEADER", "TRANSFER", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"LEADER", "SWAP"}, "ERR unknown subcommand 'SWAP'. Try LEADER HELP."},
	} {
		for i := 1; i <= 3; i++ {
			if err := c.client(i).Do(ctx, tt.args...).Err(); err == nil || err.Error() != tt.want {
				t.Errorf("node %d: %v = %v, want %s", i, tt.args, err, tt.want)
			}
		}
	}
	if now := c.waitLeader(10*time.Second, nil); now != lead {
		t.Fatalf("refused transfers moved the leadership from %d to %d", lead, now)
	}

	// On a follower, to the other follower.
	got, err := c.client(f1).Do(ctx, "LEADER", "TRANSFER", f2).Int()
	if err != nil || got != f2 {
		t.Fatalf("node %d: LEADER TRANSFER %d = %d, %v", f1, f2, got, err)
	}
	if now := c.waitLeader(10*time.Second, nil); now != f2 {
		t.Fatalf("after LEADER TRANSFER %d the nodes agree on %d", f2, now)
	}
	// On the leader, to whichever is most caught up.
	got, err = c.client(f2).Do(ctx, "LEADER", "TRANSFER").Int()
	if err != nil || got == f2 || got < 1 || got > 3 {
		t.Fatalf("node %d: LEADER TRANSFER = %d, %v", f2, got, err)
	}
	if now := c.waitLeader(10*time.Second, nil); now != got {
		t.Fatalf("after LEADER TRANSFER the nodes agree on %d, the reply said %d", now, got)
	}
	// To the leader itself: nothing to do.
	if again, err := c.client(f1).Do(ctx, "LEADER", "TRANSFER", got).Int(); err != nil || again != got {
		t.Fatalf("LEADER TRANSFER %d (the leader) = %d, %v", got, again, err)
	}
	if tok, err := lockCmd(ctx, c.client(f1), "after-transfers", "me"); err != nil || tok <= 0 {
		t.Fatalf("LOCK after the transfers = %d, %v", tok, err)
	}
}

// TestSIGTERMLeaderHandsOff: a leader told to stop hands its leadership to
// a follower before it exits (status 0), so the two others have a leader
// at once, without an election timeout, and take writes.
func TestSIGTERMLeaderHandsOff(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	var rest []int
	for i := 1; i <= 3; i++ {
		if i != lead {
			rest = append(rest, i)
		}
	}
	if tok, err := lockCmd(ctx, c.client(rest[0]), "before", "me"); err != nil || tok <= 0 {
		t.Fatalf("LOCK before = %d, %v", tok, err)
	}
	if rc := c.term(lead); rc != 0 {
		t.Fatalf("node %d exited with %d after SIGTERM", lead, rc)
	}
	log := c.logOf(lead)
	i := strings.Index(log, "leadership handed off")
	if i < 0 {
		t.Fatalf("node %d's log does not say it handed off its leadership:\n%s", lead, log)
	}
	line := log[strings.LastIndexByte(log[:i], '\n')+1:]
	line = line[:strings.IndexByte(line, '\n')]
	t.Logf("node %d: %s", lead, line)
	next := c.waitLeader(10*time.Second, rest)
	if !strings.Contains(line, fmt.Sprintf("to=%d", next)) {
		t.Errorf("node %d handed off with %q, but %d leads", lead, line, next)
	}
	if tok, err := lockCmd(ctx, c.client(rest[1]), "after", "me"); err != nil || tok <= 0 {
		t.Fatalf("LOCK after = %d, %v", tok, err)
	}
}
