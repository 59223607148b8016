package integration

import (
	"context"
	"os/exec"
	"testing"
)

// node-redlock 5 over ioredis, with the follower as its one client:
// all-or-nothing acquire of several resources (one held elsewhere: the
// acquire fails and takes none), extend, release, using() extending its
// lease automatically through a routine three times longer, and a lock that
// outlives the leader's death. The script is clients/redlock_check.js.
func TestRedlockOnFollower(t *testing.T) {
	node := needIoredis(t)
	needRedlock(t, node)
	script := clientScript(t, "redlock_check.js")
	c, f, host, port := followerCluster(t)
	d := startDriven(t, node, script, host, port, "rl")

	newLead := killLeaderAt(t, c, d, f)
	nl := c.client(newLead)
	for _, k := range []string{"rl:f1", "rl:f2"} {
		if v, err := nl.Get(context.Background(), k).Result(); err != nil || v != d.printed("failover-value") {
			t.Fatalf("GET %s on the new leader = %q, %v; want %q", k, v, err, d.printed("failover-value"))
		}
	}
	d.resume()

	s := d.steps()
	s.want([][2]string{
		{"multi-while-held", "ExecutionError"}, {"multi-attempts", "4"}, {"multi-all-resource-locked", "true"},
		{"multi-left-a-c", "0"}, {"multi-blocker-kept", "1"},
		{"multi-acquire", "3"}, {"multi-extend", "3"}, {"multi-release-exists", "0"},
		{"using-had-value", "true"}, {"using-misses", "0"}, {"using-aborted", "false"}, {"using-after-exists", "0"},
		{"failover-held", "2"}, {"failover-other", "ExecutionError"}, {"failover-release-exists", "0"},
	})
	s.within("multi-extend-pttl-min", 10000, 20000)
	s.within("using-polls", 20, 100)    // 4 s of 50 ms polls
	s.within("using-extensions", 2, 10) // every ~0.7 s of 4 s
	s.within("failover-extend-pttl-min", 20000, 30000)
}

// needRedlock checks that node finds redlock in ./clients/node_modules.
func needRedlock(t testing.TB, node string) {
	t.Helper()
	cmd := exec.Command(node, "-e", "require.resolve('redlock')")
	cmd.Dir = "clients"
	if out, err := cmd.CombinedOutput(); err != nil {
		clientMissing(t, "redlock not installed in integration/clients (npm ci there): %v: %s", err, out)
	}
}
