package server

import (
	"context"
	"errors"
	"time"

	"github.com/lockd/lockd/acl"
	"github.com/lockd/lockd/replication"
)

// A node that restarts or joins checks AUTH and its commands against the
// users it has applied so far: the ACL changes in the part of the log it
// has yet to apply (a restarted node's tail; everything, for a node that
// joins) are not among them, so for a moment it may admit a password since
// changed, a user since deleted, or an open default user since closed. So
// connections authenticated before the node caught up are provisional:
// awaitCurrentUsers waits until the node has applied everything committed
// in its cluster when it asks (a linearizable read's barrier), then closes
// every provisional connection unless the users are still those it was
// admitted under. Meanwhile the node can do little for an intruder: it
// cannot answer reads before it catches up, and its writes go to a leader
// that applies them in the log after the ACL changes it has missed, which
// is the window this closes.

// usersRetry is how long awaitCurrentUsers waits between attempts.
const usersRetry = 100 * time.Millisecond

// awaitCurrentUsers runs from New until the node has caught up once (or
// the server closes), then settles the provisional connections.
func (s *Server) awaitCurrentUsers() {
	defer s.serving.Done()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReadTimeout)
		err := s.node.ReadBarrier(ctx)
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, replication.ErrClosed) {
			return
		}
		select {
		case <-s.stopPoll:
			return
		case <-time.After(usersRetry):
		}
	}
	if n := s.usersNowCurrent(); n > 0 {
		s.log.Info("caught up: closed connections authenticated under the users applied before", "connections", n)
	}
}

// usersNowCurrent marks the users current and closes the provisional
// connections admitted under other users than the current ones; it returns
// how many it closed.
func (s *Server) usersNowCurrent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.usersReady.Store(true)
	cur := s.currentUsers()
	n := 0
	for _, c := range s.clients {
		c.mu.Lock()
		stale := c.provisional && c.authUsers != cur
		c.provisional, c.authUsers = false, nil
		c.mu.Unlock()
		if stale {
			c.nc.Close()
			n++
		}
	}
	return n
}

// currentUsers is the table's users (nil without a node: protected mode's
// unit test).
func (s *Server) currentUsers() *acl.Users {
	if s.node == nil {
		return nil
	}
	return s.node.Table().Users()
}

// provisional records, until the node has caught up, the users c was
// admitted under. The caller holds s.mu.
func (s *Server) provisional(c *client) {
	if s.usersReady.Load() {
		return
	}
	u := s.currentUsers()
	c.mu.Lock()
	c.provisional, c.authUsers = true, u
	c.mu.Unlock()
}
