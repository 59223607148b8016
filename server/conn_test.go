package server

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestConnectionCommands(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"PING", []string{"PING"}, "+PONG\r\n"},
		{"PING msg echoes a bulk string", []string{"PING", "hello world"}, bulk("hello world")},
		{"PING empty msg", []string{"PING", ""}, "$0\r\n\r\n"},
		{"ping in lower case", []string{"ping"}, "+PONG\r\n"},
		{"ECHO", []string{"ECHO", "a\r\nb"}, bulk("a\r\nb")},
		{"SELECT 0", []string{"SELECT", "0"}, "+OK\r\n"},
		{"SELECT 1", []string{"SELECT", "1"}, "-ERR DB index is out of range\r\n"},
		{"SELECT -1", []string{"SELECT", "-1"}, "-ERR DB index is out of range\r\n"},
		{"DBSIZE of an empty node", []string{"DBSIZE"}, ":0\r\n"},
		{"COMMAND DOCS is an empty map", []string{"COMMAND", "DOCS"}, "*0\r\n"},
		{"COMMAND DOCS lock", []string{"COMMAND", "DOCS", "lock"}, "*0\r\n"},
		{"COMMAND INFO of an unknown command", []string{"COMMAND", "INFO", "nosuch"}, "*1\r\n$-1\r\n"},
		{"COMMAND COUNT", []string{"COMMAND", "COUNT"}, integer(int64(len(commandTable)))},
		{"COMMAND INFO lock", []string{"command", "info", "lock"}, "*1\r\n*10\r\n" + bulk("lock") + ":-3\r\n*1\r\n+write\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@write\r\n+@slow\r\n+@lock\r\n*0\r\n*0\r\n*0\r\n"},
		{"COMMAND INFO ping", []string{"COMMAND", "INFO", "PING"}, "*1\r\n*10\r\n" + bulk("ping") + ":-1\r\n*1\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.with(t).expect(tt.want, tt.args...)
		})
	}

	t.Run("DBSIZE counts held locks", func(t *testing.T) {
		c := c.with(t)
		c.int("LOCK", "a", "x")
		c.int("LOCK", "b", "x")
		c.expect(":2\r\n", "DBSIZE")
		c.expect(":1\r\n", "UNLOCK", "a", "x")
		c.expect(":1\r\n", "DBSIZE")
	})

	t.Run("TIME is [unix seconds, microseconds] as bulk strings", func(t *testing.T) {
		c := c.with(t)
		v, ok := c.value("TIME").([]any)
		if !ok || len(v) != 2 {
			t.Fatalf("TIME = %#v, want two bulk strings", v)
		}
		secs, err1 := strconv.ParseInt(v[0].(string), 10, 64)
		usecs, err2 := strconv.ParseInt(v[1].(string), 10, 64)
		if err1 != nil || err2 != nil || usecs < 0 || usecs >= 1e6 {
			t.Fatalf("TIME = %#v", v)
		}
		if d := time.Since(time.Unix(secs, usecs*1000)); d < -time.Second || d > 5*time.Second {
			t.Fatalf("TIME is %v away from now", d)
		}
	})

	t.Run("ROLE on the leader", func(t *testing.T) {
		c := c.with(t)
		applied := srv.Node().Status().Applied
		v, ok := c.value("ROLE").([]any)
		if !ok || len(v) != 3 || v[0] != "master" {
			t.Fatalf("ROLE = %#v, want [master applied []]", v)
		}
		if n, ok := v[1].(int64); !ok || uint64(n) < applied {
			t.Fatalf("ROLE offset %#v, want >= %d", v[1], applied)
		}
		if a, ok := v[2].([]any); !ok || len(a) != 0 {
			t.Fatalf("ROLE replicas %#v, want []", v[2])
		}
	})

	t.Run("COMMAND lists every command in Redis 7 form", func(t *testing.T) {
		c := c.with(t)
		v, ok := c.value("COMMAND").([]any)
		if !ok || len(v) != len(commandTable) {
			t.Fatalf("COMMAND: %d entries, want %d", len(v), len(commandTable))
		}
		seen := map[string]bool{}
		for _, e := range v {
			info, ok := e.([]any)
			if !ok || len(info) != 10 {
				t.Fatalf("entry %#v, want 10 fields", e)
			}
			seen[info[0].(string)] = true
		}
		for _, name := range []string{"lock", "unlock", "renew", "owner", "lockinfo", "dbsize", "ping", "echo", "quit", "select", "auth", "hello", "client", "command", "info", "role", "time"} {
			if !seen[name] {
				t.Errorf("COMMAND lacks %s", name)
			}
		}
	})

	t.Run("COMMAND INFO of several commands, in order", func(t *testing.T) {
		c := c.with(t)
		v, ok := c.value("COMMAND", "INFO", "owner", "nosuch", "RENEW").([]any)
		if !ok || len(v) != 3 || v[1] != nil {
			t.Fatalf("COMMAND INFO = %#v", v)
		}
		if v[0].([]any)[0] != "owner" || v[0].([]any)[1] != int64(2) || v[2].([]any)[0] != "renew" || v[2].([]any)[1] != int64(5) {
			t.Fatalf("COMMAND INFO = %#v", v)
		}
	})
}

func TestQuit(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	c.expect("+OK\r\n", "QUIT")
	c.expectClosed()

	// The node still serves others, and the closed client is gone.
	d := dial(t, srv)
	d.expect("+PONG\r\n", "PING")
	poll(t, "the client list to drop the closed connection", func() bool {
		return strings.Count(d.value("CLIENT", "LIST").(string), "\n") == 1
	})
}

func TestQuitAnswersCommandsPipelinedBeforeIt(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	c.send(encode("PING") + encode("ECHO", "x") + encode("QUIT") + encode("PING"))
	for _, want := range []string{"+PONG\r\n", bulk("x"), "+OK\r\n"} {
		if got := c.reply(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	c.expectClosed()
}

func TestPipelinedCommandsAnswerInOrder(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	var b strings.Builder
	for i := range 50 {
		b.WriteString(encode("LOCK", fmt.Sprintf("p%d", i), "alice"))
		b.WriteString(encode("OWNER", fmt.Sprintf("p%d", i)))
	}
	c.send(b.String())
	last := int64(0)
	for i := range 50 {
		_, v, err := c.read()
		tok, ok := v.(int64)
		if err != nil || !ok || tok <= last {
			t.Fatalf("reply %d: %#v %v, want a token above %d", i, v, err, last)
		}
		last = tok
		if got := c.reply(); got != bulk("alice") {
			t.Fatalf("OWNER p%d: %q", i, got)
		}
	}
}

func TestInlineCommands(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	c.send("PING\r\n")
	if got := c.reply(); got != "+PONG\r\n" {
		t.Fatalf("inline PING: %q", got)
	}
	c.send("LOCK inline alice PX 60000\r\n")
	if _, v, err := c.read(); err != nil || v == nil {
		t.Fatalf("inline LOCK: %#v %v", v, err)
	}
	c.expect(bulk("alice"), "OWNER", "inline")
}

func TestInfo(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	st := srv.Node().Status()

	t.Run("INFO has every section and the replication fields", func(t *testing.T) {
		c := c.with(t)
		info := c.value("INFO").(string)
		for _, want := range []string{
			"# Server\r\n", "# Clients\r\n", "# Persistence\r\n", "# Replication\r\n", "# Keyspace\r\n",
			"\r\nloading:0\r\n", "\r\nrole:leader\r\n", "\r\nnode_id:1\r\n", "\r\nleader_id:1\r\n",
			"\r\nleader_addr:" + srv.Addr().String() + "\r\n",
			"\r\nraft_term:" + strconv.FormatUint(st.Term, 10) + "\r\n",
			"\r\ncommit_index:", "\r\napplied_index:", "\r\nconnected_clients:1\r\n",
		} {
			if !strings.Contains(info, want) {
				t.Errorf("INFO lacks %q:\n%s", want, info)
			}
		}
		if !strings.HasPrefix(info, "# Server\r\n") || !strings.HasSuffix(info, "\r\n") {
			t.Errorf("INFO framing:\n%q", info)
		}
	})

	t.Run("commit and applied indexes are numbers that grow with writes", func(t *testing.T) {
		c := c.with(t)
		field := func(info, key string) uint64 {
			for _, l := range strings.Split(info, "\r\n") {
				if v, ok := strings.CutPrefix(l, key+":"); ok {
					n, err := strconv.ParseUint(v, 10, 64)
					if err != nil {
						t.Fatalf("%s: %q", key, v)
					}
					return n
				}
			}
			t.Fatalf("no %s in %q", key, info)
			return 0
		}
		before := c.value("INFO", "replication").(string)
		c.int("LOCK", "info", "alice")
		after := c.value("INFO", "replication").(string)
		if b, a := field(before, "applied_index"), field(after, "applied_index"); a <= b {
			t.Errorf("applied_index %d after a LOCK, was %d", a, b)
		}
		// The published commit index may trail the applied one for a moment
		// (replication stores it after applying), but catches up.
		poll(t, "commit_index to reach applied_index", func() bool {
			info := c.value("INFO", "replication").(string)
			return field(info, "commit_index") >= field(after, "applied_index")
		})
	})

	t.Run("INFO replication is only that section", func(t *testing.T) {
		c := c.with(t)
		for _, arg := range []string{"replication", "REPLICATION", "Replication"} {
			info := c.value("INFO", arg).(string)
			if !strings.HasPrefix(info, "# Replication\r\nrole:leader\r\nnode_id:1\r\nleader_id:1\r\n") || strings.Count(info, "# ") != 1 {
				t.Errorf("INFO %s:\n%s", arg, info)
			}
		}
	})

	t.Run("INFO of several sections", func(t *testing.T) {
		c := c.with(t)
		info := c.value("INFO", "server", "keyspace").(string)
		if !strings.Contains(info, "# Server\r\n") || !strings.Contains(info, "# Keyspace\r\n") || strings.Count(info, "# ") != 2 {
			t.Errorf("INFO server keyspace:\n%s", info)
		}
	})

	t.Run("INFO of an unknown section is empty", func(t *testing.T) {
		c.with(t).expect("$0\r\n\r\n", "INFO", "nosuch")
	})

	t.Run("INFO keyspace counts locks, in Redis's db0 line too", func(t *testing.T) {
		c := c.with(t)
		want := func(n int64) string {
			if n == 0 { // Redis has no db0 line for an empty database
				return bulk("# Keyspace\r\nlocks:0\r\nwaiters:0\r\nshared_locks:0\r\n")
			}
			return bulk(fmt.Sprintf("# Keyspace\r\ndb0:keys=%d,expires=0,avg_ttl=0\r\nlocks:%d\r\nwaiters:0\r\nshared_locks:0\r\n", n, n))
		}
		n := c.int("DBSIZE")
		if n == 0 {
			t.Fatal("no lock held")
		}
		c.expect(want(n), "INFO", "keyspace")
		c.expect(":1\r\n", "DEL", "info")
		c.expect(want(n-1), "INFO", "keyspace")
	})
}

func TestClientCommands(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	id := c.int("CLIENT", "ID")

	t.Run("CLIENT ID is unique per connection", func(t *testing.T) {
		d := dial(t, srv)
		if other := d.int("client", "id"); other == id || other <= 0 {
			t.Fatalf("ids %d and %d", id, other)
		}
	})
	t.Run("CLIENT GETNAME without a name is null", func(t *testing.T) {
		c.with(t).expect("$-1\r\n", "CLIENT", "GETNAME")
	})
	t.Run("CLIENT SETNAME then GETNAME", func(t *testing.T) {
		c := c.with(t)
		c.expect("+OK\r\n", "CLIENT", "SETNAME", "worker-7")
		c.expect(bulk("worker-7"), "CLIENT", "GETNAME")
	})
	t.Run("CLIENT SETNAME refuses spaces and keeps the name", func(t *testing.T) {
		c := c.with(t)
		c.expect("-ERR Client names cannot contain spaces, newlines or special characters.\r\n", "CLIENT", "SETNAME", "a b")
		c.expect(bulk("worker-7"), "CLIENT", "GETNAME")
	})
	t.Run("CLIENT SETINFO", func(t *testing.T) {
		c := c.with(t)
		c.expect("+OK\r\n", "CLIENT", "SETINFO", "LIB-NAME", "go-redis(test)")
		c.expect("+OK\r\n", "CLIENT", "SETINFO", "lib-ver", "9.0.0")
		c.expect("-ERR Unrecognized option 'FOO'\r\n", "CLIENT", "SETINFO", "FOO", "x")
		c.expect("-ERR LIB-NAME cannot contain spaces, newlines or special characters.\r\n", "CLIENT", "SETINFO", "lib-name", "a b")
		c.expect(arityErr("client|setinfo"), "CLIENT", "SETINFO", "LIB-NAME")
	})
	t.Run("CLIENT INFO describes this connection", func(t *testing.T) {
		c := c.with(t)
		info := c.value("CLIENT", "INFO").(string)
		for _, want := range []string{
			fmt.Sprintf("id=%d ", id), "addr=" + c.c.LocalAddr().String() + " ", "laddr=" + srv.Addr().String() + " ",
			"name=worker-7 ", "lib-name=go-redis(test) ", "lib-ver=9.0.0 ", "cmd=client ", "resp=2",
		} {
			if !strings.Contains(info, want) {
				t.Errorf("CLIENT INFO lacks %q: %q", want, info)
			}
		}
		if strings.Count(info, "\n") != 1 || !strings.HasSuffix(info, "\n") {
			t.Errorf("CLIENT INFO is not one line: %q", info)
		}
	})
	t.Run("CLIENT LIST has a line per connection", func(t *testing.T) {
		c := c.with(t)
		d := dial(t, srv)
		did := d.int("CLIENT", "ID")
		list := c.value("CLIENT", "LIST").(string)
		lines := strings.Split(strings.TrimSuffix(list, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], fmt.Sprintf("id=%d ", id)) || !strings.HasPrefix(lines[1], fmt.Sprintf("id=%d ", did)) {
			t.Fatalf("CLIENT LIST:\n%s", list)
		}
		if !strings.Contains(lines[1], "addr="+d.c.LocalAddr().String()+" ") {
			t.Fatalf("CLIENT LIST: no addr of the other connection:\n%s", list)
		}
	})
	t.Run("CLIENT HELP", func(t *testing.T) {
		if v, ok := c.with(t).value("CLIENT", "HELP").([]any); !ok || len(v) < 2 {
			t.Fatalf("CLIENT HELP = %#v", v)
		}
	})
}

func arityErr(cmd string) string {
	return "-ERR wrong number of arguments for '" + cmd + "' command\r\n"
}

func TestClientKill(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)

	tests := []struct {
		name string
		kill func(victim *rawConn, id int64) []string
		want string
	}{
		{"by ID", func(_ *rawConn, id int64) []string {
			return []string{"CLIENT", "KILL", "ID", strconv.FormatInt(id, 10)}
		}, ":1\r\n"},
		{"by ADDR", func(v *rawConn, _ int64) []string {
			return []string{"CLIENT", "KILL", "ADDR", v.c.LocalAddr().String()}
		}, ":1\r\n"},
		{"by ip:port, the old form", func(v *rawConn, _ int64) []string { return []string{"client", "kill", v.c.LocalAddr().String()} }, "+OK\r\n"},
		{"by ID and ADDR together", func(v *rawConn, id int64) []string {
			return []string{"CLIENT", "KILL", "ID", strconv.FormatInt(id, 10), "ADDR", v.c.LocalAddr().String()}
		}, ":1\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := c.with(t)
			victim := dial(t, srv)
			bystander := dial(t, srv)
			id := victim.int("CLIENT", "ID")
			c.expect(tt.want, tt.kill(victim, id)...)
			victim.expectClosed()
			bystander.expect("+PONG\r\n", "PING")
			c.expect("+PONG\r\n", "PING")
			poll(t, "the killed client to leave CLIENT LIST", func() bool {
				return !strings.Contains(c.value("CLIENT", "LIST").(string), fmt.Sprintf("id=%d ", id))
			})
		})
	}

	t.Run("no such client", func(t *testing.T) {
		c := c.with(t)
		c.expect(":0\r\n", "CLIENT", "KILL", "ID", "999999")
		c.expect(":0\r\n", "CLIENT", "KILL", "ADDR", "10.0.0.1:1")
		c.expect("-ERR No such client\r\n", "CLIENT", "KILL", "10.0.0.1:1")
		c.expect("-ERR value is not an integer or out of range\r\n", "CLIENT", "KILL", "ID", "abc")
		c.expect("-ERR No such client\r\n", "CLIENT", "KILL", "ID") // one argument: the old ip:port form
		c.expect("-ERR syntax error\r\n", "CLIENT", "KILL", "ID", "1", "ADDR")
		c.expect("-ERR syntax error\r\n", "CLIENT", "KILL", "BOGUS", "1")
		c.expect("+PONG\r\n", "PING")
	})
}

func TestHello(t *testing.T) {
	srv := startServer(t)

	helloReply := func(resp3 bool, id int64) string {
		head := "*14\r\n"
		proto := ":2\r\n"
		if resp3 {
			head, proto = "%7\r\n", ":3\r\n"
		}
		return head + bulk("server") + bulk("lockd") + bulk("version") + bulk("0.1.0") +
			bulk("proto") + proto + bulk("id") + integer(id) + bulk("mode") + bulk("standalone") +
			bulk("role") + bulk("master") + bulk("modules") + "*0\r\n"
	}

	t.Run("HELLO without a version answers in the current protocol", func(t *testing.T) {
		c := dial(t, srv)
		id := c.int("CLIENT", "ID")
		c.expect(helloReply(false, id), "HELLO")
	})
	t.Run("HELLO 2", func(t *testing.T) {
		c := dial(t, srv)
		id := c.int("CLIENT", "ID")
		c.expect(helloReply(false, id), "HELLO", "2")
		c.expect("$-1\r\n", "OWNER", "free")
	})
	t.Run("HELLO 3 answers a map, then nulls are RESP3 nulls", func(t *testing.T) {
		c := dial(t, srv)
		id := c.int("CLIENT", "ID")
		c.expect(helloReply(true, id), "HELLO", "3")
		c.expect("_\r\n", "OWNER", "free")
		c.expect("_\r\n", "LOCKINFO", "free")
		c.expect("_\r\n", "CLIENT", "GETNAME")
		c.expect("*1\r\n_\r\n", "COMMAND", "INFO", "nosuch")
		c.expect("%0\r\n", "COMMAND", "DOCS")
		if !strings.Contains(c.value("CLIENT", "INFO").(string), " resp=3") {
			t.Error("CLIENT INFO does not say resp=3")
		}
		c.int("LOCK", "h3", "alice")
		c.expect("_\r\n", "LOCK", "h3", "bob")
	})
	t.Run("HELLO 2 after HELLO 3 returns to RESP2", func(t *testing.T) {
		c := dial(t, srv)
		id := c.int("CLIENT", "ID")
		c.expect(helloReply(true, id), "HELLO", "3")
		c.expect(helloReply(false, id), "HELLO", "2")
		c.expect("$-1\r\n", "OWNER", "nobody")
	})
	t.Run("HELLO 3 SETNAME", func(t *testing.T) {
		c := dial(t, srv)
		c.value("hello", "3", "setname", "svc-1")
		c.expect(bulk("svc-1"), "CLIENT", "GETNAME")
	})
	t.Run("HELLO with an unsupported version", func(t *testing.T) {
		c := dial(t, srv)
		for _, v := range []string{"4", "1", "0", "-3"} {
			c.expect("-NOPROTO unsupported protocol version\r\n", "HELLO", v)
		}
		c.expect("$-1\r\n", "OWNER", "free") // still RESP2
	})
	t.Run("HELLO with an unknown option", func(t *testing.T) {
		c := dial(t, srv)
		c.expect("-ERR Syntax error in HELLO option 'BOGUS'\r\n", "HELLO", "3", "BOGUS")
		c.expect("-ERR Syntax error in HELLO option 'AUTH'\r\n", "HELLO", "3", "AUTH", "default")
		c.expect("$-1\r\n", "OWNER", "free") // the failed HELLO switched nothing
	})
}
