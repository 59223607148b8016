// Package server is one lockd node as users see it: the RESP front end
// (redcon), the command table (commands.go), argument parsing (locks.go, mlock.go,
// keys.go, scan.go, multi.go), and the one place that turns results and
// errors into RESP replies (reply.go), ACL users (acl.go checks every
// command against its connection's user; aclcmd.go is the ACL command).
// Every command is admitted (authenticated, permitted) and built by
// Server.prepare and run by Server.dispatch, alone, queued between MULTI
// and EXEC, or in a pipeline's wave. New assembles a whole node —
// replication, lock table, client listener — from a Config, so tests build
// nodes exactly as cmd/lockd does.
//
// Goroutines: redcon runs one goroutine per client connection and calls the
// handler on it; a handler may block in the node's Execute for at most the
// request timeout. A pipeline's consecutive writes on distinct keys are
// executed together (pipeline.go). Reads (OWNER, LOCKINFO, DBSIZE, GET, SCAN,
// ...) never block on the network: they wait at most Config.ReadTimeout for
// the local replica to catch up (catchUp). A handler blocked in LOCK ... WAIT,
// for up to its WAIT, has a watcher goroutine read its connection meanwhile
// (clientconn.go): when the client hangs up or is killed, the request is
// withdrawn through the log and the connection closed at once; what the client
// pipelined is kept for after the wait. The watcher ends, by a read deadline
// in the past, before the handler returns. Clients idle for Config.IdleTimeout
// are disconnected by a read deadline. watchUsers (acl.go) closes the
// connections of deleted users whenever the table's users change, until
// Close. Close stops accepting, closes every connection and the node.
package server
