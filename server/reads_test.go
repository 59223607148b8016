package server

import "testing"

func TestClientReadsMode(t *testing.T) {
	srv := startServer(t)
	rc := dial(t, srv)
	rc.expect("+OK\r\n", "SET", "k", "v")
	rc.expect("+OK\r\n", "CLIENT", "READS", "linearizable")
	rc.expect(bulk("v"), "GET", "k")
	rc.expect("*1\r\n"+bulk("v"), "MGET", "k")
	rc.expect(integer(1), "EXISTS", "k")
	rc.expect("+OK\r\n", "CLIENT", "READS", "LOCAL")
	rc.expect(bulk("v"), "GET", "k")
	rc.expect("-ERR CLIENT READS takes LINEARIZABLE or LOCAL\r\n", "CLIENT", "READS", "sometimes")
}
