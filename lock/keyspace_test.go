package lock

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lockd/lockd/resp"
)

// ksTable applies key-space commands one batch at a time and returns their
// replies; every command gets a new request ID.
type ksTable struct {
	*Table
	tb    testing.TB
	id    uint64
	stamp int64
}

func newKS(tb testing.TB) *ksTable { return &ksTable{Table: NewTable(), tb: tb} }

// at moves the leader's clock to stamp ms (term 1) for the next commands.
func (k *ksTable) at(stamp int64) *ksTable { k.stamp = stamp; return k }

func (k *ksTable) do(cmds ...Command) []resp.Value {
	k.tb.Helper()
	for i := range cmds {
		k.id++
		cmds[i].ID = k.id
	}
	rs := k.Apply(1, &Batch{Term: 1, Stamp: k.stamp, Wall: 1_700_000_000_000 + k.stamp, Cmds: cmds}, nil)
	var out []resp.Value
	for _, r := range rs {
		if r.Reply == nil {
			k.tb.Fatalf("%v: result %v has no reply", cmds, r)
		}
		out = append(out, *r.Reply)
	}
	return out
}

// one applies one command and returns its reply.
func (k *ksTable) one(c Command) resp.Value {
	k.tb.Helper()
	return k.do(c)[0]
}

func (k *ksTable) want(c Command, want resp.Value) {
	k.tb.Helper()
	if got := k.one(c); !reflect.DeepEqual(got, want) {
		k.tb.Errorf("%v %q %q (flags %b): %v, want %v", c.Op, c.Name, c.Owner, c.Flags, got, want)
	}
}

func set(name, value string, ttl int64, flags Flags) Command {
	return Command{Op: OpSet, Name: name, Owner: value, TTL: ttl, Flags: flags}
}
func get(name string) Command { return Command{Op: OpGet, Name: name} }
func del(names ...string) Command {
	c := Command{Op: OpDel, Name: names[0]}
	if len(names) > 1 {
		c.X = &Extra{Keys: names[1:]}
	}
	return c
}
func delIf(name, match string, flags Flags) Command {
	return Command{Op: OpDel, Name: name, Match: match, Flags: flags}
}
func pexpire(name string, ttl int64, flags Flags) Command {
	return Command{Op: OpExpire, Name: name, TTL: ttl, Flags: flags}
}
func pttl(name string) Command { return Command{Op: OpPTTL, Name: name} }

var (
	ok    = resp.OK()
	null  = resp.NilValue()
	one   = resp.IntValue(1)
	zero  = resp.IntValue(0)
	bulk  = resp.BulkValue
	integ = resp.IntValue
)

func TestSetFollowsRedis(t *testing.T) {
	t.Run("NX sets a key that does not exist, and only then", func(t *testing.T) {
		k := newKS(t)
		k.want(set("k", "a", 0, FlagNX), ok)
		k.want(set("k", "b", 0, FlagNX), null)
		k.want(set("k", "a", 0, FlagNX), null) // even for the same value, as in Redis
		k.want(get("k"), bulk("a"))
	})
	t.Run("XX sets a key that exists, and only then", func(t *testing.T) {
		k := newKS(t)
		k.want(set("k", "a", 0, FlagXX), null)
		k.want(get("k"), null)
		k.want(set("k", "a", 0, 0), ok)
		k.want(set("k", "b", 0, FlagXX), ok)
		k.want(get("k"), bulk("b"))
	})
	t.Run("GET replies the old value whether or not it sets", func(t *testing.T) {
		k := newKS(t)
		k.want(set("k", "a", 0, FlagGet), null)
		k.want(set("k", "b", 0, FlagGet), bulk("a"))
		k.want(set("k", "c", 0, FlagGet|FlagNX), bulk("b"))
		k.want(get("k"), bulk("b"))
	})
	t.Run("IFEQ sets only over an equal value, IFNE only over another or none", func(t *testing.T) {
		k := newKS(t)
		k.want(Command{Op: OpSet, Name: "k", Owner: "a", Flags: FlagIfEq, Match: "a"}, null)
		k.want(Command{Op: OpSet, Name: "k", Owner: "a", Flags: FlagIfNe, Match: "a"}, ok)
		k.want(Command{Op: OpSet, Name: "k", Owner: "b", Flags: FlagIfEq, Match: "x"}, null)
		k.want(Command{Op: OpSet, Name: "k", Owner: "b", Flags: FlagIfEq, Match: "a"}, ok)
		k.want(Command{Op: OpSet, Name: "k", Owner: "c", Flags: FlagIfNe, Match: "b"}, null)
		k.want(get("k"), bulk("b"))
	})
	t.Run("SETNX answers 1 or 0", func(t *testing.T) {
		k := newKS(t)
		k.want(set("k", "a", 0, FlagNX|FlagInt), one)
		k.want(set("k", "a", 0, FlagNX|FlagInt), zero)
	})
	t.Run("a lease, none, or the one the key had", func(t *testing.T) {
		k := newKS(t)
		k.want(set("k", "a", 5000, 0), ok)
		k.at(1000).want(pttl("k"), integ(4000))
		k.want(set("k", "a", 0, FlagKeepTTL), ok)
		k.want(pttl("k"), integ(4000))
		k.want(set("k", "a", 0, 0), ok)
		k.want(pttl("k"), integ(-1))
		k.want(set("k", "b", 0, FlagKeepTTL), ok) // KEEPTTL of no TTL
		k.want(pttl("k"), integ(-1))
	})
	t.Run("a deadline already past ends the key at once", func(t *testing.T) {
		k := newKS(t)
		k.want(set("k", "a", 0, 0), ok)
		k.want(set("k", "b", 0, FlagExpireNow|FlagGet), bulk("a"))
		k.want(get("k"), null)
		k.want(set("k", "b", 0, FlagExpireNow), ok)
		k.want(get("k"), null)
	})
}

// A key is a lock: SET and LOCK act on the same table, a new owner gets a
// new fencing token, the same owner keeps its token.
func TestSetIsLock(t *testing.T) {
	k := newKS(t)
	k.want(set("k", "a", 30_000, FlagNX), ok)
	if info, _ := k.Get("k"); info.Owner != "a" || info.Token != 1 || info.Deadline != 30_000 {
		t.Fatalf("after SET NX: %+v", info)
	}
	rs := k.Apply(1, &Batch{Term: 1, Cmds: []Command{{Op: OpLock, ID: 100, Name: "k", Owner: "a", TTL: 1000}}}, nil)
	if rs[0].Value != 1 {
		t.Fatalf("LOCK by the SET's owner = %d; want its token 1", rs[0].Value)
	}
	k.want(set("k", "a", 0, 0), ok)
	if info, _ := k.Get("k"); info.Token != 1 {
		t.Fatalf("SET of the same value changed the token: %+v", info)
	}
	k.want(set("k", "b", 0, 0), ok)
	if info, _ := k.Get("k"); info.Owner != "b" || info.Token != 2 {
		t.Fatalf("SET of another value: %+v; want owner b, token 2", info)
	}
	k.want(set("other", "c", 0, 0), ok)
	if info, _ := k.Get("other"); info.Token != 3 {
		t.Fatalf("the next new key got token %d; want 3", info.Token)
	}
}

// DEL releases: the first waiter gets the lock, with a new token.
func TestDelHandsTheLockToItsFirstWaiter(t *testing.T) {
	k := newKS(t)
	k.want(set("k", "a", 0, 0), ok)
	rs := k.Apply(1, &Batch{Term: 1, Cmds: []Command{{Op: OpLockWait, ID: 100, Name: "k", Owner: "w", TTL: 500, Wait: 10_000}}}, nil)
	if rs[0].Value != Queued {
		t.Fatalf("LOCK ... WAIT = %v; want queued", rs)
	}
	rs = k.Apply(1, &Batch{Term: 1, Cmds: []Command{{Op: OpDel, ID: 101, Name: "k"}}}, nil)
	if len(rs) != 2 || !reflect.DeepEqual(*rs[0].Reply, one) || rs[1] != (Result{ID: 100, Value: 2}) {
		t.Fatalf("DEL with a waiter: %v; want 1 and the waiter granted token 2", rs)
	}
	k.want(get("k"), bulk("w"))
	k.want(pttl("k"), integ(500))
}

func TestDel(t *testing.T) {
	k := newKS(t)
	k.do(set("a", "x", 0, 0), set("b", "y", 0, 0))
	k.want(del("a", "b", "c", "a"), integ(2))
	k.want(Command{Op: OpExists, Name: "a", X: &Extra{Keys: []string{"b"}}}, zero)
	t.Run("DELEX and DELIFEQ delete only a matching value", func(t *testing.T) {
		k.do(set("k", "v", 0, 0))
		k.want(delIf("k", "other", FlagIfEq), zero)
		k.want(delIf("k", "v", FlagIfNe), zero)
		k.want(delIf("k", "v", FlagIfEq), one)
		k.want(delIf("k", "v", FlagIfEq), zero)
		k.want(delIf("k", "v", FlagIfEq|FlagInt), integ(-1)) // go-redsync's release: no such key
		k.do(set("k", "v", 0, 0))
		k.want(delIf("k", "w", FlagIfNe), one)
	})
}

func TestPexpireConditions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lease  int64 // of the key before; 0: none
		ttl    int64
		flags  Flags
		want   resp.Value
		leftMS int64 // -1: no lease; -2: no key
	}{
		{"plain", 1000, 5000, 0, one, 5000},
		{"NX on a key without a lease", 0, 5000, FlagNX, one, 5000},
		{"NX on a key with one", 1000, 5000, FlagNX, zero, 1000},
		{"XX on a key without a lease", 0, 5000, FlagXX, zero, -1},
		{"XX on a key with one", 1000, 5000, FlagXX, one, 5000},
		{"GT to later", 1000, 5000, FlagGT, one, 5000},
		{"GT to earlier", 9000, 5000, FlagGT, zero, 9000},
		{"GT on a key without a lease (infinite)", 0, 5000, FlagGT, zero, -1},
		{"LT to earlier", 9000, 5000, FlagLT, one, 5000},
		{"LT to later", 1000, 5000, FlagLT, zero, 1000},
		{"LT on a key without a lease (infinite)", 0, 5000, FlagLT, one, 5000},
		{"a deadline already past deletes", 1000, 0, FlagExpireNow, one, -2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKS(t)
			k.do(set("k", "v", tc.lease, 0))
			k.want(pexpire("k", tc.ttl, tc.flags), tc.want)
			k.want(pttl("k"), integ(tc.leftMS))
		})
	}
	t.Run("a key that does not exist", func(t *testing.T) {
		newKS(t).want(pexpire("k", 5000, 0), zero)
	})
	t.Run("only when the value is Match", func(t *testing.T) {
		k := newKS(t)
		k.do(set("k", "v", 0, 0))
		k.want(Command{Op: OpExpire, Name: "k", TTL: 100, Flags: FlagIfEq, Match: "w"}, zero)
		k.want(Command{Op: OpExpire, Name: "k", TTL: 100, Flags: FlagIfEq, Match: "v"}, one)
	})
	t.Run("PERSIST", func(t *testing.T) {
		k := newKS(t)
		k.want(Command{Op: OpPersist, Name: "k"}, zero)
		k.do(set("k", "v", 100, 0))
		k.want(Command{Op: OpPersist, Name: "k"}, one)
		k.want(Command{Op: OpPersist, Name: "k"}, zero)
		k.at(1000).want(get("k"), bulk("v"))
	})
}

func TestReads(t *testing.T) {
	k := newKS(t)
	k.do(set("k", "v", 2600, 0), set("p", "v", 0, 0))
	k.at(100)
	k.want(Command{Op: OpExists, Name: "k", X: &Extra{Keys: []string{"k", "nope", "p"}}}, integ(3))
	k.want(Command{Op: OpType, Name: "k"}, resp.StatusValue("string"))
	k.want(Command{Op: OpType, Name: "nope"}, resp.StatusValue("none"))
	k.want(pttl("k"), integ(2500))
	k.want(Command{Op: OpPTTL, Name: "k", Flags: FlagSeconds}, integ(3)) // rounded, as Redis's TTL
	k.want(pttl("p"), integ(-1))
	k.want(pttl("nope"), integ(-2))
	k.want(Command{Op: OpExpireAt, Name: "k"}, integ(1_700_000_000_000+100+2500))
	k.want(Command{Op: OpExpireAt, Name: "k", Flags: FlagSeconds}, integ(1_700_000_002))
	k.want(Command{Op: OpLockInfo, Name: "k"}, resp.ArrayValue(bulk("v"), integ(1), integ(2500)))
	k.want(Command{Op: OpLockInfo, Name: "nope"}, null)
}

// Every change to a key gives it a new version; reads do not; an expiry
// does.
func TestVersions(t *testing.T) {
	k := newKS(t)
	version := func() uint64 { info, _ := k.Get("k"); return info.Version }
	seen := map[uint64]bool{0: true}
	changes := []Command{set("k", "a", 1000, 0), set("k", "a", 1000, 0), pexpire("k", 2000, 0), set("k", "b", 0, FlagKeepTTL)}
	for _, c := range changes {
		k.one(c)
		if v := version(); seen[v] {
			t.Fatalf("after %v the version %d is not new", c.Op, v)
		} else {
			seen[v] = true
		}
		before := version()
		k.do(get("k"), pttl("k"), Command{Op: OpExists, Name: "k"})
		if version() != before {
			t.Fatal("a read changed the version")
		}
	}
	k.at(5000).do(get("other"))
	if _, ok := k.Get("k"); ok {
		t.Fatal("the lease did not run out")
	}
	k.want(set("k", "c", 0, 0), ok)
	if seen[version()] {
		t.Fatal("the key's version after it expired and came back is not new")
	}
}

func TestTransactions(t *testing.T) {
	k := newKS(t)
	k.do(set("a", "1", 0, 0))
	info, _ := k.Get("a")
	tx := func(checks []Check, sub ...Command) Command {
		return Command{Op: OpTx, X: &Extra{Checks: checks, Sub: sub}}
	}
	t.Run("commands run in order and see each other's writes", func(t *testing.T) {
		k.want(tx(nil, set("b", "2", 0, 0), get("b"), del("a"), get("a"), Command{Op: OpLock, Name: "c", Owner: "o"}),
			resp.ArrayValue(ok, bulk("2"), one, null, integ(3)))
	})
	t.Run("a watched key that changed aborts the whole transaction", func(t *testing.T) {
		k.want(tx([]Check{{Name: "a", Version: info.Version}}, set("d", "x", 0, 0)), null)
		k.want(get("d"), null)
	})
	t.Run("a watched key that did not change lets it run", func(t *testing.T) {
		b, _ := k.Get("b")
		k.want(tx([]Check{{Name: "b", Version: b.Version}, {Name: "nope"}}, set("d", "x", 0, 0)), resp.ArrayValue(ok))
	})
	t.Run("an error in one command does not stop the others", func(t *testing.T) {
		got := k.one(tx(nil, Command{Op: OpCancel, Name: "x"}, get("d")))
		if len(got.Array) != 2 || !got.Array[0].IsError() || !reflect.DeepEqual(got.Array[1], bulk("x")) {
			t.Fatalf("transaction with a command not allowed: %v", got)
		}
	})
}

func TestEffectsApplyOnlyOverWhatTheScriptSaw(t *testing.T) {
	k := newKS(t)
	k.do(set("k", "a", 0, 0))
	info, _ := k.Get("k")
	effects := func(version uint64) Command {
		return Command{Op: OpEffects, X: &Extra{
			Checks: []Check{{Name: "k", Version: version}},
			Sub:    []Command{delIf("k", "a", FlagIfEq)},
			Reply:  one,
			Script: "return 1",
		}}
	}
	k.one(set("k", "a", 0, 0)) // changes the version
	rs := k.Apply(1, &Batch{Term: 1, Cmds: []Command{withID(effects(info.Version), 500)}}, nil)
	if rs[0].Value != Retry || rs[0].Reply != nil {
		t.Fatalf("effects over a changed key: %+v; want Retry", rs[0])
	}
	if _, ok := k.Get("k"); !ok {
		t.Fatal("effects over a changed key were applied")
	}
	if _, ok := k.Script("ca5f9a2c2b4cb62d8a9e4cf05e6c6ec6b65be5fa"); ok {
		t.Fatal("a script of rejected effects was registered")
	}
	now, _ := k.Get("k")
	rs = k.Apply(1, &Batch{Term: 1, Cmds: []Command{withID(effects(now.Version), 500)}}, nil)
	if rs[0].Reply == nil || !reflect.DeepEqual(*rs[0].Reply, one) {
		t.Fatalf("effects sent again with the same ID: %+v; want 1 (a Retry is not remembered)", rs[0])
	}
	if _, ok := k.Get("k"); ok {
		t.Fatal("the effects' delete did not happen")
	}
	sha := resp.BulkValue(NewTable().scripts.add("return 1")).Str
	if body, ok := k.Script(sha); !ok || body != "return 1" {
		t.Fatalf("Script(%s) = %q, %v", sha, body, ok)
	}
}

func withID(c Command, id uint64) Command { c.ID = id; return c }

func TestScriptRegistryIsBounded(t *testing.T) {
	k := newKS(t)
	first := k.one(Command{Op: OpScriptLoad, X: &Extra{Script: "return 0"}}).Str
	for i := range MaxScripts {
		k.one(Command{Op: OpScriptLoad, X: &Extra{Script: fmt.Sprint("return ", i+1)}})
	}
	if _, ok := k.Script(first); ok {
		t.Fatalf("%d scripts later the first is still registered", MaxScripts)
	}
	if n := len(k.scripts.body); n != MaxScripts {
		t.Fatalf("%d scripts registered; want %d", n, MaxScripts)
	}
	k.want(Command{Op: OpScriptFlush}, ok)
	if len(k.scripts.body) != 0 {
		t.Fatal("SCRIPT FLUSH left scripts")
	}
}

// A request sent twice acts once and gets the first reply again.
func TestKeySpaceRepliesAreRemembered(t *testing.T) {
	k := newKS(t)
	c := withID(set("k", "a", 0, FlagGet), 7)
	first := k.Apply(1, &Batch{Term: 1, Cmds: []Command{c}}, nil)
	k.one(set("k", "b", 0, 0))
	again := k.Apply(1, &Batch{Term: 1, Cmds: []Command{c}}, nil)
	if !reflect.DeepEqual(*first[0].Reply, null) || !reflect.DeepEqual(*again[0].Reply, null) {
		t.Fatalf("replies %v then %v; want null twice", *first[0].Reply, *again[0].Reply)
	}
	k.want(get("k"), bulk("b"))
}

// randomKeySpaceLog mixes key-space commands, transactions and effects
// with locks and waits.
func randomKeySpaceLog(r *rand.Rand, n int) []entry {
	names := []string{"a", "b", "c", "d"}
	name := func() string { return names[r.IntN(len(names))] }
	value := func() string { return []string{"x", "y", "z"}[r.IntN(3)] }
	flagsOf := []Flags{0, FlagNX, FlagXX, FlagGet, FlagKeepTTL, FlagIfEq, FlagIfNe, FlagNX | FlagGet, FlagInt | FlagNX, FlagExpireNow}
	random := func() Command {
		switch r.IntN(12) {
		case 0, 1, 2:
			return Command{Op: OpSet, Name: name(), Owner: value(), TTL: int64(r.IntN(3)) * 700, Flags: flagsOf[r.IntN(len(flagsOf))], Match: value()}
		case 3:
			return Command{Op: OpDel, Name: name(), X: &Extra{Keys: []string{name()}}}
		case 4:
			return Command{Op: OpDel, Name: name(), Match: value(), Flags: []Flags{FlagIfEq, FlagIfNe, FlagIfEq | FlagInt}[r.IntN(3)]}
		case 5:
			return Command{Op: OpExpire, Name: name(), TTL: int64(r.IntN(2000)), Flags: []Flags{0, FlagNX, FlagXX, FlagGT, FlagLT, FlagExpireNow}[r.IntN(6)]}
		case 6:
			return Command{Op: OpPersist, Name: name()}
		case 7:
			return Command{Op: OpLock, Name: name(), Owner: value(), TTL: int64(r.IntN(2)) * 900}
		case 8:
			return Command{Op: OpLockWait, Name: name(), Owner: value(), TTL: 300, Wait: int64(1 + r.IntN(1500))}
		case 9:
			return Command{Op: OpUnlock, Name: name(), Owner: value()}
		case 10:
			return Command{Op: OpTx, X: &Extra{Checks: []Check{{Name: name(), Version: uint64(r.IntN(8))}},
				Sub: []Command{{Op: OpSet, Name: name(), Owner: value()}, {Op: OpGet, Name: name()}}}}
		}
		return Command{Op: OpEffects, X: &Extra{Checks: []Check{{Name: name(), Version: uint64(r.IntN(8))}},
			Sub: []Command{{Op: OpDel, Name: name()}}, Reply: one, Script: fmt.Sprint("return ", r.IntN(3))}}
	}
	var log []entry
	var stamp int64
	id := uint64(0)
	for range n {
		stamp += int64(r.IntN(400))
		var cmds []Command
		for range 1 + r.IntN(4) {
			id++
			c := random()
			c.ID = id
			cmds = append(cmds, c)
		}
		log = append(log, entry{term: 1, batch: Batch{Term: 1, Stamp: stamp, Wall: stamp, Cmds: cmds}})
	}
	return log
}

func sameResults(a, b []Result) bool {
	return slices.EqualFunc(a, b, func(x, y Result) bool {
		return x.ID == y.ID && x.Value == y.Value && reflect.DeepEqual(x.Reply, y.Reply)
	})
}

// Tables that apply the same key-space log end identical, also one restored
// from a snapshot midway, and their replies agree.
func TestKeySpaceIsDeterministic(t *testing.T) {
	for seed := range uint64(20) {
		log := randomKeySpaceLog(rand.New(rand.NewPCG(seed, 11)), 400)
		a, b, c := NewTable(), NewTable(), NewTable()
		for i, e := range log {
			ra := a.Apply(e.term, &e.batch, nil)
			rb := b.Apply(e.term, &e.batch, nil)
			if !sameResults(ra, rb) {
				t.Fatalf("seed %d entry %d: results differ: %v vs %v", seed, i, ra, rb)
			}
			if i == len(log)/2 {
				if err := c.Restore(a.Snapshot()); err != nil {
					t.Fatal(err)
				}
			} else if i > len(log)/2 {
				if rc := c.Apply(e.term, &e.batch, nil); !sameResults(ra, rc) {
					t.Fatalf("seed %d entry %d: the restored table's results differ", seed, i)
				}
			}
			checkInvariants(t, a)
		}
		if sa, sc := a.Snapshot(), c.Snapshot(); string(sa) != string(sc) || string(sa) != string(b.Snapshot()) {
			t.Fatalf("seed %d: snapshots differ", seed)
		}
	}
}

// A script's commands on a scratch table loaded from the real one reply
// and change the keys as the same commands on the real table would.
func TestScratchRunsCommandsAsTheTableDoes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 300 {
		real := NewTable()
		for _, e := range randomKeySpaceLog(r, 20) {
			real.Apply(e.term, &e.batch, nil)
		}
		s := real.Scratch()
		var cmds []Command
		for _, e := range randomKeySpaceLog(r, 3) {
			for _, c := range e.batch.Cmds {
				if c.Op != OpTx && c.Op != OpEffects && c.Op != OpLockWait {
					c.ID = 0
					c.X = nil
					cmds = append(cmds, c)
				}
			}
		}
		var got []resp.Value
		for _, c := range cmds {
			real.Load(s, c.Name)
			got = append(got, s.Do(&c))
		}
		want := real.Apply(real.term, &Batch{Term: real.term, Stamp: real.stamp, Wall: real.wall, Cmds: []Command{{Op: OpTx, ID: 1 << 40, X: &Extra{Sub: cmds}}}}, nil)
		if !reflect.DeepEqual(resp.ArrayValue(got...), *want[0].Reply) {
			t.Fatalf("round %d: scratch replies %v, table's %v", round, got, *want[0].Reply)
		}
		for _, c := range cmds {
			ri, rok := real.Get(c.Name)
			si, sok := s.Get(c.Name)
			ri.Version, si.Version = 0, 0
			if rok != sok || ri != si {
				t.Fatalf("round %d: %q is %+v, %v on the table and %+v, %v on the scratch table", round, c.Name, ri, rok, si, sok)
			}
		}
	}
}

func TestScanReturnsEveryKeyHeldThroughout(t *testing.T) {
	k := newKS(t)
	for i := range 500 {
		k.one(set(fmt.Sprint("key:", i), "v", 0, 0))
	}
	seen := map[string]int{}
	cursor, pages := uint64(0), 0
	for {
		names, next := k.Scan(cursor, 37, func(n string) bool { return strings.HasPrefix(n, "key:") })
		for _, n := range names {
			seen[n]++
		}
		// Keys come and go during the scan.
		k.one(set(fmt.Sprint("new:", pages), "v", 0, 0))
		k.one(del(fmt.Sprint("key:", 400+pages)))
		pages++
		if next == 0 {
			break
		}
		cursor = next
	}
	for i := range 400 {
		if seen[fmt.Sprint("key:", i)] == 0 {
			t.Fatalf("key:%d, held throughout, was not returned", i)
		}
	}
	if pages < 500/37 {
		t.Fatalf("%d pages of 37 for 500 keys", pages)
	}
	if got := len(k.Keys(func(n string) bool { return strings.HasPrefix(n, "new:") })); got != pages {
		t.Fatalf("Keys found %d new keys; want %d", got, pages)
	}
}
