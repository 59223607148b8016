package server

import "testing"

// Replies where lockd follows Redis's own behaviour closely enough that
// client libraries written against Redis see what they expect.
func TestRedisCompatibleEdges(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv)
	other := dial(t, srv)
	other.expect("+PONG\r\n", "PING")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"AUTH default <any> without a password", []string{"AUTH", "default", "x"}, "+OK\r\n"},
		{"AUTH other user without a password", []string{"AUTH", "bob", "x"}, wrongPass},
		{"HELLO with a non-number", []string{"HELLO", "abc"}, "-ERR Protocol version is not an integer or out of range\r\n"},
		{"leading zeros are not integers", []string{"LOCK", "z", "o", "PX", "007"}, "-ERR value is not an integer or out of range\r\n"},
		{"minus zero is not an integer", []string{"LOCK", "z", "o", "PX", "-0"}, "-ERR value is not an integer or out of range\r\n"},
		{"plus sign is not an integer", []string{"LOCK", "z", "o", "PX", "+5"}, "-ERR value is not an integer or out of range\r\n"},
		{"KILL by filter spares the caller", []string{"CLIENT", "KILL", "ADDR", c.c.LocalAddr().String()}, ":0\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.with(t).expect(tc.want, tc.args...)
		})
	}
	c.expect("+PONG\r\n", "PING")
	c.expect(":1\r\n", "CLIENT", "KILL", "ADDR", other.c.LocalAddr().String(), "SKIPME", "no")
	other.expectClosed()
	if got := c.int("DBSIZE"); got != 0 {
		t.Fatalf("DBSIZE = %d after refused commands", got)
	}
}
