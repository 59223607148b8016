package integration

import (
	"crypto/sha1"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The Redis lock pattern by hand with redis-cli against a follower, as the
// README shows it: SET NX PX takes the lock, GET names the owner, TTL, the
// compare-and-delete release by EVAL and by EVALSHA after SCRIPT LOAD (only
// the owner's value releases), LOCKINFO gives the fencing token.
func TestRedisCLILockOnFollower(t *testing.T) {
	cli := needRedisCLI(t)
	_, _, host, port := followerCluster(t)
	run := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(runTool(t, nil, false, cli, append([]string{"-h", host, "-p", port}, args...)...))
	}
	const release = "if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end"
	sum := sha1.Sum([]byte(release))
	sha := hex.EncodeToString(sum[:])

	for _, step := range []struct {
		args []string
		want []string // any of these
	}{
		{[]string{"SET", "orders-42", "worker-7", "NX", "PX", "30000"}, []string{"OK"}},
		{[]string{"SET", "orders-42", "worker-9", "NX", "PX", "30000"}, []string{""}}, // held: null
		{[]string{"GET", "orders-42"}, []string{"worker-7"}},
		{[]string{"TTL", "orders-42"}, []string{"30", "29"}},                     // rounded; a second may have begun
		{[]string{"EVAL", release, "1", "orders-42", "worker-9"}, []string{"0"}}, // not the owner
		{[]string{"GET", "orders-42"}, []string{"worker-7"}},
		{[]string{"EVAL", release, "1", "orders-42", "worker-7"}, []string{"1"}},
		{[]string{"GET", "orders-42"}, []string{""}},
		{[]string{"SET", "orders-42", "worker-9", "NX", "PX", "30000"}, []string{"OK"}},
		{[]string{"SCRIPT", "LOAD", release}, []string{sha}},
		{[]string{"EVALSHA", sha, "1", "orders-42", "worker-7"}, []string{"0"}},
		{[]string{"EVALSHA", sha, "1", "orders-42", "worker-9"}, []string{"1"}},
		{[]string{"EXISTS", "orders-42"}, []string{"0"}},
	} {
		if got := run(step.args...); !slices.Contains(step.want, got) {
			t.Fatalf("redis-cli %q printed %q; want one of %q", step.args, got, step.want)
		}
	}

	// The fencing token of a grant by SET: LOCKINFO's second field, larger
	// for each new grant.
	var tokens []int64
	for _, owner := range []string{"worker-7", "worker-9"} {
		if out := run("SET", "orders-43", owner, "NX", "PX", "30000"); out != "OK" {
			t.Fatalf("SET orders-43 %s NX PX 30000 printed %q", owner, out)
		}
		lines := strings.Split(run("LOCKINFO", "orders-43"), "\n")
		tok, err := strconv.ParseInt(lines[min(1, len(lines)-1)], 10, 64)
		if len(lines) != 3 || lines[0] != owner || err != nil {
			t.Fatalf("LOCKINFO orders-43 printed %q; want %s, a token, a TTL", lines, owner)
		}
		tokens = append(tokens, tok)
		if out := run("EVALSHA", sha, "1", "orders-43", owner); out != "1" {
			t.Fatalf("EVALSHA release by %s printed %q", owner, out)
		}
	}
	if tokens[1] <= tokens[0] {
		t.Fatalf("fencing tokens %v; want increasing", tokens)
	}
}
