package server

import (
	"strings"
	"testing"
	"time"

	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/resp"
)

// What a peer may forward is what a client may send: validCommand refuses
// every command that no client command builds.
func TestValidCommandRefusesWhatNoClientSends(t *testing.T) {
	s := &Server{cfg: Config{MaxNameLen: 16, MaxOwnerLen: 8, MaxTTL: time.Hour}.WithDefaults()}
	long := strings.Repeat("x", 17)
	far := time.Now().Add(time.Hour + 2*atSlack).UnixMilli()
	tx := func(sub ...lock.Command) lock.Command { return lock.Command{Op: lock.OpTx, X: &lock.Extra{Sub: sub}} }
	many := make([]lock.Command, maxTxCommands+1)
	for i := range many {
		many[i] = lock.Command{Op: lock.OpGet, Name: "k"}
	}
	keys := make([]string, maxKeys)
	for i := range keys {
		keys[i] = "k"
	}
	for _, tc := range []struct {
		name string
		cmd  lock.Command
	}{
		{"SET of an empty name", lock.Command{Op: lock.OpSet, Owner: "v"}},
		{"SET of an empty value", lock.Command{Op: lock.OpSet, Name: "k"}},
		{"SET of a long value", lock.Command{Op: lock.OpSet, Name: "k", Owner: long}},
		{"SET with a lease past MaxTTL", lock.Command{Op: lock.OpSet, Name: "k", Owner: "v", TTL: time.Hour.Milliseconds() + 1}},
		{"SET with a deadline past MaxTTL", lock.Command{Op: lock.OpSet, Name: "k", Owner: "v", At: far}},
		{"SET with NX and XX", lock.Command{Op: lock.OpSet, Name: "k", Owner: "v", Flags: lock.FlagNX | lock.FlagXX}},
		{"SET with NX and IFEQ", lock.Command{Op: lock.OpSet, Name: "k", Owner: "v", Flags: lock.FlagNX | lock.FlagIfEq}},
		{"SET with a lease and KEEPTTL", lock.Command{Op: lock.OpSet, Name: "k", Owner: "v", TTL: 5, Flags: lock.FlagKeepTTL}},
		{"SET with GT", lock.Command{Op: lock.OpSet, Name: "k", Owner: "v", Flags: lock.FlagGT}},
		{"SET with a match but no condition", lock.Command{Op: lock.OpSet, Name: "k", Owner: "v", Match: "m"}},
		{"SET with a long match", lock.Command{Op: lock.OpSet, Name: "k", Owner: "v", Match: long, Flags: lock.FlagIfEq}},
		{"SET with keys", lock.Command{Op: lock.OpSet, Name: "k", Owner: "v", X: &lock.Extra{Keys: []string{"a"}}}},
		{"DEL with an owner", lock.Command{Op: lock.OpDel, Name: "k", Owner: "v"}},
		{"DEL of a long key", lock.Command{Op: lock.OpDel, Name: "k", X: &lock.Extra{Keys: []string{"a", long}}}},
		{"DEL of too many keys", lock.Command{Op: lock.OpDel, Name: "k", X: &lock.Extra{Keys: keys}}},
		{"DEL IFEQ of several keys", lock.Command{Op: lock.OpDel, Name: "k", Flags: lock.FlagIfEq, X: &lock.Extra{Keys: []string{"a"}}}},
		{"DEL with a reply", lock.Command{Op: lock.OpDel, Name: "k", X: &lock.Extra{Reply: resp.OK()}}},
		{"PEXPIRE without a time", lock.Command{Op: lock.OpExpire, Name: "k"}},
		{"PEXPIRE past MaxTTL", lock.Command{Op: lock.OpExpire, Name: "k", TTL: time.Hour.Milliseconds() + 1}},
		{"PEXPIRE now with a lease", lock.Command{Op: lock.OpExpire, Name: "k", TTL: 5, Flags: lock.FlagExpireNow}},
		{"PEXPIRE NX GT", lock.Command{Op: lock.OpExpire, Name: "k", TTL: 5, Flags: lock.FlagNX | lock.FlagGT}},
		{"PERSIST with a lease", lock.Command{Op: lock.OpPersist, Name: "k", TTL: 5}},
		{"LOCK of a long owner", lock.Command{Op: lock.OpLock, Name: "k", Owner: long}},
		{"LOCK with a negative lease", lock.Command{Op: lock.OpLock, Name: "k", Owner: "o", TTL: -1}},
		{"RENEW without a lease", lock.Command{Op: lock.OpRenew, Name: "k", Owner: "o"}},
		{"LOCK ... WAIT past MaxTTL", lock.Command{Op: lock.OpLockWait, Name: "k", Owner: "o", Wait: time.Hour.Milliseconds() + 1}},
		{"a tick", lock.Command{Op: lock.OpTick}},
		{"a transaction with a name", lock.Command{Op: lock.OpTx, Name: "k"}},
		{"a transaction of 1025 commands", tx(many...)},
		{"a transaction holding a transaction", tx(lock.Command{Op: lock.OpTx})},
		{"a transaction holding a cancel", tx(lock.Command{Op: lock.OpCancel, Name: "k", Owner: "o", Target: 1})},
		{"a transaction's command with an ID", tx(lock.Command{Op: lock.OpGet, Name: "k", ID: 7})},
		{"a transaction's invalid command", tx(lock.Command{Op: lock.OpGet, Name: "k"}, lock.Command{Op: lock.OpSet, Name: "k"})},
		{"a transaction watching a long key", lock.Command{Op: lock.OpTx, X: &lock.Extra{Checks: []lock.Check{{Name: long}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.validCommand(&tc.cmd); err == nil {
				t.Fatalf("%+v is valid", tc.cmd)
			}
		})
	}
	for _, c := range []lock.Command{
		tx(many[:maxTxCommands]...),
		{Op: lock.OpTx, X: &lock.Extra{Checks: []lock.Check{{Name: "k", Version: 3}}}},
		tx(lock.Command{Op: lock.OpLockWait, Name: "k", Owner: "o", Wait: 5}, lock.Command{Op: lock.OpDel, Name: "k", Match: "o", Flags: lock.FlagIfEq | lock.FlagInt}),
		{Op: lock.OpScript, X: &lock.Extra{Script: "return 1"}},
	} {
		if err := s.validCommand(&c); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
