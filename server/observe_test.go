package server

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingObserver is a CommandObserver that counts commands by
// "name result", in the names CommandNames gives.
type countingObserver struct {
	mu    sync.Mutex
	names []string
	seen  map[string]int
}

func newCountingObserver() *countingObserver {
	return &countingObserver{names: CommandNames(), seen: map[string]int{}}
}

func (o *countingObserver) Command(cmd int, result Result, took time.Duration) {
	name := "unknown"
	if cmd != UnknownCommand {
		name = o.names[cmd]
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen[name+" "+result.String()]++
}

// take returns what was counted so far and forgets it.
func (o *countingObserver) take() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := maps.Clone(o.seen)
	clear(o.seen)
	return m
}

func TestObserverHearsEachCommandWithItsResult(t *testing.T) {
	obs := newCountingObserver()
	srv := startServer(t, func(c *Config) { c.Observer = obs; c.Password = "pw" })
	rc := dial(t, srv)
	tests := []struct {
		name string
		send [][]string // commands, each answered before the next is sent
		want map[string]int
	}{
		{"before AUTH", [][]string{{"LOCK", "a", "x"}}, map[string]int{"lock noauth": 1}},
		{"AUTH", [][]string{{"AUTH", "nope"}, {"AUTH", "pw"}}, map[string]int{"auth wrongpass": 1, "auth ok": 1}},
		{"a grant and a refusal are both answered", [][]string{{"LOCK", "a", "x"}, {"LOCK", "a", "y"}}, map[string]int{"lock ok": 2}},
		{"bad arguments", [][]string{{"LOCK", "a", "x", "PX", "soon"}, {"LOCK"}}, map[string]int{"lock err": 2}},
		{"a client's spelling never becomes a label", [][]string{{"lOcK", "b", "x"}, {"NO-SUCH-COMMAND"}, {"\x00\xff"}},
			map[string]int{"lock ok": 1, "unknown err": 2}},
		{"a script's own error code", [][]string{{"EVAL", "return redis.error_reply('MYCODE made up')", "0"}}, map[string]int{"eval other": 1}},
		{"an error inside an array reply is not the command's", [][]string{{"EVAL", "return {1, redis.error_reply('ERR inner')}", "0"}}, map[string]int{"eval ok": 1}},
		{"a queued command is counted when queued; one refused aborts EXEC",
			[][]string{{"MULTI"}, {"SET", "k", "v"}, {"EXPIRE", "k", "nope"}, {"EXEC"}},
			map[string]int{"multi ok": 1, "set ok": 1, "expire err": 1, "exec execabort": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := rc.with(t)
			obs.take()
			for _, args := range tt.send {
				rc.do(args...)
			}
			if got := obs.take(); !maps.Equal(got, tt.want) {
				t.Fatalf("observed %v; want %v", got, tt.want)
			}
		})
	}
}

// Pipelined writes go to the cluster as one wave; each is observed.
func TestObserverHearsEachCommandOfAPipeline(t *testing.T) {
	obs := newCountingObserver()
	srv := startServer(t, func(c *Config) { c.Observer = obs })
	rc := dial(t, srv)
	var b strings.Builder
	for i := range 10 {
		b.WriteString(encode("LOCK", fmt.Sprint("p", i), "x"))
	}
	b.WriteString(encode("UNLOCK", "p0"))
	rc.send(b.String())
	for range 11 {
		rc.reply()
	}
	poll(t, "the pipeline's commands to be observed", func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		return obs.seen["lock ok"] == 10 && obs.seen["unlock err"] == 1
	})
	if got := obs.take(); len(got) != 2 {
		t.Fatalf("observed %v; want 10 LOCKs ok and one UNLOCK err", got)
	}
}

func TestResultOfEveryErrorCodeLockdAnswers(t *testing.T) {
	for _, err := range []error{errSyntax, errNoAuth, errWrongPass, errNoProto, errTryNoLeader, errExecAbort} {
		msg := respError(err)
		code, _, _ := strings.Cut(msg, " ")
		if got := resultOf(msg); got == ResultOther || !strings.EqualFold(got.String(), code) {
			t.Errorf("resultOf(%q) = %v; want %s", msg, got, strings.ToLower(code))
		}
	}
	if got := resultOf(errNoScript.Str); got != ResultNoScript {
		t.Errorf("resultOf(%q) = %v", errNoScript.Str, got)
	}
}
