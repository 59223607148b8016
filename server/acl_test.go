package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockd/lockd/acl"
	"github.com/lockd/lockd/lock"
	"github.com/redis/go-redis/v9"
)

// aclServer starts a node with the users of the ACL recipes in
// docs/security.md, each with the password "pw", and returns it and a
// connection as the default user (which is unrestricted).
func aclServer(t testing.TB, opts ...func(*Config)) (*Server, *rawConn) {
	t.Helper()
	srv := startServer(t, opts...)
	admin := dial(t, srv)
	if srv.cfg.Password != "" {
		admin.expect("+OK\r\n", "AUTH", srv.cfg.Password)
	}
	for _, rules := range [][]string{
		{"locker", "on", ">pw", "~orders:*", "-@all", "+@lock", "+ping"},
		{"monitor", "on", ">pw", "%R~*", "-@all", "+@read", "+ping", "+info", "+acl|whoami"},
		{"admin", "on", ">pw", "~*", "+@all"},
		{"writer", "on", ">pw", "%W~*", "+@all", "-@admin"},
		{"scripter", "on", ">pw", "~orders:*", "+@all", "-@admin"},
		{"disabled", "off", ">pw", "~*", "+@all"},
	} {
		admin.expect("+OK\r\n", append([]string{"ACL", "SETUSER"}, rules...)...)
	}
	return srv, admin
}

// as dials srv and authenticates as user with password "pw".
func as(t testing.TB, srv *Server, user string) *rawConn {
	t.Helper()
	rc := dial(t, srv)
	rc.expect("+OK\r\n", "AUTH", user, "pw")
	return rc
}

func noPermCmd(user, cmd string) string {
	return "-NOPERM User " + user + " has no permissions to run the '" + cmd + "' command\r\n"
}

const noPermKey = "-NOPERM No permissions to access a key\r\n"

// TestACLPermissionMatrix: each user, each command, each key pattern. A
// denied command answers Redis's -NOPERM and changes nothing; an allowed
// one runs.
func TestACLPermissionMatrix(t *testing.T) {
	srv, admin := aclServer(t)
	admin.expect("+OK\r\n", "SET", "orders:1", "o1")
	admin.expect("+OK\r\n", "SET", "users:1", "u1")
	conns := map[string]*rawConn{}
	for _, u := range []string{"locker", "monitor", "admin", "writer", "scripter"} {
		conns[u] = as(t, srv, u)
	}
	const ok = "" // the command runs: any reply but -NOPERM
	for _, tc := range []struct {
		user string
		args []string
		want string
	}{
		// A service that may lock only orders:*.
		{"locker", []string{"LOCK", "orders:2", "svc", "PX", "10000"}, ok},
		{"locker", []string{"LOCK", "users:2", "svc"}, noPermKey},
		{"locker", []string{"UNLOCK", "orders:2", "svc"}, ok},
		{"locker", []string{"UNLOCK", "users:1", "u1"}, noPermKey},
		{"locker", []string{"RENEW", "orders:1", "o1", "PX", "1000"}, ok},
		{"locker", []string{"OWNER", "orders:1"}, ok},
		{"locker", []string{"LOCKINFO", "users:1"}, noPermKey},
		{"locker", []string{"GET", "orders:1"}, noPermCmd("locker", "get")},
		{"locker", []string{"SET", "orders:3", "x"}, noPermCmd("locker", "set")},
		{"locker", []string{"DEL", "users:1"}, noPermCmd("locker", "del")},
		{"locker", []string{"PING"}, "+PONG\r\n"},
		{"locker", []string{"ACL", "WHOAMI"}, noPermCmd("locker", "acl|whoami")},
		{"locker", []string{"EVAL", "return 1", "0"}, noPermCmd("locker", "eval")},
		// A read-only monitor.
		{"monitor", []string{"GET", "users:1"}, "$2\r\nu1\r\n"},
		{"monitor", []string{"OWNER", "orders:1"}, ok},
		{"monitor", []string{"MGET", "orders:1", "users:1"}, ok},
		{"monitor", []string{"EXISTS", "users:1"}, ":1\r\n"},
		{"monitor", []string{"TTL", "users:1"}, ":-1\r\n"},
		{"monitor", []string{"SCAN", "0"}, ok},
		{"monitor", []string{"INFO"}, ok},
		{"monitor", []string{"DBSIZE"}, ok},
		{"monitor", []string{"CLIENT", "LIST"}, noPermCmd("monitor", "client|list")},
		{"monitor", []string{"SET", "users:1", "x"}, noPermCmd("monitor", "set")},
		{"monitor", []string{"LOCK", "users:9", "m"}, noPermCmd("monitor", "lock")},
		{"monitor", []string{"DEL", "users:1"}, noPermCmd("monitor", "del")},
		{"monitor", []string{"ACL", "WHOAMI"}, "$7\r\nmonitor\r\n"},
		{"monitor", []string{"ACL", "LIST"}, noPermCmd("monitor", "acl|list")},
		// Write without read: %W~*.
		{"writer", []string{"SET", "w:1", "x"}, "+OK\r\n"},
		{"writer", []string{"SET", "w:1", "y", "GET"}, noPermKey},
		{"writer", []string{"GET", "w:1"}, noPermKey},
		{"writer", []string{"EXISTS", "w:1"}, ":1\r\n"}, // any pattern will do, as in Redis
		{"writer", []string{"DEL", "w:1"}, ":1\r\n"},
		{"writer", []string{"ACL", "SETUSER", "x"}, noPermCmd("writer", "acl|setuser")},
		{"writer", []string{"CLIENT", "LIST"}, noPermCmd("writer", "client|list")},
		{"writer", []string{"ACL", "WHOAMI"}, "$6\r\nwriter\r\n"}, // not @admin
		// Every key of a multi-key command must be allowed.
		{"scripter", []string{"DEL", "orders:9", "users:1"}, noPermKey},
		{"scripter", []string{"EXISTS", "orders:1", "users:1"}, noPermKey},
		{"scripter", []string{"WATCH", "users:1"}, noPermKey},
		{"scripter", []string{"EVAL", "return 1", "1", "users:1"}, noPermKey},
		{"scripter", []string{"EVAL", "return 1", "1", "orders:1"}, ":1\r\n"},
		{"monitor", []string{"EVAL_RO", "return 1", "1", "users:1"}, noPermCmd("monitor", "eval_ro")},
		// Pub/sub is @pubsub; cluster administration @admin.
		{"locker", []string{"SUBSCRIBE", "news"}, noPermCmd("locker", "subscribe")},
		{"monitor", []string{"PUBLISH", "news", "x"}, noPermCmd("monitor", "publish")},
		{"writer", []string{"PUBLISH", "news", "x"}, ":0\r\n"},
		{"writer", []string{"LEADER", "TRANSFER"}, noPermCmd("writer", "leader|transfer")},
		{"writer", []string{"BACKUP", "x"}, noPermCmd("writer", "backup")},
		// An admin may do anything.
		{"admin", []string{"ACL", "LIST"}, ok},
		{"admin", []string{"LOCK", "admin:1", "a"}, ok},
	} {
		t.Run(tc.user+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			before := admin.with(t).do("KEYS", "*")
			got := conns[tc.user].with(t).do(tc.args...)
			switch {
			case tc.want == ok && strings.HasPrefix(got, "-"):
				t.Fatalf("got %q, want it to run", got)
			case tc.want != ok && got != tc.want:
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if strings.HasPrefix(tc.want, "-NOPERM") {
				if after := admin.with(t).do("KEYS", "*"); after != before {
					t.Fatalf("a denied command changed the keys: %q, then %q", before, after)
				}
			}
		})
	}
	if got := admin.do("GET", "users:1"); got != "$2\r\nu1\r\n" {
		t.Fatalf("users:1 = %q after the denials", got)
	}
}

// TestACLInTransactions: a denied command is refused when queued (EXEC then
// aborts), and one allowed when queued but not at EXEC (the rules changed)
// answers -NOPERM in EXEC's reply, not sent, while the others run, as in
// Redis.
func TestACLInTransactions(t *testing.T) {
	srv, admin := aclServer(t)
	c := as(t, srv, "scripter")
	c.expect("+OK\r\n", "MULTI")
	c.expect("+QUEUED\r\n", "SET", "orders:1", "a")
	c.expect(noPermKey, "SET", "users:1", "a")
	c.expect("-EXECABORT Transaction discarded because of previous errors.\r\n", "EXEC")
	admin.expect("$-1\r\n", "GET", "orders:1")

	c.expect("+OK\r\n", "MULTI")
	c.expect("+QUEUED\r\n", "SET", "orders:1", "a")
	c.expect("+QUEUED\r\n", "LOCK", "orders:2", "me")
	admin.expect("+OK\r\n", "ACL", "SETUSER", "scripter", "-set")
	c.expect("*2\r\n-NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to execute the command or subcommand\r\n:1\r\n", "EXEC")
	admin.expect("$-1\r\n", "GET", "orders:1")
	admin.expect("$2\r\nme\r\n", "GET", "orders:2")

	// PUBLISH names a channel, not a key: no key pattern applies to it.
	c.expect("+OK\r\n", "MULTI")
	c.expect("+QUEUED\r\n", "PUBLISH", "news", "hi")
	c.expect("*1\r\n:0\r\n", "EXEC")

	c.expect("+OK\r\n", "MULTI")
	c.expect("+QUEUED\r\n", "DEL", "orders:2")
	admin.expect("+OK\r\n", "ACL", "SETUSER", "scripter", "resetkeys", "~x:*")
	c.expect("*1\r\n-NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to touch the specified keys\r\n", "EXEC")
	admin.expect("$2\r\nme\r\n", "GET", "orders:2")
}

// TestACLInScripts: the commands a script calls are checked against its
// caller's rules, on keys beyond its KEYS too; a denied call fails the
// script, which then changes nothing. A fast-path script runs through the
// interpreter for a user who may not run every command.
func TestACLInScripts(t *testing.T) {
	srv, admin := aclServer(t)
	c := as(t, srv, "scripter")
	got := c.do("EVAL", "redis.call('SET', KEYS[1], 'a'); return redis.call('SET', 'users:1', 'b')", "1", "orders:1")
	if !strings.HasPrefix(got, "-ERR ACL failure in script: No permissions to access a key") {
		t.Fatalf("a script touching a key outside the user's patterns: %q", got)
	}
	admin.expect("$-1\r\n", "GET", "orders:1")
	admin.expect("$-1\r\n", "GET", "users:1")

	admin.expect("+OK\r\n", "ACL", "SETUSER", "scripter", "-get")
	got = c.do("EVAL", "return redis.call('GET', KEYS[1])", "1", "orders:1")
	if !strings.HasPrefix(got, "-ERR ACL failure in script: User scripter has no permissions to run the 'get' command") {
		t.Fatalf("a script calling a denied command: %q", got)
	}
	got = c.do("EVAL_RO", "return redis.call('GET', KEYS[1])", "1", "orders:1")
	if !strings.HasPrefix(got, "-ERR ACL failure in script: User scripter has no permissions to run the 'get' command") {
		t.Fatalf("a read-only script calling a denied command: %q", got)
	}
	// The release script of Redis's docs has a fast path (GET, then DEL):
	// it must not let a user without GET through.
	admin.expect("+OK\r\n", "SET", "orders:5", "me")
	release := "if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end"
	got = c.do("EVAL", release, "1", "orders:5", "me")
	if !strings.HasPrefix(got, "-ERR ACL failure in script: User scripter has no permissions to run the 'get' command") {
		t.Fatalf("a fast-path script for a user without GET: %q", got)
	}
	admin.expect("$2\r\nme\r\n", "GET", "orders:5")
	admin.expect("+OK\r\n", "ACL", "SETUSER", "scripter", "+get")
	c.expect(":1\r\n", "EVAL", release, "1", "orders:5", "me")
}

func TestACLAuth(t *testing.T) {
	srv, _ := aclServer(t, func(c *Config) { c.Password = "secret" })
	c := dial(t, srv)
	c.expect("-NOAUTH Authentication required.\r\n", "GET", "a")
	c.expect("-WRONGPASS invalid username-password pair or user is disabled.\r\n", "AUTH", "locker", "nope")
	c.expect("-WRONGPASS invalid username-password pair or user is disabled.\r\n", "AUTH", "nosuch", "pw")
	c.expect("-WRONGPASS invalid username-password pair or user is disabled.\r\n", "AUTH", "disabled", "pw")
	c.expect("-NOAUTH Authentication required.\r\n", "GET", "a")
	c.expect("+OK\r\n", "AUTH", "monitor", "pw")
	c.expect("$7\r\nmonitor\r\n", "ACL", "WHOAMI")
	c.expect("+OK\r\n", "AUTH", "secret") // the default user, by --requirepass
	c.expect("$7\r\ndefault\r\n", "ACL", "WHOAMI")

	h := dial(t, srv)
	if v := h.value("HELLO", "3", "AUTH", "locker", "pw"); v == nil {
		t.Fatal("HELLO 3 AUTH locker pw failed")
	}
	if got := h.do("LOCK", "users:1", "x"); got != noPermKey {
		t.Fatalf("after HELLO AUTH as locker: %q", got)
	}

	rdb := newRedis(t, srv, func(o *redis.Options) { o.Username, o.Password = "locker", "pw" })
	ctx := context.Background()
	if n, err := rdb.Do(ctx, "LOCK", "orders:7", "me").Int64(); err != nil || n <= 0 {
		t.Fatalf("go-redis as locker: LOCK = %d, %v", n, err)
	}
	if err := rdb.Get(ctx, "orders:7").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Fatalf("go-redis as locker: GET = %v, want NOPERM", err)
	}
}

// TestACLDefaultUserAndRequirepass: until an ACL SETUSER default, the
// default user is the node's own (--requirepass its password); the first
// one starts from it, so the password stays.
func TestACLDefaultUserAndRequirepass(t *testing.T) {
	srv, admin := aclServer(t, func(c *Config) { c.Password = "secret" })
	h := acl.HashPassword("secret")
	defaultLine := func() any {
		for _, l := range admin.value("ACL", "LIST").([]any) {
			if strings.HasPrefix(l.(string), "user default ") {
				return l
			}
		}
		return nil
	}
	if l := defaultLine(); l != "user default on #"+h+" ~* +@all" {
		t.Fatalf("ACL LIST's default user before SETUSER: %q", l)
	}
	admin.expect("+OK\r\n", "ACL", "SETUSER", "default", "-keys")
	if l := defaultLine(); l != "user default on #"+h+" ~* +@all -keys" {
		t.Fatalf("ACL LIST's default user: %q", l)
	}
	c := dial(t, srv)
	c.expect("+OK\r\n", "AUTH", "default", "secret")
	c.expect(noPermCmd("default", "keys"), "KEYS", "*")
}

func TestACLCommands(t *testing.T) {
	srv, admin := aclServer(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a syntax error", []string{"ACL", "SETUSER", "a", "on", "bogus"}, "-ERR Error in ACL SETUSER modifier 'bogus': Syntax error\r\n"},
		{"an unknown command", []string{"ACL", "SETUSER", "a", "+nosuch"}, "-ERR Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL\r\n"},
		{"a name with a space", []string{"ACL", "SETUSER", "a b"}, "-ERR Usernames can't contain spaces or null characters\r\n"},
		{"DELUSER default", []string{"ACL", "DELUSER", "default"}, "-ERR The 'default' user cannot be removed\r\n"},
		{"DELUSER counts", []string{"ACL", "DELUSER", "nosuch", "disabled"}, ":1\r\n"},
		{"GETUSER of none", []string{"ACL", "GETUSER", "nosuch"}, "$-1\r\n"},
		{"USERS", []string{"ACL", "USERS"}, "*6\r\n" + bulk("admin") + bulk("default") + bulk("locker") + bulk("monitor") + bulk("scripter") + bulk("writer")},
		{"CAT lock", []string{"ACL", "CAT", "lock"}, "*13\r\n" + bulk("lock") + bulk("lockinfo") + bulk("owner") + bulk("renew") + bulk("rwinfo") +
			bulk("rwlock") + bulk("rwrenew") + bulk("rwunlock") + bulk("seminfo") + bulk("semlock") + bulk("semrenew") + bulk("semunlock") + bulk("unlock")},
		{"CAT of none", []string{"ACL", "CAT", "nosuch"}, "-ERR Unknown category 'nosuch'\r\n"},
		{"LOG is left out", []string{"ACL", "LOG"}, "-ERR ACL LOG is not supported by lockd: users are cluster state (see docs/security.md)\r\n"},
		{"unknown subcommand", []string{"ACL", "FOO"}, "-ERR unknown subcommand 'FOO'. Try ACL HELP.\r\n"},
		{"SETUSER without a name", []string{"ACL", "SETUSER"}, "-ERR wrong number of arguments for 'acl|setuser' command\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) { admin.with(t).expect(tc.want, tc.args...) })
	}
	admin.expect("*12\r\n"+bulk("keyspace")+bulk("read")+bulk("write")+bulk("pubsub")+bulk("admin")+bulk("fast")+bulk("slow")+
		bulk("dangerous")+bulk("connection")+bulk("transaction")+bulk("scripting")+bulk("lock"), "ACL", "CAT")
	h := acl.HashPassword("pw")
	admin.expect("*12\r\n"+bulk("flags")+"*1\r\n"+bulk("on")+bulk("passwords")+"*1\r\n"+bulk(h)+
		bulk("commands")+bulk("-@all +@lock +ping")+bulk("keys")+bulk("~orders:*")+bulk("channels")+bulk("")+
		bulk("selectors")+"*0\r\n", "ACL", "GETUSER", "locker")
	// A SETUSER with one bad rule applies none.
	admin.expect("-ERR Error in ACL SETUSER modifier 'bogus': Syntax error\r\n", "ACL", "SETUSER", "a", "on", "+get", "bogus")
	admin.expect("$-1\r\n", "ACL", "GETUSER", "a")
	_ = srv
}

// TestACLNoClearPasswordOnDisk: the raft log and the snapshots hold
// password hashes, never a password.
func TestACLNoClearPasswordOnDisk(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, func(c *Config) { c.Node.DataDir = dir; c.Node.SnapshotEntries = 8 })
	admin := dial(t, srv)
	admin.expect("+OK\r\n", "ACL", "SETUSER", "alice", "on", ">TopSecretPassword1", "~*", "+@all")
	admin.expect("+OK\r\n", "ACL", "SETUSER", "alice", "<TopSecretPassword1", ">TopSecretPassword2")
	for i := range 12 {
		admin.do("SET", "k", strings.Repeat("v", i+1)) // more entries: a snapshot
	}
	srv.Close()
	found := false
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "TopSecretPassword") {
			t.Errorf("%s holds a clear password", path)
		}
		found = found || strings.Contains(string(b), acl.HashPassword("TopSecretPassword2"))
		return nil
	})
	if !found {
		t.Fatal("no file holds the password's hash: where did the user go?")
	}
}

// TestACLUserChangedOrDeleted: as in Redis, a changed user's rules apply to
// its connections' next command, and a deleted user's connections are
// closed, idle ones too.
func TestACLUserChangedOrDeleted(t *testing.T) {
	srv, admin := aclServer(t)
	c := as(t, srv, "locker")
	c.expect(noPermKey, "LOCK", "users:1", "me")
	admin.expect("+OK\r\n", "ACL", "SETUSER", "locker", "~users:*")
	if got := c.do("LOCK", "users:1", "me"); strings.HasPrefix(got, "-") {
		t.Fatalf("after the change: %q", got)
	}
	idle := as(t, srv, "locker")
	admin.expect(":1\r\n", "ACL", "DELUSER", "locker")
	idle.expectClosed()
	c.expectClosed()
	c2 := dial(t, srv)
	c2.expect("-WRONGPASS invalid username-password pair or user is disabled.\r\n", "AUTH", "locker", "pw")

	// The recipe's last step: the default user off, a new connection must
	// AUTH as another user; connections open already stay as they are.
	admin.expect("+OK\r\n", "ACL", "SETUSER", "default", "off")
	c3 := dial(t, srv)
	c3.expect("-NOAUTH Authentication required.\r\n", "GET", "a")
	c3.expect("-WRONGPASS invalid username-password pair or user is disabled.\r\n", "AUTH", "default", "x")
	c3.expect("+OK\r\n", "AUTH", "admin", "pw")
	admin.expect("$-1\r\n", "GET", "a")
}

// A user deleted and made again before the node looks at its users (both
// applied in one batch, as a follower often applies entries committed back
// to back) keeps none of its old connections: the deletion itself, applied,
// closes them (it was a diff of the user names, which saw no change).
func TestACLUserDeletedAndMadeAgainLosesItsConnections(t *testing.T) {
	srv, admin := aclServer(t)
	old := as(t, srv, "locker")
	// What applying DELUSER locker then SETUSER locker hands the server:
	// the users still have locker, and the deletion's event.
	srv.deliver([]lock.Event{{Kind: lock.EventUserDeleted, Name: "locker"}})
	old.expectClosed()
	admin.expect("+PONG\r\n", "PING")
}

// TestACLInPipelines: every pipelined command is checked on its own; a
// denied one in a wave of writes answers -NOPERM in its place and the
// others run.
func TestACLInPipelines(t *testing.T) {
	srv, admin := aclServer(t)
	c := as(t, srv, "locker")
	c.send(encode("LOCK", "orders:a", "me") + encode("LOCK", "users:a", "me") + encode("LOCK", "orders:b", "me") + encode("GET", "orders:a"))
	for _, want := range []string{":", noPermKey, ":", noPermCmd("locker", "get")} {
		if got := c.reply(); !strings.HasPrefix(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	admin.expect("$2\r\nme\r\n", "GET", "orders:b")
	admin.expect("$-1\r\n", "GET", "users:a")
}

// TestACLClientListAndKill: CLIENT LIST names each connection's user, and
// CLIENT KILL USER closes that user's connections.
func TestACLClientListAndKill(t *testing.T) {
	srv, admin := aclServer(t)
	c := as(t, srv, "monitor")
	list := admin.value("CLIENT", "LIST").(string)
	if !strings.Contains(list, " user=monitor ") || !strings.Contains(list, " user=default ") {
		t.Fatalf("CLIENT LIST:\n%s", list)
	}
	admin.expect(":1\r\n", "CLIENT", "KILL", "USER", "monitor")
	c.expectClosed()
}

// TestValidACLForwarded: the leader refuses a forwarded ACL SETUSER that
// holds a clear password (the log must never hold one) or more than a
// client could send, and takes what a node proposes.
func TestValidACLForwarded(t *testing.T) {
	s := &Server{cfg: Config{}.WithDefaults()}
	set := func(name, base string, rules ...string) lock.Command {
		return lock.Command{Op: lock.OpACLSetUser, Name: name, Owner: base, X: &lock.Extra{Args: rules}}
	}
	h := "#" + acl.HashPassword("pw")
	for _, tc := range []struct {
		name string
		cmd  lock.Command
		ok   bool
	}{
		{"hashed", set("alice", "", "on", h, "~a:*", "+@lock"), true},
		{"the default's base", set("default", "on "+h+" ~* +@all", "-keys"), true},
		{"a deletion", lock.Command{Op: lock.OpACLDelUser, Name: "alice", X: &lock.Extra{Args: []string{"bob"}}}, true},
		{"a clear password", set("alice", "", "on", ">pw"), false},
		{"a clear password removed", set("alice", "", "<pw"), false},
		{"a clear password in the default's base", set("default", "on >pw ~* +@all"), false},
		{"a bad name", set("a b", ""), false},
		{"too many rules", set("alice", "", make([]string, maxACLArgs+1)...), false},
		{"a rule too long", set("alice", "", "~"+strings.Repeat("x", acl.MaxRuleLen)), false},
		{"keys", lock.Command{Op: lock.OpACLSetUser, Name: "alice", X: &lock.Extra{Keys: []string{"k"}}}, false},
		{"a TTL", lock.Command{Op: lock.OpACLDelUser, Name: "alice", TTL: 5}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.validCommand(&tc.cmd); (err == nil) != tc.ok {
				t.Fatalf("validCommand = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// BenchmarkPermit is the check prepare makes of one LOCK, for the default
// user (nothing to check) and for the service of the recipes.
func BenchmarkPermit(b *testing.B) {
	spec := commandTable["LOCK"]
	args := [][]byte{[]byte("LOCK"), []byte("orders:123456"), []byte("worker-7"), []byte("PX"), []byte("30000")}
	for _, tc := range []struct{ name, rules string }{
		{"default", "on nopass ~* +@all"},
		{"service", "on nopass ~orders:* -@all +@lock +ping"},
	} {
		u, err := acl.Apply(&acl.User{Name: "u"}, strings.Fields(tc.rules), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !u.Unrestricted() {
					if err := permitted(u, spec, args); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// Connections admitted before the node caught up after its start are
// provisional: once it has, those admitted under users that have changed
// since (an ACL change in the log's tail the node had not applied yet) are
// closed, the others kept.
func TestConnectionsAdmittedBeforeTheUsersWereCurrent(t *testing.T) {
	srv := startServer(t)
	poll(t, "the node to catch up after its start", srv.usersReady.Load)
	srv.usersReady.Store(false) // as if it had just restarted
	admitted := dial(t, srv)    // open default user: admitted at once
	admitted.expect("+PONG\r\n", "PING")
	kept := dial(t, srv)
	kept.expect("+PONG\r\n", "PING")
	if n := srv.usersNowCurrent(); n != 0 {
		t.Fatalf("closed %d connections, the users unchanged", n)
	}
	srv.usersReady.Store(false)
	stale := dial(t, srv)
	stale.expect("+PONG\r\n", "PING")
	// The change the restarted node had not applied when it admitted them.
	kept.expect("+OK\r\n", "ACL", "SETUSER", "default", "off")
	if n := srv.usersNowCurrent(); n != 1 {
		t.Fatalf("closed %d connections, want the one admitted under the old users", n)
	}
	stale.expectClosed()
	admitted.expect("+PONG\r\n", "PING") // admitted when the users were current
}
