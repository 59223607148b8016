package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Errors of this package. Compare with errors.Is.
var (
	// ErrNotAcquired: the lock (TryLock), or one of the locks (TryLockAll),
	// is held by another owner, or kept from all by a lock-delay or for a
	// queued MLOCK, or held by another Lock of the same Client.
	ErrNotAcquired = errors.New("lockd: lock held by another owner")
	// ErrNotHeld: Unlock found the lock no longer held by this owner (its
	// lease ran out, or it was released by other means), or Unlock was
	// called a second time.
	ErrNotHeld = errors.New("lockd: lock not held")
	// ErrTryAgain: the cluster had no leader or quorum, or the request
	// timed out inside it (-TRYAGAIN). The error also wraps the server's
	// reply. A LOCK is safe to repeat; Lock does so on its own.
	ErrTryAgain = errors.New("lockd: try again")
	// ErrInvalidTTL: a negative ttl, or a positive one under a millisecond.
	ErrInvalidTTL = errors.New("lockd: invalid ttl")
	// ErrInvalidDelay: the Client's WithLockDelay is negative or over an
	// hour.
	ErrInvalidDelay = errors.New("lockd: invalid lock-delay")
	// ErrInvalidNames: TryLockAll or LockAll was given no names, more than
	// 64, or one name twice.
	ErrInvalidNames = errors.New("lockd: invalid names")
)

// wrapErr is the one place that turns an error of a command into this
// package's: -TRYAGAIN wraps ErrTryAgain and the reply; context errors pass
// through unchanged; anything else is wrapped with the command and name.
func wrapErr(cmd, name string, err error) error {
	switch {
	case err == nil:
		return nil
	case isTryAgain(err):
		return fmt.Errorf("%s %q: %w: %w", cmd, name, ErrTryAgain, err)
	case isContextErr(err):
		return err
	default:
		return fmt.Errorf("lockd: %s %q: %w", cmd, name, err)
	}
}

func isTryAgain(err error) bool {
	return redis.IsTryAgainError(err) || strings.HasPrefix(err.Error(), "TRYAGAIN ")
}

// isRefusal reports whether err is a reply of the server other than
// -TRYAGAIN: the command was answered, and did not act.
func isRefusal(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, redis.Nil) && !isTryAgain(err)
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
