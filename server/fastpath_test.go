package server

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/resp"
	"github.com/lockd/lockd/script"
)

// libraryScripts returns the release and extend scripts of the lock
// libraries by SHA, read from where each library is installed: the bodies
// whose fast paths fastpath.go claims.
func libraryScripts(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	src, err := os.ReadFile("../cmd/lockbench/worker.go")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile("const compareAndDelete = `([^`]*)`").FindSubmatch(src); m != nil {
		out[script.SHA1Hex(string(m[1]))] = string(m[1])
	}
	py, err := exec.Command("/usr/bin/python3", "-c",
		"import json, redis.lock as l; print(json.dumps([l.Lock.LUA_RELEASE_SCRIPT, l.Lock.LUA_REACQUIRE_SCRIPT]))").Output()
	var bodies []string
	if err == nil && json.Unmarshal(py, &bodies) == nil {
		for _, b := range bodies {
			out[script.SHA1Hex(b)] = b
		}
	} else if os.Getenv("LOCKD_REQUIRE_CLIENTS") != "" {
		t.Fatalf("redis-py's scripts: %v", err)
	}
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/go-redsync/redsync/v4").Output()
	if err == nil {
		src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "scripts.go"))
		if err == nil {
			for _, m := range regexp.MustCompile("NewScript\\(\\d+, `([^`]*)`, \"([0-9a-f]{40})\"\\)").FindAllSubmatch(src, -1) {
				out[string(m[2])] = string(m[1])
			}
		}
	}
	return out
}

// Every fast path gives the same reply and leaves the same lock as the
// library's script run by the interpreter, on random locks and arguments.
func TestFastPathsEqualTheirScripts(t *testing.T) {
	srv := startServer(t)
	bodies := libraryScripts(t)
	for sha := range fastPaths {
		body, ok := bodies[sha]
		if !ok {
			if os.Getenv("LOCKD_REQUIRE_CLIENTS") != "" {
				t.Fatalf("the script of fast path %s is not installed here", sha)
			}
			t.Logf("skipping fast path %s: its library is not installed", sha)
			continue
		}
		if script.SHA1Hex(body) != sha {
			t.Fatalf("the library's script no longer has SHA %s", sha)
		}
		t.Run(sha[:8], func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			fast := 0
			for trial := range 400 {
				setup := randomLockState(r)
				keys := []string{"k"}
				args := []string{[]string{"a", "b", ""}[r.IntN(3)], []string{"1000", "0", "-3", "abc", "99999999999999", "5"}[r.IntN(6)]}
				cmd, ok := srv.fastPath(sha, keys, args)
				if !ok {
					continue // the interpreter runs it, as any script
				}
				fast++
				viaScript, viaFast := lock.NewTable(), lock.NewTable()
				apply(viaScript, setup...)
				apply(viaFast, setup...)
				effects := srv.runScript(viaScript, lock.Command{Op: lock.OpScript, X: &lock.Extra{Script: body, Keys: keys, Args: args}})
				effects.Op = lock.OpEffects
				want := apply(viaScript, effects)[0]
				got := apply(viaFast, cmd)[0]
				if !reflect.DeepEqual(want, got) {
					t.Fatalf("trial %d, args %q: the script answers %v, the fast path %v", trial, args, want, got)
				}
				a, aok := viaScript.Get("k")
				b, bok := viaFast.Get("k")
				a.Version, b.Version = 0, 0
				if aok != bok || a != b || viaScript.Len() != viaFast.Len() {
					t.Fatalf("trial %d, args %q: after the script %+v %v, after the fast path %+v %v", trial, args, a, aok, b, bok)
				}
			}
			if fast < 100 {
				t.Fatalf("only %d trials took the fast path", fast)
			}
		})
	}
}

var nextID uint64 = 1 << 40

// apply applies cmds (given IDs) as one entry and returns their replies
// (the token or 0 of a lock command, as an integer).
func apply(t *lock.Table, cmds ...lock.Command) []resp.Value {
	for i := range cmds {
		nextID++
		cmds[i].ID = nextID
	}
	var out []resp.Value
	for _, r := range t.Apply(1, &lock.Batch{Term: 1, Stamp: 1000, Wall: 1_700_000_000_000, Cmds: cmds}, nil) {
		if r.Reply != nil {
			out = append(out, *r.Reply)
		} else {
			out = append(out, resp.IntValue(r.Value))
		}
	}
	return out
}

// randomLockState is the commands that leave "k" absent, or held by a or b,
// with or without a lease, with or without a waiter.
func randomLockState(r *rand.Rand) []lock.Command {
	switch r.IntN(5) {
	case 0:
		return nil
	case 1:
		return []lock.Command{{Op: lock.OpSet, Name: "k", Owner: "a"}}
	case 2:
		return []lock.Command{{Op: lock.OpSet, Name: "k", Owner: "a", TTL: 5000}}
	case 3:
		return []lock.Command{{Op: lock.OpSet, Name: "k", Owner: "b", TTL: 5000}}
	}
	return []lock.Command{{Op: lock.OpSet, Name: "k", Owner: "a", TTL: 5000}, {Op: lock.OpLockWait, Name: "k", Owner: "w", TTL: 700, Wait: 60_000}}
}
