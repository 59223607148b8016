package server

import (
	"reflect"
	"strings"
	"testing"
)

// MEMBER LIST on a node alone lists it, a voter and the leader; INFO says
// so in its members line; bad MEMBER commands are refused and change
// nothing.
func TestMember(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	t.Run("LIST", func(t *testing.T) {
		var m []any
		poll(t, "MEMBER LIST to show the leader's match index", func() bool {
			got := c.with(t).value("MEMBER", "LIST").([]any)
			if len(got) != 1 {
				t.Fatalf("MEMBER LIST = %v; want one member", got)
			}
			m = got[0].([]any)
			return m[4].(int64) > 0
		})
		if !reflect.DeepEqual(m[:4], []any{int64(1), "", "voter", int64(1)}) {
			t.Fatalf("MEMBER LIST = %v; want [1 \"\" voter 1 match]", m)
		}
	})
	t.Run("INFO members line", func(t *testing.T) {
		if info := c.with(t).value("INFO", "replication").(string); !strings.Contains(info, "\r\nmembers:1=voter\r\n") {
			t.Fatalf("INFO lacks the members line:\n%s", info)
		}
	})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"MEMBER"}, "-ERR wrong number of arguments for 'member' command\r\n"},
		{[]string{"MEMBER", "FROB"}, "-ERR unknown subcommand 'FROB'. Try MEMBER HELP.\r\n"},
		{[]string{"MEMBER", "HELP"}, "*5\r\n+MEMBER <subcommand> [<arg> ...]. Subcommands are:\r\n+LIST\r\n+ADD <id> <host:port>\r\n+PROMOTE <id>\r\n+REMOVE <id>\r\n"},
		{[]string{"MEMBER", "ADD", "2"}, "-ERR wrong number of arguments for 'member|add' command\r\n"},
		{[]string{"MEMBER", "LIST", "x"}, "-ERR wrong number of arguments for 'member|list' command\r\n"},
		{[]string{"MEMBER", "ADD", "two", "127.0.0.1:7002"}, "-ERR invalid member id: want an integer 1..65535\r\n"},
		{[]string{"MEMBER", "ADD", "0", "127.0.0.1:7002"}, "-ERR invalid member id: want an integer 1..65535\r\n"},
		{[]string{"MEMBER", "ADD", "65536", "127.0.0.1:7002"}, "-ERR invalid member id: want an integer 1..65535\r\n"},
		{[]string{"MEMBER", "ADD", "2", "nohostport"}, "-ERR cluster address \"nohostport\": want host:port\r\n"},
		{[]string{"MEMBER", "ADD", "1", "127.0.0.1:7002"}, "-ERR node 1 is already a member (voter)\r\n"},
		{[]string{"MEMBER", "ADD", "2", "127.0.0.1:7002"}, "-ERR this node has no cluster listener or no cluster secret: restart it with them (--cluster-listen, --cluster-secret-file) to grow the cluster\r\n"},
		{[]string{"MEMBER", "REMOVE", "1"}, "-ERR node 1 is the last voter\r\n"},
		{[]string{"MEMBER", "REMOVE", "7"}, "-ERR node 7 is not a member\r\n"},
		{[]string{"MEMBER", "PROMOTE", "1"}, "-ERR node 1 is already a voter\r\n"},
		{[]string{"MEMBER", "PROMOTE", "7"}, "-ERR node 7 is not a member; add it first\r\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			c.with(t).expect(tc.want, tc.args...)
		})
	}
	if got := c.with(t).value("MEMBER", "LIST").([]any); len(got) != 1 {
		t.Fatalf("after the refusals MEMBER LIST = %v; want the one member", got)
	}
}
