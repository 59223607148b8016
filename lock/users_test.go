package lock

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/lockd/lockd/acl"
	"github.com/lockd/lockd/resp"
)

func setUserCmd(id uint64, name, base string, rules ...string) Command {
	return Command{Op: OpACLSetUser, ID: id, Name: name, Owner: base, X: &Extra{Args: rules}}
}

func delUserCmd(id uint64, names ...string) Command {
	return Command{Op: OpACLDelUser, ID: id, Name: names[0], X: &Extra{Args: names[1:]}}
}

// applyOne applies c in its own batch and returns its reply.
func applyOne(tb testing.TB, tab *Table, c Command) resp.Value {
	tb.Helper()
	term, stamp, _ := tab.Clock()
	rs := tab.Apply(max(term, 1), &Batch{Term: max(term, 1), Stamp: stamp + 1, Cmds: []Command{c}}, nil)
	if len(rs) != 1 || rs[0].Reply == nil {
		tb.Fatalf("%v: results %+v", c.Op, rs)
	}
	return *rs[0].Reply
}

func describeUsers(tab *Table) string {
	var lines []string
	users := tab.Users()
	for _, name := range users.Names() {
		u, _ := users.Get(name)
		lines = append(lines, acl.Describe(u))
	}
	return strings.Join(lines, "\n")
}

func TestUsersAreAppliedAsRedis(t *testing.T) {
	h := acl.HashPassword("pw")
	for _, tc := range []struct {
		name  string
		cmds  []Command
		reply string // of the last command
		users string // every user, described
	}{
		{"a new user", []Command{setUserCmd(1, "alice", "", "on", "#"+h, "~orders:*", "+@lock")},
			"OK", "user alice on #" + h + " ~orders:* &* -@all +@lock"},
		{"rules add to the user", []Command{setUserCmd(1, "alice", "", "on"), setUserCmd(2, "alice", "", "+get")},
			"OK", "user alice on &* -@all +get"},
		{"a refused rule changes nothing", []Command{setUserCmd(1, "alice", "", "on"), setUserCmd(2, "alice", "", "off", "%X~a")},
			"(error) ERR Error in ACL SETUSER modifier '%X~a': Syntax error", "user alice on &* -@all"},
		{"a clear password is refused", []Command{setUserCmd(1, "alice", "", ">pw")},
			"(error) ERR a clear password may not enter the log", ""},
		{"a clear password in the default's base is refused", []Command{setUserCmd(1, "default", "on >pw ~* +@all")},
			"(error) ERR a clear password may not enter the log", ""},
		{"an invalid name is refused", []Command{setUserCmd(1, "a b", "")},
			"(error) ERR Usernames can't contain spaces or null characters", ""},
		{"the default user starts on, nopass, allkeys, allcommands", []Command{setUserCmd(1, "default", "", "-lock")},
			"OK", "user default on nopass ~* &* +@all -lock"},
		{"or from the proposer's default", []Command{setUserCmd(1, "default", "on #"+h+" ~* +@all", "-lock")},
			"OK", "user default on #" + h + " ~* &* +@all -lock"},
		{"a set default ignores the proposer's", []Command{setUserCmd(1, "default", "", "-lock"), setUserCmd(2, "default", "on #"+h+" ~* +@all", "-get")},
			"OK", "user default on nopass ~* &* +@all -lock -get"},
		{"a new user from a node that knows channels gets its channel rule", []Command{setUserCmd(1, "bob", "resetchannels", "on", "&orders:*")},
			"OK", "user bob on resetchannels &orders:* -@all"},
		{"the channel rule is for a new user only", []Command{setUserCmd(1, "bob", "resetchannels", "&a"), setUserCmd(2, "bob", "resetchannels", "&b")},
			"OK", "user bob off resetchannels &a &b -@all"},
		{"an entry older than channel rules made a user with every channel", []Command{setUserCmd(1, "old", "", "on")},
			"OK", "user old on &* -@all"},
		{"DELUSER counts the users deleted", []Command{setUserCmd(1, "a", ""), setUserCmd(2, "b", ""), delUserCmd(3, "a", "b", "c")},
			"(integer) 2", ""},
		{"DELUSER default deletes nothing", []Command{setUserCmd(1, "a", ""), delUserCmd(2, "a", "default")},
			"(error) ERR The 'default' user cannot be removed", "user a off &* -@all"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := NewTable()
			var last resp.Value
			for _, c := range tc.cmds {
				last = applyOne(t, tab, c)
			}
			if got := last.String(); got != tc.reply {
				t.Errorf("reply %q, want %q", got, tc.reply)
			}
			if got := describeUsers(tab); got != tc.users {
				t.Errorf("users:\n%s\nwant:\n%s", got, tc.users)
			}
		})
	}
}

func TestUsersLimit(t *testing.T) {
	tab := NewTable()
	for i := range acl.MaxUsers - 1 { // and the default user
		if r := applyOne(t, tab, setUserCmd(uint64(i+1), "u"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "")); r.IsError() {
			t.Fatalf("user %d: %v", i, r.Str)
		}
	}
	if r := applyOne(t, tab, setUserCmd(5000, "onemore", "")); !r.IsError() {
		t.Fatal("a user past MaxUsers was made")
	}
	if r := applyOne(t, tab, setUserCmd(5001, "default", "", "-lock")); r.IsError() {
		t.Fatalf("the default user, which counts already: %v", r.Str)
	}
}

// TestUsersSurviveSnapshots: users are in the snapshot (version 4), in
// name order; a table without users writes version 3, as a node before
// users did, and a version 3 snapshot loads with no users.
func TestUsersSurviveSnapshots(t *testing.T) {
	tab := populated(t)
	applyOne(t, tab, setUserCmd(100, "zed", "", "on", "#"+acl.HashPassword("x"), "%R~a*"))
	applyOne(t, tab, setUserCmd(101, "alice", "", "on", "nopass", "+@read"))
	snap := tab.Snapshot()
	if bytes.Contains(snap, []byte(">x")) {
		t.Fatal("the snapshot holds a clear password")
	}
	restored := NewTable()
	changed := restored.UsersChanged()
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Restore did not signal a change of users")
	}
	if got, want := describeUsers(restored), describeUsers(tab); got != want || !strings.HasPrefix(got, "user alice") {
		t.Fatalf("restored users:\n%s\nwant:\n%s", got, want)
	}
	if again := restored.Snapshot(); !bytes.Equal(again, snap) {
		t.Fatal("the restored table's snapshot differs")
	}

	if snap[0] != 4 {
		t.Fatalf("a table with users wrote snapshot version %d, want 4", snap[0])
	}

	// A table without users writes version 3, as before users, which
	// restores to no users.
	v3 := populated(t).Snapshot()
	if v3[0] != 3 {
		t.Fatalf("a table without users wrote snapshot version %d, want 3", v3[0])
	}
	old := NewTable()
	applyOne(t, old, setUserCmd(1, "stale", ""))
	if err := old.Restore(v3); err != nil {
		t.Fatalf("a version 3 snapshot: %v", err)
	}
	if old.Users().Len() != 0 || !bytes.Equal(old.Snapshot(), v3) {
		t.Fatal("a version 3 snapshot did not load as the same state without users")
	}
}

func TestUsersChangedSignals(t *testing.T) {
	tab := NewTable()
	ch := tab.UsersChanged()
	tab.Apply(1, &Batch{Term: 1, Cmds: []Command{lockCmd(1, "a", "x", 0)}}, nil)
	select {
	case <-ch:
		t.Fatal("a lock signalled a change of users")
	default:
	}
	applyOne(t, tab, setUserCmd(2, "a", ""))
	select {
	case <-ch:
	default:
		t.Fatal("SETUSER did not signal")
	}
}

// A snapshot written before channel rules names none for its users, who
// had every channel then: they keep every channel.
func TestUsersFromBeforeChannelRulesKeepEveryChannel(t *testing.T) {
	b := binary.AppendUvarint(nil, 1)
	b = appendString(b, "old")
	b = appendStrings(b, []string{"on", "~*", "-@all", "+publish"})
	d := decoder{b: b}
	users := d.users()
	if d.err != nil {
		t.Fatal(d.err)
	}
	u, _ := users.Get("old")
	if got, want := acl.Describe(u), "user old on ~* &* -@all +publish"; got != want {
		t.Fatalf("restored %q, want %q", got, want)
	}
	// And what this build writes reads back as it was.
	again := decoder{b: appendUsers(nil, users.With(mustApply(t, "new", "resetchannels &a")))}
	got := again.users()
	if n, _ := got.Get("new"); acl.Describe(n) != "user new off resetchannels &a -@all" {
		t.Fatalf("round trip: %q", acl.Describe(n))
	}
}

func mustApply(t testing.TB, name, rules string) *acl.User {
	t.Helper()
	u, err := acl.Apply(&acl.User{Name: name}, strings.Fields(rules), nil)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
