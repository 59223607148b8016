package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A JSON log line carries the keys the text line does, in the same order
// (time, level, msg, then the attributes, the node's first as lockd's
// loggers add it), and the same level and message; records below the level
// are left out of both.
func TestLogFormatsCarrySameKeys(t *testing.T) {
	logs := func(format string) []string {
		var b bytes.Buffer
		log := newLogger(&b, format, slog.LevelInfo).With("node", uint64(2))
		log.Debug("not shown", "k", 1)
		log.Info("lockd ready", "listen", "127.0.0.1:6379", "tls", "", "data", "/var/lib/lockd two", "fsync", "always")
		log.Warn("slow fsync", "took", 1500*time.Millisecond, "entries", 3)
		log.Error("node failed; exiting", "err", errors.New(`wal: "x" damaged`))
		return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	}
	text, js := logs(LogFormatText), logs(LogFormatJSON)
	if len(text) != 3 || len(js) != 3 {
		t.Fatalf("%d text and %d JSON lines; want 3 of each:\n%s\n%s", len(text), len(js), strings.Join(text, "\n"), strings.Join(js, "\n"))
	}
	for i := range text {
		tk, tv := textFields(t, text[i])
		jk, jv := jsonFields(t, js[i])
		if !slices.Equal(tk, jk) {
			t.Errorf("line %d: text keys %q, JSON keys %q", i, tk, jk)
		}
		for _, k := range []string{"level", "msg", "node"} {
			if tv[k] != jv[k] {
				t.Errorf("line %d: %s is %q in text, %q in JSON", i, k, tv[k], jv[k])
			}
		}
	}
}

// textFields parses a TextHandler line: its keys in order, and its values
// (unquoted).
func textFields(t testing.TB, line string) ([]string, map[string]string) {
	t.Helper()
	var keys []string
	vals := map[string]string{}
	for rest := line; rest != ""; rest = strings.TrimPrefix(rest, " ") {
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			t.Fatalf("text line %q: no key=value at %q", line, rest)
		}
		if strings.HasPrefix(v, `"`) {
			q, err := strconv.QuotedPrefix(v)
			if err != nil {
				t.Fatalf("text line %q: %v", line, err)
			}
			rest = v[len(q):]
			v, _ = strconv.Unquote(q)
		} else {
			v, rest, _ = strings.Cut(v, " ")
		}
		keys = append(keys, k)
		vals[k] = v
	}
	return keys, vals
}

// jsonFields parses a JSONHandler line, one flat object: its keys in order,
// and its values as fmt prints what encoding/json decodes.
func jsonFields(t testing.TB, line string) ([]string, map[string]string) {
	t.Helper()
	var keys []string
	vals := map[string]string{}
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); tok != json.Delim('{') {
		t.Fatalf("JSON line %q: starts with %v, %v; want an object", line, tok, err)
	}
	for dec.More() {
		tok, err := dec.Token()
		var v any
		if err == nil {
			err = dec.Decode(&v)
		}
		if err != nil {
			t.Fatalf("JSON line %q: %v", line, err)
		}
		keys = append(keys, tok.(string))
		vals[tok.(string)] = fmt.Sprint(v)
	}
	return keys, vals
}
