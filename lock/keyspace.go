package lock

import (
	"encoding/binary"
	"hash/fnv"

	"github.com/lockd/lockd/resp"
)

// The key space. A key is a lock: its value is the owner, its TTL the lease.
// Key-space commands follow Redis's semantics for string keys, and change
// the same locks that LOCK, UNLOCK and RENEW do: a command that gives a key
// a new owner (SET of another value, a grant to a waiter) raises the fencing
// counter; one that ends a hold (DEL, an expiry) hands the lock to the first
// waiter. Every change gives the key a new version, which WATCH and scripts
// check (see Check).

// treeKey is the order of the lock tree: FNV-1a 64 of the name, big-endian,
// then the name. SCAN's cursor is the hash, so a cursor survives any change
// to the table. Snapshots list locks in this order: never change it.
func treeKey(name string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h.Sum64())
	return string(b[:]) + name
}

// keyHash is the hash part of a tree key.
func keyHash(key string) uint64 { return binary.BigEndian.Uint64([]byte(key[:8])) }

// execKey executes a key-space command and returns its reply; retry is true
// for an OpEffects whose checks failed.
func (t *Table) execKey(c *Command) (v resp.Value, retry bool) {
	switch c.Op {
	case OpSet:
		return t.set(c), false
	case OpDel:
		return t.del(c), false
	case OpExpire:
		return t.pexpire(c), false
	case OpPersist:
		h, ok := t.byName[c.Name]
		if !ok || h.deadline == 0 {
			return resp.IntValue(0), false
		}
		t.setLease(c.Name, h, 0)
		t.note(EventPersist, c.Name)
		return resp.IntValue(1), false
	case OpTx:
		if !t.checksHold(c.X) {
			return resp.NilValue(), false
		}
		return resp.ArrayValue(t.doAll(c.X)...), false
	case OpEffects:
		if !t.checksHold(c.X) {
			return resp.Value{}, true
		}
		t.doAll(c.X)
		if c.X != nil && c.X.Script != "" {
			t.scripts.add(c.X.Script)
		}
		if c.X == nil {
			return resp.NilValue(), false
		}
		return c.X.Reply, false
	case OpScriptLoad:
		if c.X == nil {
			return resp.ErrorValue("ERR no script"), false
		}
		return resp.BulkValue(t.scripts.add(c.X.Script)), false
	case OpScriptFlush:
		t.scripts = newScriptRegistry()
		return resp.OK(), false
	case OpScript:
		return resp.ErrorValue("ERR a script request cannot be applied"), false
	case OpPublish:
		if t.notify {
			t.events = append(t.events, Event{Kind: EventPublish, Name: c.Name, Payload: c.Owner})
		}
		return resp.IntValue(0), false
	case OpACLSetUser:
		return t.setUser(c), false
	case OpACLDelUser:
		return t.delUsers(c), false
	}
	return t.read(c), false
}

// do executes one command of a transaction or a script and returns its
// reply. Lock commands answer as LOCK, UNLOCK and RENEW do; a LOCK ... WAIT
// does not wait (as Redis's blocking commands inside MULTI).
func (t *Table) do(c *Command) resp.Value {
	switch {
	case c.Op == OpLock || c.Op == OpLockWait:
		l := *c
		l.Op = OpLock
		if v := t.exec(&l); v > 0 {
			return resp.IntValue(v)
		}
		return resp.NilValue()
	case c.Op == OpUnlock || c.Op == OpRenew:
		return resp.IntValue(t.exec(c))
	case c.Op.sharedOp():
		return t.doShared(c)
	case c.Op.keySpace() && c.Op != OpTx && c.Op != OpEffects && c.Op != OpScript && c.Op != OpACLSetUser && c.Op != OpACLDelUser:
		v, _ := t.execKey(c)
		return v
	}
	return resp.Errorf("ERR %s is not allowed here", c.Op)
}

func (t *Table) doAll(x *Extra) []resp.Value {
	if x == nil || len(x.Sub) == 0 {
		return nil
	}
	vs := make([]resp.Value, len(x.Sub))
	for i := range x.Sub {
		vs[i] = t.do(&x.Sub[i])
	}
	return vs
}

// checksHold reports whether every key checked still has the version seen.
func (t *Table) checksHold(x *Extra) bool {
	if x == nil {
		return true
	}
	for _, k := range x.Checks {
		if t.versionOf(k.Name) != k.Version {
			return false
		}
	}
	return true
}

// versionOf is name's version, 0 when it is not held.
func (t *Table) versionOf(name string) uint64 {
	if h, ok := t.byName[name]; ok {
		return h.version
	}
	return 0
}

// set is SET: NX, XX, IFEQ and IFNE decide whether it sets; GET replies
// the old value (null when there was none) whether or not it set, else the
// reply is OK or null (1 or 0 with FlagInt, for SETNX). Setting gives the
// key the value as its owner (a new token when the owner changes) and the
// lease of TTL ms (or until At), none, or the one it had (KeepTTL). A
// deadline already past ends the key's hold at once instead.
func (t *Table) set(c *Command) resp.Value {
	ttl, past := t.ttlOf(c)
	h, exists := t.byName[c.Name]
	old := resp.NilValue()
	if exists {
		old = resp.BulkValue(h.owner)
	}
	ok := true
	switch {
	case c.Flags&FlagNX != 0 && exists, c.Flags&FlagXX != 0 && !exists:
		ok = false
	case c.Flags&FlagIfEq != 0 && (!exists || h.owner != c.Match):
		ok = false
	case c.Flags&FlagIfNe != 0 && exists && h.owner == c.Match:
		ok = false
	}
	if ok {
		switch {
		case past:
			if exists {
				t.note(EventDel, c.Name)
				t.release(c.Name, h)
			}
		case !exists:
			t.note(EventSet, c.Name)
			t.grant(c.Name, c.Owner, ttl)
		default:
			t.note(EventSet, c.Name)
			h = t.changed(c.Name, h)
			if h.owner != c.Owner {
				t.fence++
				t.stats.Hold.observeSince(h.since, t.now)
				t.stats.Grants++
				h.owner, h.token, h.since = c.Owner, t.fence, t.now
			}
			if c.Flags&FlagKeepTTL == 0 {
				t.setLease(c.Name, h, ttl)
			}
		}
	}
	switch {
	case c.Flags&FlagGet != 0:
		return old
	case c.Flags&FlagInt != 0 && ok:
		return resp.IntValue(1)
	case c.Flags&FlagInt != 0:
		return resp.IntValue(0)
	case ok:
		return resp.OK()
	}
	return resp.NilValue()
}

// del is DEL (Name and X.Keys; the number of keys that existed), or with
// IfEq/IfNe, DELEX and DELIFEQ on Name: 1 when it matched and was deleted,
// else 0 (-1 for a key that does not exist, with FlagInt: go-redsync's
// release). Deleting a lock hands it to its first waiter.
func (t *Table) del(c *Command) resp.Value {
	if c.Flags&(FlagIfEq|FlagIfNe) != 0 {
		h, ok := t.byName[c.Name]
		switch {
		case !ok && c.Flags&FlagInt != 0:
			return resp.IntValue(-1)
		case !ok, c.Flags&FlagIfEq != 0 && h.owner != c.Match, c.Flags&FlagIfNe != 0 && h.owner == c.Match:
			return resp.IntValue(0)
		}
		t.note(EventDel, c.Name)
		t.release(c.Name, h)
		return resp.IntValue(1)
	}
	n := int64(0)
	for _, name := range c.names() {
		if h, ok := t.byName[name]; ok {
			t.note(EventDel, name)
			t.release(name, h)
			n++
		}
	}
	return resp.IntValue(n)
}

// names returns Name and X.Keys.
func (c *Command) names() []string {
	if c.X == nil || len(c.X.Keys) == 0 {
		return []string{c.Name}
	}
	return append([]string{c.Name}, c.X.Keys...)
}

// pexpire is PEXPIRE: it gives an existing key a lease of TTL ms from now
// (ExpireNow: a deadline already past, which deletes it) and replies 1, or
// 0 when the key does not exist or a condition fails: NX (it has no lease),
// XX (it has one), GT (later than its deadline; no lease counts as
// infinite), LT (earlier), IfEq (its value is Match).
func (t *Table) pexpire(c *Command) resp.Value {
	h, ok := t.byName[c.Name]
	if !ok || (c.Flags&FlagIfEq != 0 && h.owner != c.Match) {
		return resp.IntValue(0)
	}
	ttl, past := t.ttlOf(c)
	deadline := t.now - 1
	if !past {
		deadline = addSat(t.now, uint64(ttl))
	}
	switch {
	case c.Flags&FlagNX != 0 && h.deadline != 0,
		c.Flags&FlagXX != 0 && h.deadline == 0,
		c.Flags&FlagGT != 0 && (h.deadline == 0 || deadline <= h.deadline),
		c.Flags&FlagLT != 0 && h.deadline != 0 && deadline >= h.deadline:
		return resp.IntValue(0)
	}
	if past {
		t.note(EventDel, c.Name)
		t.release(c.Name, h)
		return resp.IntValue(1)
	}
	t.setLease(c.Name, t.changed(c.Name, h), ttl)
	t.note(EventExpire, c.Name)
	return resp.IntValue(1)
}

// ttlOf is the lease c asks for, in ms from now, or past when its deadline
// has passed already (ExpireNow, a PEXPIRE of 0, an At before the batch's
// wall clock). An At deadline is turned into ms with the batch's Wall, the
// leader's clock when it proposed the command.
func (t *Table) ttlOf(c *Command) (ttl int64, past bool) {
	switch {
	case c.Flags&FlagExpireNow != 0:
		return 0, true
	case c.At != 0:
		ttl = c.At - t.wall
		return ttl, ttl <= 0
	case c.Op == OpExpire:
		return c.TTL, c.TTL <= 0
	}
	return c.TTL, false
}

// read answers the read commands, which change nothing.
func (t *Table) read(c *Command) resp.Value { return t.readAt(c, t.now, t.wall) }

// readAt is read with the clock at now and the wall clock at wall.
func (t *Table) readAt(c *Command, now, wall int64) resp.Value {
	h, ok := t.byName[c.Name]
	switch c.Op {
	case OpGet:
		if !ok {
			return resp.NilValue()
		}
		return resp.BulkValue(h.owner)
	case OpExists:
		n := int64(0)
		for _, name := range c.names() {
			if _, ok := t.byName[name]; ok {
				n++
			}
		}
		return resp.IntValue(n)
	case OpType:
		if !ok {
			return resp.StatusValue("none")
		}
		return resp.StatusValue("string")
	case OpPTTL, OpExpireAt:
		switch {
		case !ok:
			return resp.IntValue(-2)
		case h.deadline == 0:
			return resp.IntValue(-1)
		}
		ms := max(h.deadline-now, 0)
		if c.Op == OpExpireAt {
			ms += wall
		}
		if c.Flags&FlagSeconds != 0 {
			if c.Op == OpExpireAt {
				return resp.IntValue(ms / 1000)
			}
			return resp.IntValue((ms + 500) / 1000)
		}
		return resp.IntValue(ms)
	case OpLockInfo:
		if !ok {
			return resp.NilValue()
		}
		ttl := int64(-1)
		if h.deadline != 0 {
			ttl = max(h.deadline-now, 0)
		}
		return resp.ArrayValue(resp.BulkValue(h.owner), resp.IntValue(int64(h.token)), resp.IntValue(ttl))
	}
	return resp.Errorf("ERR %s is not a key-space command", c.Op)
}

// Read answers a read command (OpGet, OpExists, OpPTTL, OpType,
// OpExpireAt, OpLockInfo) from the table as it is, elapsedMS after its last
// apply: leases count down by it between entries, and absolute times are
// the last entry's wall clock plus it. It changes nothing.
func (t *Table) Read(c *Command, elapsedMS int64) resp.Value {
	switch c.Op {
	case OpGet, OpExists, OpPTTL, OpType, OpExpireAt, OpLockInfo:
	default:
		return resp.Errorf("ERR %s is not a read", c.Op)
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	elapsedMS = max(elapsedMS, 0)
	return t.readAt(c, addSat(t.now, uint64(elapsedMS)), t.wall+elapsedMS)
}
