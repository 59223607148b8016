package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A go-redis pipeline of LOCKs and UNLOCKs through a follower: every reply
// comes back in order and right, the follower reads its own writes at once,
// and commands on one lock in one pipeline act in order.
func TestPipelineThroughFollower(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	f := c.client(c.others(lead)[0])

	pipeLock := func(round int) []int64 {
		t.Helper()
		pipe := f.Pipeline()
		cmds := make([]*redis.Cmd, 100)
		for i := range cmds {
			cmds[i] = pipe.Do(ctx, "LOCK", fmt.Sprintf("pl%d", i), fmt.Sprintf("w%d", round), "PX", 60000)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("round %d: pipeline of LOCKs: %v", round, err)
		}
		toks := make([]int64, len(cmds))
		for i, cmd := range cmds {
			tok, err := cmd.Int64()
			if err != nil || tok <= 0 {
				t.Fatalf("round %d: LOCK pl%d = %d, %v; want a token", round, i, tok, err)
			}
			toks[i] = tok
		}
		return toks
	}
	first := pipeLock(1)
	for i := range 100 {
		if o, err := ownerOf(ctx, f, fmt.Sprintf("pl%d", i)); o != "w1" || err != nil {
			t.Fatalf("OWNER pl%d on the follower right after its pipeline = %q, %v", i, o, err)
		}
	}
	pipe := f.Pipeline()
	unlocks, relocks := make([]*redis.Cmd, 100), make([]*redis.Cmd, 100)
	for i := range unlocks {
		// Each UNLOCK is followed by a LOCK of the same name by someone
		// else in the same pipeline: it must act after the UNLOCK.
		unlocks[i] = pipe.Do(ctx, "UNLOCK", fmt.Sprintf("pl%d", i), "w1")
		relocks[i] = pipe.Do(ctx, "LOCK", fmt.Sprintf("pl%d", i), "w2", "PX", 60000)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("pipeline of UNLOCKs and LOCKs: %v", err)
	}
	for i := range unlocks {
		if n, err := unlocks[i].Int64(); n != 1 || err != nil {
			t.Fatalf("UNLOCK pl%d = %d, %v; want 1", i, n, err)
		}
		if tok, err := relocks[i].Int64(); tok <= first[i] || err != nil {
			t.Fatalf("LOCK pl%d by w2 after the UNLOCK = %d, %v; want a token above %d", i, tok, err, first[i])
		}
	}
}

// A pipeline sent while the leader dies still answers every command once:
// a token, a null or -TRYAGAIN, never a hang, and no lock has two owners.
func TestPipelineAcrossLeaderKill(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	ctx := context.Background()
	lead := c.waitLeader(10*time.Second, nil)
	rest := c.others(lead)
	f := c.client(rest[0])
	c.kill(lead)
	pipe := f.Pipeline()
	cmds := make([]*redis.Cmd, 200)
	for i := range cmds {
		cmds[i] = pipe.Do(ctx, "LOCK", fmt.Sprintf("pk%d", i%100), fmt.Sprintf("o%d", i), "PX", 60000)
	}
	pipe.Exec(ctx)
	for i, cmd := range cmds {
		_, err := cmd.Int64()
		if err != nil && !errors.Is(err, redis.Nil) && !redis.HasErrorPrefix(err, "TRYAGAIN") {
			t.Fatalf("LOCK pk%d for o%d: %v; want a token, nil or TRYAGAIN", i%100, i, err)
		}
	}
	c.waitLeader(5*time.Second, rest)
	for i := range 100 {
		name := fmt.Sprintf("pk%d", i)
		var granted []string
		for _, j := range []int{i, i + 100} {
			if tok, err := cmds[j].Int64(); err == nil && tok > 0 {
				granted = append(granted, fmt.Sprintf("o%d", j))
			}
		}
		if len(granted) > 1 {
			t.Fatalf("%s granted to %v", name, granted)
		}
		if len(granted) == 1 {
			poll(t, 5*time.Second, "the grant to show", func() bool {
				o, _ := ownerOf(ctx, f, name)
				return o == granted[0]
			})
		}
	}
}
