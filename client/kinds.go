package client

import (
	"context"
	"time"
)

// kind is what a Lock holds: a LOCK key, a read or a write hold of a
// read/write lock, or a permit of a semaphore. It names the commands that
// take, release and renew the hold. Read/write locks and semaphores live in
// a namespace of their own on the server, so their names take a slot of
// their own in the Client (slotKey): one Lock per Client and name there too,
// whichever mode (a Client that holds a read lock waits for its own Unlock
// before it takes the write lock, rather than meet the server's mode
// conflict).
type kind struct {
	lock, unlock, renew string
	extra               []any  // arguments after name and owner: READ, WRITE, the limit
	space               string // the slot namespace
	delay               bool   // takes DELAY ms (LOCK and MLOCK; RWLOCK and SEMLOCK do not)
}

var mutex = kind{lock: "LOCK", unlock: "UNLOCK", renew: "RENEW", delay: true}

func readKind() kind {
	return kind{lock: "RWLOCK", unlock: "RWUNLOCK", renew: "RWRENEW", extra: []any{"READ"}, space: "rw"}
}

func writeKind() kind {
	return kind{lock: "RWLOCK", unlock: "RWUNLOCK", renew: "RWRENEW", extra: []any{"WRITE"}, space: "rw"}
}

func semKind(limit int) kind {
	return kind{lock: "SEMLOCK", unlock: "SEMUNLOCK", renew: "SEMRENEW", extra: []any{limit}, space: "sem"}
}

// lockArgs is the command that takes the hold, before PX, WAIT and DELAY.
func (k kind) lockArgs(name, owner string) []any {
	return append([]any{k.lock, name, owner}, k.extra...)
}

// slotKey is name's key among the Client's slots.
func (k kind) slotKey(name string) string {
	if k.space == "" {
		return name
	}
	return k.space + "\x00" + name
}

// TryReadLock takes a read hold of the read/write lock name, as TryLock
// does (RWLOCK name owner READ): any number of owners may read at once, and
// none while one writes or a writer waits (no writer starvation).
func (c *Client) TryReadLock(ctx context.Context, name string, ttl time.Duration) (*Lock, error) {
	return c.try(ctx, readKind(), name, ttl)
}

// ReadLock waits for a read hold of name, as Lock does.
func (c *Client) ReadLock(ctx context.Context, name string, ttl time.Duration) (*Lock, error) {
	return c.wait(ctx, readKind(), name, ttl)
}

// TryWriteLock takes the write hold of the read/write lock name, as TryLock
// does (RWLOCK name owner WRITE): one owner, no readers.
func (c *Client) TryWriteLock(ctx context.Context, name string, ttl time.Duration) (*Lock, error) {
	return c.try(ctx, writeKind(), name, ttl)
}

// WriteLock waits for the write hold of name, as Lock does.
func (c *Client) WriteLock(ctx context.Context, name string, ttl time.Duration) (*Lock, error) {
	return c.wait(ctx, writeKind(), name, ttl)
}

// TryAcquire takes a permit of the semaphore name of limit permits, as
// TryLock does (SEMLOCK name owner limit). A limit other than the one the
// semaphore has while held is the server's error.
func (c *Client) TryAcquire(ctx context.Context, name string, limit int, ttl time.Duration) (*Lock, error) {
	return c.try(ctx, semKind(limit), name, ttl)
}

// Acquire waits for a permit of the semaphore name, as Lock does.
func (c *Client) Acquire(ctx context.Context, name string, limit int, ttl time.Duration) (*Lock, error) {
	return c.wait(ctx, semKind(limit), name, ttl)
}
