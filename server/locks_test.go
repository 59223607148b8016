package server

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLock(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)

	t.Run("a free lock is granted with a positive integer token", func(t *testing.T) {
		c := c.with(t)
		tok := c.int("LOCK", "grant", "alice")
		if tok <= 0 {
			t.Fatalf("token %d, want > 0", tok)
		}
		c.expect(bulk("alice"), "OWNER", "grant")
	})

	t.Run("a re-grant to the owner returns the same token", func(t *testing.T) {
		c := c.with(t)
		first := c.int("LOCK", "regrant", "alice", "PX", "60000")
		if again := c.int("LOCK", "regrant", "alice", "PX", "60000"); again != first {
			t.Fatalf("re-grant token %d, want %d", again, first)
		}
	})

	t.Run("another owner gets null at once and the lock is unchanged", func(t *testing.T) {
		c := c.with(t)
		tok := c.int("LOCK", "taken", "alice")
		c.expect("$-1\r\n", "LOCK", "taken", "bob")
		c.expect("$-1\r\n", "LOCK", "taken", "bob", "PX", "1000")
		owner, tok2, ttl, _ := c.lockInfo("taken")
		if owner != "alice" || tok2 != tok || ttl != -1 {
			t.Fatalf("LOCKINFO = %s %d %d, want alice %d -1", owner, tok2, ttl, tok)
		}
	})

	t.Run("without PX or EX the lock never expires", func(t *testing.T) {
		c := c.with(t)
		c.int("LOCK", "forever", "alice")
		if _, _, ttl, _ := c.lockInfo("forever"); ttl != -1 {
			t.Fatalf("ttl %d, want -1", ttl)
		}
	})

	t.Run("PX sets the lease in milliseconds", func(t *testing.T) {
		c := c.with(t)
		c.int("LOCK", "px", "alice", "PX", "30000")
		if _, _, ttl, _ := c.lockInfo("px"); ttl <= 25000 || ttl > 30000 {
			t.Fatalf("ttl %d, want in (25000, 30000]", ttl)
		}
	})

	t.Run("EX sets the lease in seconds", func(t *testing.T) {
		c := c.with(t)
		c.int("LOCK", "ex", "alice", "EX", "100")
		if _, _, ttl, _ := c.lockInfo("ex"); ttl <= 95000 || ttl > 100000 {
			t.Fatalf("ttl %d, want in (95000, 100000]", ttl)
		}
	})

	t.Run("a re-grant resets the lease to what it says", func(t *testing.T) {
		c := c.with(t)
		tok := c.int("LOCK", "reset", "alice", "PX", "600000")
		if _, _, ttl, _ := c.lockInfo("reset"); ttl <= 590000 {
			t.Fatalf("ttl %d, want > 590000", ttl)
		}
		steps := []struct {
			args   []string
			lo, hi int64
		}{
			{[]string{"PX", "5000"}, 1, 5000},
			{[]string{"EX", "3600"}, 3590000, 3600000},
			{nil, -1, -1}, // no PX: the lease is gone
			{[]string{"PX", "20000"}, 15000, 20000},
		}
		for _, st := range steps {
			args := append([]string{"LOCK", "reset", "alice"}, st.args...)
			if got := c.int(args...); got != tok {
				t.Fatalf("%v: token %d, want %d", args, got, tok)
			}
			if _, _, ttl, _ := c.lockInfo("reset"); ttl < st.lo || ttl > st.hi {
				t.Fatalf("after %v: ttl %d, want in [%d, %d]", args, ttl, st.lo, st.hi)
			}
		}
	})

	t.Run("tokens strictly increase over all grants of all names", func(t *testing.T) {
		c := c.with(t)
		last := int64(0)
		for i := range 20 {
			name := "seq" + strconv.Itoa(i%5)
			tok := c.int("LOCK", name, "alice")
			if tok <= last {
				t.Fatalf("grant %d of %s: token %d, not above %d", i, name, tok, last)
			}
			last = tok
			c.expect(":1\r\n", "UNLOCK", name, "alice")
		}
	})
}

func TestLockLeaseExpiry(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)

	first := c.int("LOCK", "lease", "alice", "PX", "200")
	c.expect(bulk("alice"), "OWNER", "lease")
	c.expect(":1\r\n", "DBSIZE")
	poll(t, "the lease to run out", func() bool { return c.do("OWNER", "lease") == "$-1\r\n" })
	c.expect("$-1\r\n", "LOCKINFO", "lease")
	c.expect(":0\r\n", "DBSIZE")
	c.expect(":0\r\n", "UNLOCK", "lease", "alice")
	c.expect(":0\r\n", "RENEW", "lease", "alice", "PX", "1000")

	second := c.int("LOCK", "lease", "bob")
	if second <= first {
		t.Fatalf("grant after expiry: token %d, want > %d", second, first)
	}
	c.expect(bulk("bob"), "OWNER", "lease")
}

func TestLockWait(t *testing.T) {
	// PROTOCOL.md: LOCK name owner [PX ms | EX s] [WAIT ms].
	srv := startServer(t)
	c := dial(t, srv)
	first := c.int("LOCK", "w", "alice")

	t.Run("a wait that runs out answers null and takes nothing later", func(t *testing.T) {
		c := c.with(t)
		c.expect("$-1\r\n", "LOCK", "w", "bob", "WAIT", "100")
		c.expect(":1\r\n", "UNLOCK", "w", "alice")
		c.expect("$-1\r\n", "OWNER", "w") // bob gave up: the lock is not handed to him
		first = c.int("LOCK", "w", "alice")
	})
	t.Run("bad WAIT arguments change nothing", func(t *testing.T) {
		c := c.with(t)
		c.expect("$-1\r\n", "LOCK", "w", "bob", "WAIT", "100", "PX", "100") // options in any order (PROTOCOL.md); it waited, then null
		c.expect("-ERR syntax error\r\n", "LOCK", "w", "bob", "WAIT", "100", "PX", "100", "EX", "1")
		c.expect("-ERR syntax error\r\n", "LOCK", "w", "bob", "WAIT", "100", "WAIT", "100")
		c.expect("-ERR value is not an integer or out of range\r\n", "LOCK", "w", "bob", "WAIT", "x")
		c.expect("-ERR invalid wait time in 'lock' command\r\n", "LOCK", "w", "bob", "WAIT", "-1")
		c.expect("$-1\r\n", "LOCK", "w", "bob", "WAIT", "0") // no wait at all
		c.expect(bulk("alice"), "OWNER", "w")
	})
	t.Run("waiters get the lock in arrival order when it is released", func(t *testing.T) {
		type got struct {
			who string
			v   any
		}
		out := make(chan got, 2)
		for _, who := range []string{"bob", "carol"} {
			w := dial(t, srv)
			w.send(encode("LOCK", "w", who, "PX", "10000", "WAIT", "10000"))
			// Queue bob before carol: wait until his request is in the table.
			poll(t, who+" to queue", func() bool {
				info, _ := srv.Node().Table().Get("w")
				return info.Waiters == map[string]int{"bob": 1, "carol": 2}[who]
			})
			go func() {
				_, v, _ := w.read()
				out <- got{who, v}
			}()
		}
		c.with(t).expect(":1\r\n", "UNLOCK", "w", "alice")
		g := <-out
		if g.who != "bob" || g.v.(int64) <= first {
			t.Fatalf("first answer: %s got %v; want bob with a token above %d", g.who, g.v, first)
		}
		c.with(t).expect(bulk("bob"), "OWNER", "w")
		c.with(t).expect(":1\r\n", "UNLOCK", "w", "bob")
		g2 := <-out
		if g2.who != "carol" || g2.v.(int64) <= g.v.(int64) {
			t.Fatalf("second answer: %s got %v; want carol with a token above %v", g2.who, g2.v, g.v)
		}
	})
}

func TestUnlock(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	tok := c.int("LOCK", "u", "alice")

	t.Run("by another owner: 0, the lock stays", func(t *testing.T) {
		c := c.with(t)
		c.expect(":0\r\n", "UNLOCK", "u", "bob")
		if owner, got, _, _ := c.lockInfo("u"); owner != "alice" || got != tok {
			t.Fatalf("LOCKINFO = %s %d, want alice %d", owner, got, tok)
		}
	})
	t.Run("by the holder: 1, the lock is free", func(t *testing.T) {
		c := c.with(t)
		c.expect(":1\r\n", "UNLOCK", "u", "alice")
		c.expect("$-1\r\n", "OWNER", "u")
		c.expect(":0\r\n", "DBSIZE")
	})
	t.Run("on a free lock: 0", func(t *testing.T) {
		c := c.with(t)
		c.expect(":0\r\n", "UNLOCK", "u", "alice")
		c.expect(":0\r\n", "UNLOCK", "never-taken", "alice")
	})
	t.Run("a free lock goes to the next owner with a larger token", func(t *testing.T) {
		c := c.with(t)
		if got := c.int("LOCK", "u", "bob"); got <= tok {
			t.Fatalf("token %d, want > %d", got, tok)
		}
	})
}

func TestRenew(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	tok := c.int("LOCK", "r", "alice", "PX", "600000")

	t.Run("by the holder: 1, the lease is reset", func(t *testing.T) {
		c := c.with(t)
		c.expect(":1\r\n", "RENEW", "r", "alice", "PX", "5000")
		if owner, got, ttl, _ := c.lockInfo("r"); owner != "alice" || got != tok || ttl <= 0 || ttl > 5000 {
			t.Fatalf("LOCKINFO = %s %d %d, want alice %d (0, 5000]", owner, got, ttl, tok)
		}
		c.expect(":1\r\n", "RENEW", "r", "alice", "EX", "60")
		if _, _, ttl, _ := c.lockInfo("r"); ttl <= 55000 || ttl > 60000 {
			t.Fatalf("ttl %d after RENEW EX 60, want in (55000, 60000]", ttl)
		}
	})
	t.Run("by another owner: 0, the lease is unchanged", func(t *testing.T) {
		c := c.with(t)
		c.expect(":0\r\n", "RENEW", "r", "bob", "PX", "600000")
		if owner, _, ttl, _ := c.lockInfo("r"); owner != "alice" || ttl > 60000 {
			t.Fatalf("LOCKINFO = %s ttl %d, want alice ttl <= 60000", owner, ttl)
		}
	})
	t.Run("gives a lock without a lease one", func(t *testing.T) {
		c := c.with(t)
		c.int("LOCK", "nolease", "alice")
		c.expect(":1\r\n", "RENEW", "nolease", "alice", "PX", "10000")
		if _, _, ttl, _ := c.lockInfo("nolease"); ttl <= 0 || ttl > 10000 {
			t.Fatalf("ttl %d, want in (0, 10000]", ttl)
		}
	})
	t.Run("never takes a free lock", func(t *testing.T) {
		c := c.with(t)
		before := c.int("DBSIZE")
		c.expect(":0\r\n", "RENEW", "free", "alice", "PX", "1000")
		c.expect("$-1\r\n", "OWNER", "free")
		c.expect(integer(before), "DBSIZE")
	})
	t.Run("after UNLOCK: 0", func(t *testing.T) {
		c := c.with(t)
		c.expect(":1\r\n", "UNLOCK", "r", "alice")
		c.expect(":0\r\n", "RENEW", "r", "alice", "PX", "1000")
		c.expect("$-1\r\n", "OWNER", "r")
	})
}

func TestOwnerAndLockInfo(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)

	t.Run("free: null", func(t *testing.T) {
		c := c.with(t)
		c.expect("$-1\r\n", "OWNER", "free")
		c.expect("$-1\r\n", "LOCKINFO", "free")
	})

	tok := c.int("LOCK", "held", "alice")
	t.Run("OWNER: the owner as a bulk string", func(t *testing.T) {
		c := c.with(t)
		c.expect(bulk("alice"), "OWNER", "held")
	})
	t.Run("LOCKINFO RESP2: [owner, token, -1] without a lease", func(t *testing.T) {
		c := c.with(t)
		c.expect("*3\r\n"+bulk("alice")+integer(tok)+":-1\r\n", "LOCKINFO", "held")
	})
	t.Run("LOCKINFO RESP3: {owner, token, ttl_ms}", func(t *testing.T) {
		c3 := dial(t, srv)
		c3.value("HELLO", "3")
		c3.expect("%3\r\n"+bulk("owner")+bulk("alice")+bulk("token")+integer(tok)+bulk("ttl_ms")+":-1\r\n", "LOCKINFO", "held")
		c3.expect("_\r\n", "LOCKINFO", "free")
		c3.expect("_\r\n", "OWNER", "free")
	})
	t.Run("LOCKINFO ttl counts down", func(t *testing.T) {
		c := c.with(t)
		c.int("LOCK", "ticking", "alice", "PX", "60000")
		_, _, first, _ := c.lockInfo("ticking")
		if first <= 0 || first > 60000 {
			t.Fatalf("ttl %d, want in (0, 60000]", first)
		}
		poll(t, "the ttl to count down", func() bool {
			_, _, ttl, _ := c.lockInfo("ticking")
			if ttl > first {
				t.Fatalf("ttl went up from %d to %d", first, ttl)
			}
			return ttl < first-50
		})
	})
}

// TestErrorsChangeNothing sends each malformed command to a node holding
// one lock and checks the exact error and that no lock changed.
func TestErrorsChangeNothing(t *testing.T) {
	const maxName, maxOwner = 16, 8
	srv := startServer(t, func(c *Config) {
		c.MaxNameLen = maxName
		c.MaxOwnerLen = maxOwner
		c.MaxTTL = time.Hour
	})
	c := dial(t, srv)
	tok := c.int("LOCK", "held", "alice", "PX", "3600000")
	c.int("LOCK", "bare", "alice")

	const (
		syntax   = "-ERR syntax error\r\n"
		notInt   = "-ERR value is not an integer or out of range\r\n"
		expLock  = "-ERR invalid expire time in 'lock' command\r\n"
		expRenew = "-ERR invalid expire time in 'renew' command\r\n"
		badName  = "-ERR invalid lock name\r\n"
		badOwner = "-ERR invalid owner\r\n"
	)
	arity := func(cmd string) string {
		return "-ERR wrong number of arguments for '" + cmd + "' command\r\n"
	}
	longName := strings.Repeat("n", maxName+1)
	longOwner := strings.Repeat("o", maxOwner+1)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"LOCK without arguments", []string{"LOCK"}, arity("lock")},
		{"LOCK without owner", []string{"LOCK", "free"}, arity("lock")},
		{"UNLOCK without owner", []string{"UNLOCK", "held"}, arity("unlock")},
		{"UNLOCK with an extra argument", []string{"UNLOCK", "held", "alice", "x"}, arity("unlock")},
		{"RENEW without a lease", []string{"RENEW", "held", "alice"}, arity("renew")},
		{"RENEW with a dangling PX", []string{"RENEW", "held", "alice", "PX"}, arity("renew")},
		{"RENEW with PX and EX", []string{"RENEW", "held", "alice", "PX", "1", "EX", "1"}, arity("renew")},
		{"OWNER without name", []string{"OWNER"}, arity("owner")},
		{"OWNER with two names", []string{"OWNER", "held", "bare"}, arity("owner")},
		{"LOCKINFO without name", []string{"LOCKINFO"}, arity("lockinfo")},
		{"LOCKINFO with two names", []string{"LOCKINFO", "held", "bare"}, arity("lockinfo")},
		{"DBSIZE with an argument", []string{"DBSIZE", "x"}, arity("dbsize")},
		{"PING with two arguments", []string{"PING", "a", "b"}, arity("ping")},
		{"ECHO without argument", []string{"ECHO"}, arity("echo")},
		{"SELECT without argument", []string{"SELECT"}, arity("select")},
		{"AUTH without argument", []string{"AUTH"}, arity("auth")},
		{"CLIENT without subcommand", []string{"CLIENT"}, arity("client")},
		{"CLIENT ID with an argument", []string{"CLIENT", "ID", "x"}, arity("client|id")},
		{"CLIENT KILL without filter", []string{"CLIENT", "KILL"}, arity("client|kill")},
		{"ROLE with an argument", []string{"ROLE", "x"}, arity("role")},
		{"TIME with an argument", []string{"TIME", "x"}, arity("time")},
		{"arity error names the command in lower case", []string{"uNlOcK", "held"}, arity("unlock")},

		{"LOCK unknown option", []string{"LOCK", "held", "bob", "NX", "1"}, syntax},
		{"LOCK unknown option on a free lock", []string{"LOCK", "free", "bob", "XX", "1"}, syntax},
		{"LOCK PX twice", []string{"LOCK", "free", "bob", "PX", "100", "PX", "100"}, syntax},
		{"LOCK PX then EX", []string{"LOCK", "free", "bob", "PX", "100", "EX", "1"}, syntax},
		{"LOCK EX then PX", []string{"LOCK", "free", "bob", "EX", "1", "PX", "100"}, syntax},
		{"LOCK dangling PX", []string{"LOCK", "free", "bob", "PX"}, syntax},
		{"LOCK dangling option after PX", []string{"LOCK", "free", "bob", "PX", "100", "EX"}, syntax},
		{"LOCK dangling WAIT", []string{"LOCK", "free", "bob", "WAIT"}, syntax},
		{"RENEW unknown option", []string{"RENEW", "held", "alice", "XX", "100"}, syntax},
		{"RENEW with WAIT", []string{"RENEW", "held", "alice", "WAIT", "100"}, syntax},

		{"LOCK PX not a number", []string{"LOCK", "free", "bob", "PX", "abc"}, notInt},
		{"LOCK PX fraction", []string{"LOCK", "free", "bob", "PX", "1.5"}, notInt},
		{"LOCK PX with plus sign", []string{"LOCK", "free", "bob", "PX", "+100"}, notInt},
		{"LOCK PX empty", []string{"LOCK", "free", "bob", "PX", ""}, notInt},
		{"LOCK PX past int64", []string{"LOCK", "free", "bob", "PX", "99999999999999999999"}, notInt},
		{"LOCK EX not a number", []string{"LOCK", "free", "bob", "EX", "1s"}, notInt},
		{"LOCK WAIT not a number", []string{"LOCK", "free", "bob", "WAIT", "x"}, notInt},
		{"RENEW PX not a number", []string{"RENEW", "held", "alice", "PX", "abc"}, notInt},
		{"SELECT not a number", []string{"SELECT", "abc"}, notInt},

		{"LOCK PX 0", []string{"LOCK", "free", "bob", "PX", "0"}, expLock},
		{"LOCK PX -5", []string{"LOCK", "free", "bob", "PX", "-5"}, expLock},
		{"LOCK EX 0", []string{"LOCK", "free", "bob", "EX", "0"}, expLock},
		{"LOCK EX -1", []string{"LOCK", "free", "bob", "EX", "-1"}, expLock},
		{"LOCK PX past MaxTTL", []string{"LOCK", "free", "bob", "PX", "3600001"}, expLock},
		{"LOCK EX past MaxTTL", []string{"LOCK", "free", "bob", "EX", "3601"}, expLock},
		{"LOCK EX overflowing milliseconds", []string{"LOCK", "free", "bob", "EX", "9223372036854775807"}, expLock},
		{"LOCK EX negative overflow", []string{"LOCK", "free", "bob", "EX", "-9223372036854775808"}, expLock},
		{"re-grant with PX 0 keeps the lease", []string{"LOCK", "held", "alice", "PX", "0"}, expLock},
		{"RENEW PX 0", []string{"RENEW", "held", "alice", "PX", "0"}, expRenew},
		{"RENEW PX -5", []string{"RENEW", "held", "alice", "PX", "-5"}, expRenew},
		{"RENEW EX 0", []string{"RENEW", "bare", "alice", "EX", "0"}, expRenew},
		{"RENEW PX past MaxTTL", []string{"RENEW", "held", "alice", "PX", "3600001"}, expRenew},
		{"RENEW EX past MaxTTL", []string{"RENEW", "bare", "alice", "EX", "3601"}, expRenew},

		{"LOCK empty name", []string{"LOCK", "", "bob"}, badName},
		{"LOCK name over MaxNameLen", []string{"LOCK", longName, "bob"}, badName},
		{"UNLOCK empty name", []string{"UNLOCK", "", "alice"}, badName},
		{"RENEW empty name", []string{"RENEW", "", "alice", "PX", "100"}, badName},
		{"RENEW name over MaxNameLen", []string{"RENEW", longName, "alice", "PX", "100"}, badName},
		{"OWNER empty name", []string{"OWNER", ""}, badName},
		{"OWNER name over MaxNameLen", []string{"OWNER", longName}, badName},
		{"LOCKINFO empty name", []string{"LOCKINFO", ""}, badName},
		{"LOCKINFO name over MaxNameLen", []string{"LOCKINFO", longName}, badName},

		{"LOCK empty owner", []string{"LOCK", "free", ""}, badOwner},
		{"LOCK owner over MaxOwnerLen", []string{"LOCK", "free", longOwner}, badOwner},
		{"UNLOCK empty owner", []string{"UNLOCK", "held", ""}, badOwner},
		{"UNLOCK owner over MaxOwnerLen", []string{"UNLOCK", "held", longOwner}, badOwner},
		{"RENEW empty owner", []string{"RENEW", "held", "", "PX", "100"}, badOwner},

		{"unknown command", []string{"FOO", "a", "b"}, "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"},
		{"unknown command keeps its case", []string{"fOo"}, "-ERR unknown command 'fOo', with args beginning with: \r\n"},
		{"unknown command that looks like one", []string{"LOCKS", "held", "alice"}, "-ERR unknown command 'LOCKS', with args beginning with: 'held' 'alice' \r\n"},
		{"CLIENT unknown subcommand", []string{"CLIENT", "FOO"}, "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n"},
		{"COMMAND unknown subcommand", []string{"COMMAND", "FOO"}, "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := c.with(t)
			c.expect(tt.want, tt.args...)
			c.expect(":2\r\n", "DBSIZE")
			if owner, got, ttl, _ := c.lockInfo("held"); owner != "alice" || got != tok || ttl <= 3000000 {
				t.Fatalf("held: LOCKINFO = %s %d %d, want alice %d > 3000000", owner, got, ttl, tok)
			}
			if owner, _, ttl, _ := c.lockInfo("bare"); owner != "alice" || ttl != -1 {
				t.Fatalf("bare: LOCKINFO = %s ttl %d, want alice -1", owner, ttl)
			}
			c.expect("$-1\r\n", "OWNER", "free")
		})
	}

	t.Run("limits themselves are accepted", func(t *testing.T) {
		c := c.with(t)
		name, owner := strings.Repeat("n", maxName), strings.Repeat("o", maxOwner)
		c.int("LOCK", name, owner, "PX", "3600000")
		c.expect(":1\r\n", "RENEW", name, owner, "EX", "3600")
		c.expect(bulk(owner), "OWNER", name)
		c.expect(":1\r\n", "UNLOCK", name, owner)
	})
}

func TestCommandNamesAndOptionsAreCaseInsensitive(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	tok := c.int("lock", "ci", "alice", "px", "60000")
	c.expect(integer(tok), "LoCk", "ci", "alice", "Ex", "60")
	c.expect(bulk("alice"), "owner", "ci")
	if owner, got, ttl, _ := c.lockInfo("ci"); owner != "alice" || got != tok || ttl <= 50000 {
		t.Fatalf("LOCKINFO = %s %d %d, want alice %d > 50000", owner, got, ttl, tok)
	}
	c.expect("$-1\r\n", "lOcK", "ci", "bob", "pX", "100")
	c.expect(":1\r\n", "renew", "ci", "alice", "px", "5000")
	c.expect(":1\r\n", "ReNeW", "ci", "alice", "eX", "5")
	c.expect(":1\r\n", "dbsize")
	c.expect(":1\r\n", "unlock", "ci", "alice")
	c.expect("$-1\r\n", "lockinfo", "ci")
}
