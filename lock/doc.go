// Package lock is lockd's lock table: a pure, deterministic state machine.
//
// Everything that decides an outcome — grant, re-grant, refusal, release,
// renewal, expiry — happens in (*Table).Apply, from the entry alone. The
// package does no I/O, starts no goroutines and reads no clock: time arrives
// inside each Batch as the leader's stamp, and the table turns stamps into its
// own logical clock (see Table). Two tables that apply the same batches hold
// byte-identical snapshots.
//
// Concurrency: Apply, Restore and View take the table's write lock (View for
// a moment whatever the number of locks: it shares the lock tree, which is
// copied on write); the read methods (Get, Len, Waiting, Clock, NextDeadline,
// Stats, UsersChanged) take its read lock, and Users none (the ACL users are a
// set replaced whole, never changed). Any goroutine may call them; lockd calls Apply only
// from the goroutine that owns the raft node. A SnapshotView's Encode reads
// nothing the table still writes, so it may run while the table applies.
package lock
