// Package integration holds lockd's whole-cluster tests: real lockd
// processes (or in-process nodes) on loopback, driven by real clients
// (go-redis, redis-cli, redis-py, ioredis), through failures: kill -9,
// SIGSTOP, partitions made by proxies between nodes, restarts of everything.
//
// The package has no non-test code but this comment; the harness is in
// harness_test.go, the checkers of the verification suite in ./check.
package integration
