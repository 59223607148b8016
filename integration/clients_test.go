package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testPassword is the --requirepass of the password variants.
const testPassword = "s3cret-pass"

// clientMissing skips t because a client tool is not installed, or fails it
// when LOCKD_REQUIRE_CLIENTS=1 (CI sets it, so a missing client is noticed).
func clientMissing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("LOCKD_REQUIRE_CLIENTS") == "1" {
		t.Fatalf("%s (and LOCKD_REQUIRE_CLIENTS=1)", msg)
	}
	t.Skip(msg)
}

// needRedisCLI returns the path of redis-cli.
func needRedisCLI(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-cli")
	if err != nil {
		clientMissing(t, "redis-cli not found: %v", err)
	}
	return path
}

// redisPyPython is the interpreter that has redis-py (Debian's python3-redis),
// not whatever python3 comes first on PATH.
const redisPyPython = "/usr/bin/python3"

// needRedisPy checks that redisPyPython can import redis.
func needRedisPy(t testing.TB) {
	t.Helper()
	out, err := exec.Command(redisPyPython, "-c", "import redis; print(redis.__version__)").CombinedOutput()
	if err != nil {
		clientMissing(t, "%s cannot import redis: %v: %s", redisPyPython, err, out)
	}
}

// needIoredis returns the path of node, checking that it finds ioredis in
// ./clients/node_modules.
func needIoredis(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("node")
	if err != nil {
		clientMissing(t, "node not found: %v", err)
	}
	cmd := exec.Command(path, "-e", "require.resolve('ioredis')")
	cmd.Dir = "clients"
	if out, err := cmd.CombinedOutput(); err != nil {
		clientMissing(t, "ioredis not installed in integration/clients (npm ci there): %v: %s", err, out)
	}
	return path
}

// runTool runs a client program with stdin and returns its stdout. It fails
// t when the program does not finish within 20s or exits non-zero (unless
// allowFail).
func runTool(t testing.TB, stdin io.Reader, allowFail bool, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish within 20s (hung?)\nstdout:\n%s\nstderr:\n%s", name, args, stdout.String(), stderr.String())
	}
	if err != nil && !allowFail {
		t.Fatalf("%s %q: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// roundTrip runs the common LOCK/UNLOCK/RENEW/OWNER/LOCKINFO sequence with a
// go-redis client and checks every reply.
func roundTrip(t *testing.T, rdb *redis.Client, name string) {
	t.Helper()
	ctx := context.Background()
	tok, err := lockCmd(ctx, rdb, name, "me", "PX", 30000)
	if err != nil || tok <= 0 {
		t.Fatalf("LOCK %s me PX 30000 = %d, %v; want a token", name, tok, err)
	}
	if again, err := lockCmd(ctx, rdb, name, "me", "PX", 30000); again != tok || err != nil {
		t.Fatalf("repeated LOCK = %d, %v; want the same token %d", again, err, tok)
	}
	if other, err := lockCmd(ctx, rdb, name, "other"); other != 0 || err != nil {
		t.Fatalf("LOCK by another owner = %d, %v; want null", other, err)
	}
	if o, err := ownerOf(ctx, rdb, name); o != "me" || err != nil {
		t.Fatalf("OWNER = %q, %v; want me", o, err)
	}
	info, err := lockInfo(ctx, rdb, name)
	if err != nil || info.Owner != "me" || info.Token != tok || info.TTL <= 0 || info.TTL > 30000 {
		t.Fatalf("LOCKINFO = %+v, %v; want me, %d, ttl in (0, 30000]", info, err, tok)
	}
	if n, err := rdb.Do(ctx, "RENEW", name, "me", "PX", 60000).Int64(); n != 1 || err != nil {
		t.Fatalf("RENEW by the holder = %d, %v; want 1", n, err)
	}
	if info, err := lockInfo(ctx, rdb, name); err != nil || info.Token != tok || info.TTL <= 30000 || info.TTL > 60000 {
		t.Fatalf("LOCKINFO after RENEW PX 60000 = %+v, %v; want token %d, ttl in (30000, 60000]", info, err, tok)
	}
	if n, err := rdb.Do(ctx, "RENEW", name, "other", "PX", 1000).Int64(); n != 0 || err != nil {
		t.Fatalf("RENEW by another owner = %d, %v; want 0", n, err)
	}
	if n, err := rdb.Do(ctx, "UNLOCK", name, "other").Int64(); n != 0 || err != nil {
		t.Fatalf("UNLOCK by another owner = %d, %v; want 0", n, err)
	}
	if n, err := rdb.Do(ctx, "UNLOCK", name, "me").Int64(); n != 1 || err != nil {
		t.Fatalf("UNLOCK by the holder = %d, %v; want 1", n, err)
	}
	if o, err := ownerOf(ctx, rdb, name); o != "" || err != nil {
		t.Fatalf("OWNER after UNLOCK = %q, %v; want null", o, err)
	}
	if info, err := lockInfo(ctx, rdb, name); info.held() || err != nil {
		t.Fatalf("LOCKINFO after UNLOCK = %+v, %v; want null", info, err)
	}
	if next, err := lockCmd(ctx, rdb, name, "other"); next <= tok || err != nil {
		t.Fatalf("LOCK by another owner after UNLOCK = %d, %v; want a token above %d", next, err, tok)
	}
	if n, err := rdb.Do(ctx, "UNLOCK", name, "other").Int64(); n != 1 || err != nil {
		t.Fatalf("UNLOCK = %d, %v; want 1", n, err)
	}
	_, err = rdb.Do(ctx, "LOCK", name).Result()
	if err == nil || err.Error() != "ERR wrong number of arguments for 'lock' command" {
		t.Fatalf("LOCK with one argument: %v; want the arity error", err)
	}
}

// TestGoRedis: go-redis v9 with its default options (RESP3, negotiated with
// HELLO 3) and with Protocol 2, with and without a password.
func TestGoRedis(t *testing.T) {
	withAndWithoutPassword(t, func(t *testing.T, c *cluster, pass string) {
		for _, tc := range []struct {
			name  string
			proto int
			resp  string
		}{{"default", 0, "resp=3"}, {"protocol2", 2, "resp=2"}} {
			t.Run(tc.name, func(t *testing.T) {
				rdb := redis.NewClient(&redis.Options{Addr: c.nodes[1].client, Protocol: tc.proto, Password: pass})
				t.Cleanup(func() { rdb.Close() })
				ci, err := rdb.ClientInfo(context.Background()).Result()
				if err != nil {
					t.Fatalf("CLIENT INFO: %v", err)
				}
				if fmt.Sprintf("resp=%d", ci.Resp) != tc.resp {
					t.Fatalf("the connection speaks resp=%d; want %s", ci.Resp, tc.resp)
				}
				roundTrip(t, rdb, "go-redis-"+tc.name)
			})
		}
		if pass == "" {
			return
		}
		t.Run("no-password", func(t *testing.T) {
			rdb := redis.NewClient(&redis.Options{Addr: c.nodes[1].client, Protocol: 2, MaxRetries: -1})
			t.Cleanup(func() { rdb.Close() })
			_, err := rdb.Do(context.Background(), "OWNER", "x").Result()
			if err == nil || !strings.HasPrefix(err.Error(), "NOAUTH ") {
				t.Fatalf("OWNER without a password: %v; want NOAUTH", err)
			}
			wrong := redis.NewClient(&redis.Options{Addr: c.nodes[1].client, Password: "wrong", MaxRetries: -1})
			t.Cleanup(func() { wrong.Close() })
			_, err = wrong.Do(context.Background(), "OWNER", "x").Result()
			if err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS ") {
				t.Fatalf("OWNER with a wrong password: %v; want WRONGPASS", err)
			}
		})
	})
}

// TestRedisCLI: redis-cli one-shot (RESP2 and -3), interactive on a pipe,
// and with -a against a node that requires a password.
func TestRedisCLI(t *testing.T) {
	cli := needRedisCLI(t)
	c := startNode(t)
	pc := startNodeWith(t, testPassword)
	hostPort := func(c *cluster) []string {
		host, port, _ := strings.Cut(c.nodes[1].client, ":")
		return []string{"-h", host, "-p", port}
	}
	run := func(c *cluster, extra []string, args ...string) string {
		t.Helper()
		return runTool(t, nil, true, cli, append(append(hostPort(c), extra...), args...)...)
	}
	token := func(out string) int64 {
		t.Helper()
		n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("redis-cli printed %q; want a token", out)
		}
		return n
	}

	t.Run("oneshot", func(t *testing.T) {
		tok := token(run(c, nil, "LOCK", "a", "me", "PX", "30000"))
		if again := token(run(c, nil, "LOCK", "a", "me", "PX", "30000")); again != tok {
			t.Fatalf("repeated LOCK printed %d; want %d", again, tok)
		}
		tok3 := token(run(c, []string{"-3"}, "LOCK", "b", "me", "PX", "30000"))
		if tok3 <= tok {
			t.Fatalf("LOCK b under -3 printed %d; want above %d", tok3, tok)
		}
		if out := run(c, nil, "OWNER", "a"); out != "me\n" {
			t.Fatalf("OWNER a printed %q; want \"me\\n\"", out)
		}
		if out := run(c, nil, "LOCK", "a", "other"); strings.TrimSpace(out) != "" {
			t.Fatalf("LOCK a by another owner printed %q; want an empty line (null)", out)
		}
		// LOCKINFO: an array in RESP2, a map under -3 (raw output: "key value").
		lines := strings.Split(strings.TrimSpace(run(c, nil, "LOCKINFO", "a")), "\n")
		if len(lines) != 3 || lines[0] != "me" || lines[1] != fmt.Sprint(tok) {
			t.Fatalf("LOCKINFO a printed %q; want me, %d, ttl", lines, tok)
		}
		if ttl, err := strconv.Atoi(lines[2]); err != nil || ttl <= 0 || ttl > 30000 {
			t.Fatalf("LOCKINFO a ttl %q; want in (0, 30000]", lines[2])
		}
		out := run(c, []string{"-3"}, "LOCKINFO", "b")
		fields := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			k, v, _ := strings.Cut(l, " ")
			fields[k] = v
		}
		if len(fields) != 3 || fields["owner"] != "me" || fields["token"] != fmt.Sprint(tok3) || fields["ttl_ms"] == "" {
			t.Fatalf("LOCKINFO b under -3 printed %q; want the map owner me, token %d, ttl_ms", out, tok3)
		}
		if out := run(c, nil, "LOCK", "a"); !strings.Contains(out, "ERR wrong number of arguments for 'lock' command") {
			t.Fatalf("LOCK a printed %q; want the arity error", out)
		}
		if out := run(c, nil, "LOCK", "a", "me", "PX", "soon"); !strings.Contains(out, "ERR value is not an integer or out of range") {
			t.Fatalf("LOCK a me PX soon printed %q; want the integer error", out)
		}
		if out := run(c, nil, "UNLOCK", "a", "me"); out != "1\n" {
			t.Fatalf("UNLOCK a me printed %q; want 1", out)
		}
	})

	t.Run("interactive", func(t *testing.T) {
		// stdin is a pipe that stays open: redis-cli must act on each line
		// and leave at QUIT on its own.
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pr.Close(); pw.Close() })
		if _, err := io.WriteString(pw, "PING\nLOCK x me\nLOCK x other\nOWNER x\nLOCKINFO x\nUNLOCK x me\nOWNER x\nQUIT\n"); err != nil {
			t.Fatal(err)
		}
		out := runTool(t, pr, false, cli, hostPort(c)...)
		lines := strings.Split(out, "\n")
		if len(lines) < 9 {
			t.Fatalf("redis-cli printed %q; want 7 replies on 9 lines", out)
		}
		tok, err := strconv.ParseInt(lines[1], 10, 64)
		want := []string{"PONG", lines[1], "", "me", "me", lines[1], "-1", "1", ""}
		if err != nil || tok <= 0 || strings.Join(lines[:9], "\n") != strings.Join(want, "\n") {
			t.Fatalf("redis-cli printed\n%s\nwant\n%s", out, strings.Join(want, "\n"))
		}
	})

	t.Run("requirepass", func(t *testing.T) {
		if out := run(pc, nil, "OWNER", "a"); !strings.Contains(out, "NOAUTH Authentication required.") {
			t.Fatalf("OWNER without -a printed %q; want NOAUTH", out)
		}
		if out := run(pc, []string{"-a", "wrong", "--no-auth-warning"}, "OWNER", "a"); !strings.Contains(out, "WRONGPASS") && !strings.Contains(out, "NOAUTH") {
			t.Fatalf("OWNER with a wrong -a printed %q; want WRONGPASS", out)
		}
		auth := []string{"-a", testPassword, "--no-auth-warning"}
		tok := token(run(pc, auth, "LOCK", "p", "me", "PX", "30000"))
		if out := run(pc, append([]string{"-3"}, auth...), "LOCK", "p", "me", "PX", "30000"); strings.TrimSpace(out) != fmt.Sprint(tok) {
			t.Fatalf("repeated LOCK with -3 -a printed %q; want %d", out, tok)
		}
		if out := run(pc, auth, "OWNER", "p"); out != "me\n" {
			t.Fatalf("OWNER p printed %q; want me", out)
		}
		if out := run(pc, auth, "UNLOCK", "p", "me"); out != "1\n" {
			t.Fatalf("UNLOCK p me printed %q; want 1", out)
		}
	})
}

// scriptLines reads "<key...> <value>" lines, keyed by the first keyWords
// words.
func scriptLines(out string, keyWords int) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(l, " ", keyWords+1)
		if len(f) == keyWords+1 {
			m[strings.Join(f[:keyWords], " ")] = f[keyWords]
		} else {
			m[l] = ""
		}
	}
	return m
}

// checkScript checks the steps a client script printed (see
// clients/redispy_check.py) under prefix; lockinfo decodes its LOCKINFO line.
func checkScript(t *testing.T, out string, m map[string]string, prefix, owner string, lockinfo func(string) (lockState, error)) {
	t.Helper()
	get := func(step string) string {
		v, ok := m[prefix+step]
		if !ok {
			t.Fatalf("no %q line in the output:\n%s", prefix+step, out)
		}
		return v
	}
	tok, err := strconv.ParseInt(get("lock"), 10, 64)
	if err != nil || tok <= 0 {
		t.Fatalf("lock = %q; want a token\n%s", get("lock"), out)
	}
	want := map[string]string{
		"ping": "PONG", "relock": fmt.Sprint(tok), "other": "nil", "owner": owner, "renew": "1",
		"unlock-other": "0", "unlock": "1", "owner-after": "nil", "lockinfo-after": "nil", "unlock-next": "1",
		"error":    "wrong number of arguments for 'lock' command",
		"pipeline": "granted=20 distinct=20 unlock=1 relock=granted owner=someone-else",
	}
	for step, w := range want {
		if got := get(step); !strings.HasSuffix(got, w) || (step != "error" && got != w) {
			t.Errorf("%s%s = %q; want %q", prefix, step, got, w)
		}
	}
	info, err := lockinfo(get("lockinfo"))
	if err != nil || info.Owner != owner || info.Token != tok || info.TTL <= 0 || info.TTL > 30000 {
		t.Errorf("%slockinfo = %q (%+v, %v); want %s, %d, ttl in (0, 30000]", prefix, get("lockinfo"), info, err, owner, tok)
	}
	if next, err := strconv.ParseInt(get("lock-next"), 10, 64); err != nil || next <= tok {
		t.Errorf("%slock-next = %q; want a token above %d", prefix, get("lock-next"), tok)
	}
}

// TestRedisPy: redis-py (Debian's python3-redis) with execute_command, RESP2
// and, when the installed version has it, protocol=3; with and without a
// password.
func TestRedisPy(t *testing.T) {
	needRedisPy(t)
	script, err := filepath.Abs(filepath.Join("clients", "redispy_check.py"))
	if err != nil {
		t.Fatal(err)
	}
	withAndWithoutPassword(t, func(t *testing.T, c *cluster, pass string) {
		out := runClientScript(t, c, pass, redisPyPython, script, "py")
		m := scriptLines(out, 2)
		if m["meta done"] != "ok" {
			t.Fatalf("the script did not finish:\n%s", out)
		}
		if pass != "" && !strings.Contains(m["meta noauth"], "Authentication required") {
			t.Errorf("without the password redis-py got %q; want NOAUTH Authentication required", m["meta noauth"])
		}
		parse := func(form string) func(string) (lockState, error) {
			return func(s string) (lockState, error) {
				var st lockState
				var f string
				_, err := fmt.Sscanf(s, "form=%s owner=%s token=%d ttl=%d", &f, &st.Owner, &st.Token, &st.TTL)
				if err == nil && f != form {
					err = fmt.Errorf("LOCKINFO came as %s; want %s", f, form)
				}
				return st, err
			}
		}
		checkScript(t, out, m, "resp2 ", "py-owner", parse("array"))
		if m["meta resp3"] == "unsupported" {
			t.Logf("redis-py %s has no protocol=3: RESP3 part not run", m["meta version"])
			return
		}
		checkScript(t, out, m, "resp3 ", "py-owner", parse("map"))
	})
}

// TestIoredis: ioredis becomes ready (its INFO ready check needs loading:0)
// and drives LOCK/OWNER/LOCKINFO/RENEW/UNLOCK with call(); with and without
// a password.
func TestIoredis(t *testing.T) {
	node := needIoredis(t)
	script, err := filepath.Abs(filepath.Join("clients", "ioredis_check.js"))
	if err != nil {
		t.Fatal(err)
	}
	withAndWithoutPassword(t, func(t *testing.T, c *cluster, pass string) {
		out := runClientScript(t, c, pass, node, script, "io")
		m := scriptLines(out, 1)
		if m["ready"] != "ready" || m["done"] != "ok" {
			t.Fatalf("ioredis did not become ready and finish:\n%s", out)
		}
		if pass != "" && !strings.Contains(m["noauth"], "NOAUTH") {
			t.Errorf("without the password ioredis got %q; want NOAUTH", m["noauth"])
		}
		checkScript(t, out, m, "", "io-owner", func(s string) (lockState, error) {
			var v []any
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				return lockState{}, err
			}
			if len(v) != 3 {
				return lockState{}, errors.New("not 3 elements")
			}
			o, _ := v[0].(string)
			tok, _ := v[1].(float64)
			ttl, _ := v[2].(float64)
			return lockState{Owner: o, Token: int64(tok), TTL: int64(ttl)}, nil
		})
	})
}

// startNodeWith starts a one-node cluster like startNode, with --requirepass
// pass when pass is not empty.
func startNodeWith(t testing.TB, pass string, extra ...string) *cluster {
	return startCluster(t, 1, clusterOpts{extra: extra, password: pass})
}

// withAndWithoutPassword runs test once on a node without a password
// ("open") and once on a node with --requirepass ("requirepass").
func withAndWithoutPassword(t *testing.T, test func(t *testing.T, c *cluster, pass string)) {
	for _, pass := range []string{"", testPassword} {
		label := "open"
		if pass != "" {
			label = "requirepass"
		}
		t.Run(label, func(t *testing.T) { test(t, startNodeWith(t, pass), pass) })
	}
}

// runClientScript runs a client-library script against node 1 of c:
// interpreter script host port tag [password]; it returns the output.
func runClientScript(t *testing.T, c *cluster, pass, interpreter, script, tag string) string {
	host, port, _ := strings.Cut(c.nodes[1].client, ":")
	args := []string{script, host, port, tag}
	if pass != "" {
		args = append(args, pass)
	}
	out := runTool(t, nil, false, interpreter, args...)
	t.Logf("%s output:\n%s", tag, out)
	return out
}
