package replication

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/resp"
)

// A script request sent through a follower is run by the leader's
// RunScript, once, and its effects reach every node; effects over a key
// that changed after the script read it are sent again until they apply.
func TestScriptsRunOnTheLeaderAndRetryOverChangedKeys(t *testing.T) {
	var runs atomic.Int32
	var stale atomic.Bool
	nodes := testCluster(t, 3, func(c *Config) {
		c.RunScript = func(table *lock.Table, req lock.Command) lock.Command {
			runs.Add(1)
			s := table.Scratch()
			check := table.Load(s, req.X.Keys[0])
			if stale.CompareAndSwap(true, false) {
				check.Version++ // as if the key changed after the script read it
			}
			del := lock.Command{Op: lock.OpDel, Name: req.X.Keys[0], Flags: lock.FlagIfEq, Match: req.X.Args[0]}
			reply := s.Do(&del)
			return lock.Command{X: &lock.Extra{Checks: []lock.Check{check}, Sub: []lock.Command{del}, Reply: reply, Script: req.X.Script}}
		}
	})
	lead := waitLeader(t, nodes)
	f := nodes[followerOf(nodes, lead)]
	ctx := context.Background()
	if tok, err := f.Execute(ctx, lock.Command{Op: lock.OpLock, Name: "k", Owner: "me"}); tok <= 0 || err != nil {
		t.Fatalf("LOCK: %d, %v", tok, err)
	}
	script := func(owner string) (lock.Result, error) {
		return f.Do(ctx, lock.Command{Op: lock.OpScript, X: &lock.Extra{Script: "compare and delete", Keys: []string{"k"}, Args: []string{owner}}})
	}
	if r, err := script("someone else"); err != nil || r.Reply == nil || !reflect.DeepEqual(*r.Reply, resp.IntValue(0)) {
		t.Fatalf("script as another owner: %+v, %v", r, err)
	}
	stale.Store(true)
	r, err := script("me")
	if err != nil || r.Reply == nil || !reflect.DeepEqual(*r.Reply, resp.IntValue(1)) {
		t.Fatalf("script as the owner: %+v, %v", r, err)
	}
	if n := runs.Load(); n != 3 {
		t.Fatalf("RunScript ran %d times; want 3 (once, then twice for the stale effects)", n)
	}
	sum := sha1.Sum([]byte("compare and delete"))
	for _, n := range nodes {
		poll(t, "every node to apply the delete", func() bool { _, held := n.Table().Get("k"); return !held })
		if body, ok := n.Table().Script(hex.EncodeToString(sum[:])); !ok || body != "compare and delete" {
			t.Fatalf("the script is not registered on node %d", n.cfg.ID)
		}
	}
}
