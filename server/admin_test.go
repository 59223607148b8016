package server

import "testing"

// LEADER TRANSFER on a node alone: every request it cannot carry out is
// refused with its error, and the node still leads. (The transfers
// themselves are in replication's tests and integration's.)
func TestLeaderTransferErrors(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"LEADER"}, "-ERR wrong number of arguments for 'leader' command\r\n"},
		{"unknown subcommand", []string{"LEADER", "MOVE"}, "-ERR unknown subcommand 'MOVE'. Try LEADER HELP.\r\n"},
		{"id not a number", []string{"LEADER", "TRANSFER", "two"}, "-ERR value is not an integer or out of range\r\n"},
		{"id 0", []string{"LEADER", "TRANSFER", "0"}, "-ERR value is not an integer or out of range\r\n"},
		{"id past 65535", []string{"LEADER", "TRANSFER", "65536"}, "-ERR value is not an integer or out of range\r\n"},
		{"too many arguments", []string{"LEADER", "TRANSFER", "1", "2"}, "-ERR syntax error\r\n"},
		{"unknown node", []string{"LEADER", "TRANSFER", "9"}, "-ERR no such node: 9\r\n"},
		{"no other voter", []string{"leader", "transfer"}, "-ERR node is not a voter: no voter but the leader\r\n"},
		{"to itself", []string{"LEADER", "TRANSFER", "1"}, ":1\r\n"},
		{"help", []string{"LEADER", "HELP"}, "*2\r\n+LEADER <subcommand> [<arg> ...]. Subcommands are:\r\n+TRANSFER [<id>]\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.expect(tt.want, tt.args...)
			if st := srv.Node().Status(); st.Role != "leader" {
				t.Errorf("after %v the node is %s", tt.args, st.Role)
			}
		})
	}
}
