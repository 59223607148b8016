package replication

import (
	"github.com/lockd/lockd/lock"
	"github.com/lockd/lockd/resp"
)

// scriptQueue bounds the script requests waiting on the leader; more are
// dropped and their nodes send them again.
const scriptQueue = 1024

// scriptRunner is the leader's goroutine that runs scripts. A script request
// (lock.OpScript) submitted on the leader is handed to it (see submit); it runs
// the script once, through Config.RunScript, against the leader's table, and
// proposes the script's effects (lock.OpEffects) under the request's ID.
// Scripts run one at a time, beside the raft loop, which they never hold
// up: a script that runs long delays only the scripts behind it.
type scriptRunner struct {
	n *Node
	q chan lock.Command
}

func newScriptRunner(n *Node) *scriptRunner {
	return &scriptRunner{n: n, q: make(chan lock.Command, scriptQueue)}
}

// enqueue hands a request to the goroutine; it never blocks.
func (r *scriptRunner) enqueue(c lock.Command) {
	select {
	case r.q <- c:
	default:
	}
}

// run is the goroutine. It stops with the node.
func (r *scriptRunner) run() {
	defer r.n.wg.Done()
	for {
		select {
		case c := <-r.q:
			r.n.submit(r.effects(c))
		case <-r.n.stopc:
			return
		case <-r.n.haltc:
			return
		}
	}
}

// effects runs the script of request c and returns its effects.
func (r *scriptRunner) effects(c lock.Command) lock.Command {
	var e lock.Command
	if r.n.cfg.RunScript == nil {
		e = lock.Command{Op: lock.OpEffects, X: &lock.Extra{Reply: resp.ErrorValue("ERR scripts are not available on this node")}}
	} else {
		e = r.n.cfg.RunScript(r.n.table, c)
	}
	e.Op, e.ID = lock.OpEffects, c.ID
	return e
}
