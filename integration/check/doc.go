// Package check holds the checkers of lockd's Jepsen-style verification suite: a concurrent
// history recorder, a linearizability checker for lock operations (built on porcupine), a
// fencing-token checker, and a fenced in-memory store for the end-to-end lease test.
//
// The package owns no cluster, client or nemesis; the suite drives those and hands this
// package what it observed. Everything here is pure analysis except History and Store,
// which are the two shared objects the suite's client goroutines touch.
//
// # Histories
//
// An Op is one LOCK, UNLOCK, OWNER, SET NX, MLOCK or MUNLOCK (or, in a history of their
// own, one RWLOCK, RWUNLOCK, RWINFO, SEMLOCK, SEMUNLOCK or SEMINFO) as a client saw it: who
// sent it, its arguments, when it was called and when it returned (monotonic nanoseconds from
// History.Now), and its outcome.
// An op whose outcome the client cannot know (timeout, connection error, -TRYAGAIN "outcome
// unknown") has StatusUnknown: it may or may not have taken effect, at any time after its
// call, and it is never a failure. An op that certainly did not take effect (a -TRYAGAIN
// "no leader" reply, which PROTOCOL.md guarantees was not applied) may be recorded as
// StatusFailed, which the checkers ignore; recording it as Unknown is only weaker.
//
// The linearizability search is exponential in the worst case, mostly in the number of
// indeterminate ops per lock that overlap each other. Failed instead of Unknown where the
// protocol allows it, and rotating lock names during a long run (so each name's history
// stays a few hundred ops), keep it fast; a search that runs out of time is reported as
// undecided (ErrUndecided), never as a pass or a failure.
//
// # Checkers
//
//   - CheckLinearizable checks each lock name's sub-history against a sequential mutex
//     with fencing tokens (see model.go). With final reads (History.FinalReads: an OWNER
//     of every lock after all nodes were restarted) it also proves durability. A history of
//     read/write locks and semaphores is checked against their model (sharedmodel.go):
//     never a writer with a reader or a second writer, never more than limit holders,
//     rising tokens, no stale INFO; with History.FinalInfo, durability too.
//   - CheckGroups checks names used together (MLOCK, MUNLOCK, and LOCK, UNLOCK, OWNER on
//     each) group by group against mutexes of which MLOCK takes several at once, all or
//     none (see group.go); with final reads it too proves durability.
//   - CheckLockDelay checks that no name was granted to another owner inside the
//     lock-delay of a leased hold whose lease ran out (plain Go: real time bounds the
//     table's clock).
//   - CheckFencing checks the cluster-wide token order across all names, LOCK's, MLOCK's,
//     read/write locks' and semaphores' grants together.
//   - Store.CheckIncrements checks that no acknowledged fenced write was lost.
//
// Checkers return nil, or an error that matches one sentinel (ErrNotLinearizable,
// ErrUndecided, ErrFencing, ErrLockDelay, ErrLostWrite, ErrBadHistory) under errors.Is and
// names the lock, resource and ops involved.
//
// # Concurrency
//
// History and Store are safe for concurrent use by any number of goroutines. A Pending
// (one op in flight) belongs to the goroutine that began it and is finished at most once.
// Checker functions take a snapshot ([]Op), never modify it, and may run concurrently
// with each other and with recording; they start no goroutine that outlives the call
// (porcupine's workers stop at the check's timeout).
package check
