package main

import (
	"log/slog"
	"time"

	"github.com/lockd/lockd/replication"
)

// handOff runs before a leader told to stop (SIGTERM, SIGINT) closes: it
// transfers the leadership to the most caught-up voter and waits until
// another node leads, at most two election timeouts (see
// replication.Node.HandOff), so that the cluster need not wait an election
// timeout for a new leader. The node keeps serving meanwhile. A follower
// stops at once.
func handOff(n *replication.Node, log *slog.Logger) {
	start := time.Now()
	next, err := n.HandOff()
	switch {
	case err != nil:
		log.Warn("leader hand-off failed; stopping anyway", "node", n.Status().ID, "err", err, "took", time.Since(start))
	case next != 0:
		log.Info("leadership handed off", "node", n.Status().ID, "to", next, "took", time.Since(start))
	}
}
