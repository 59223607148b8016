package lock

import (
	"crypto/sha1"
	"encoding/hex"
)

// Bounds of the script registry. Past either, the scripts registered first
// are forgotten first (EVALSHA of a forgotten one answers NOSCRIPT, and the
// client sends EVAL again, as Redis's clients do).
const (
	MaxScripts     = 10_000
	MaxScriptBytes = 16 << 20
)

// scriptRegistry is the scripts loaded or run in the cluster, by SHA1, in
// the order they were first registered. It is part of the replicated state:
// every node knows every script, across restarts (snapshots carry it).
type scriptRegistry struct {
	body  map[string]string
	order []string
	bytes int
}

func newScriptRegistry() scriptRegistry { return scriptRegistry{body: map[string]string{}} }

// add registers body (again, which changes nothing) and returns its SHA1.
func (r *scriptRegistry) add(body string) string {
	sum := sha1.Sum([]byte(body))
	sha := hex.EncodeToString(sum[:])
	if _, ok := r.body[sha]; ok {
		return sha
	}
	r.body[sha] = body
	r.order = append(r.order, sha)
	r.bytes += len(body)
	for len(r.order) > MaxScripts || (r.bytes > MaxScriptBytes && len(r.order) > 1) {
		old := r.order[0]
		r.order = r.order[1:]
		r.bytes -= len(r.body[old])
		delete(r.body, old)
	}
	return sha
}

// Script returns the registered script of sha (lower-case hex).
func (t *Table) Script(sha string) (string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	b, ok := t.scripts.body[sha]
	return b, ok
}
