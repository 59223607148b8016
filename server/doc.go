// Package server is one lockd node as users see it: the RESP front end
// (redcon), the command table, argument parsing, and the one place that turns
// results and errors into RESP replies (reply.go). New assembles a whole node
// — replication, lock table, client listener — from a Config, so tests build
// nodes exactly as cmd/lockd does.
//
// Goroutines: redcon runs one goroutine per client connection and calls the
// handler on it; a handler may block in replication.Execute for at most the
// request timeout. A pipeline's consecutive writes on distinct locks are
// executed together (pipeline.go). Reads (OWNER, LOCKINFO, DBSIZE) never
// block on the network. A handler blocked in LOCK ... WAIT, for up to its
// WAIT, has a watcher goroutine read its connection meanwhile
// (clientconn.go): when the client hangs up or is killed, the request is
// withdrawn through the log and the connection closed at once; what the
// client pipelined is kept for after the wait. The watcher ends, by a read
// deadline in the past, before the handler returns.
// Clients idle for Config.IdleTimeout are disconnected by a read deadline.
// Close stops accepting, closes every connection and the node.
package server
