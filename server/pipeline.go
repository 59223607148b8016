package server

import (
	"context"
	"time"

	"github.com/lockd/lockd/lock"
	"github.com/tidwall/redcon"
)

// maxWave bounds the writes of one pipeline that go to the cluster together.
const maxWave = 1024

// pipeline runs the commands a client pipelined, starting with first, a
// write that may join a wave. Consecutive such writes (see waveable) on
// distinct keys go to the cluster together as one wave: they share raft
// entries instead of waiting for one commit each. Anything else — a read, a
// LOCK ... WAIT, an invalid command, any command between MULTI and EXEC, a
// write naming a key already in the wave — first waits for the wave, then
// runs alone. Replies keep the pipeline's order, and every command sees the
// effects of those before it on the same key, as if they ran one by one.
func (s *Server) pipeline(conn redcon.Conn, c *client, first prepared) {
	rest := conn.ReadPipeline()
	var w wave
	for i := -1; i < len(rest); i++ {
		p := first
		if i >= 0 {
			p = s.prepare(c, rest[i].Args)
		}
		if p.waveable(c) {
			if w.names(&p.cmd) || len(w.cmds) == maxWave {
				s.flush(conn, c, &w)
			}
			w.add(p)
			continue
		}
		s.flush(conn, c, &w)
		s.dispatch(conn, c, p)
		s.observe(c, p.spec, p.start)
		if c.quit {
			return // nothing after QUIT runs, as in Redis
		}
		if c.detached.Load() {
			c.backlog = copyArgs(rest[i+1:]) // the subscriber runs them
			return
		}
	}
	s.flush(conn, c, &w)
}

// waveable reports whether p is a valid write that may join a wave: one
// with a build func, not a read, not a LOCK ... WAIT, outside MULTI.
func (p *prepared) waveable(c *client) bool {
	return p.err == nil && p.spec.build != nil && !p.spec.read && p.cmd.Op != lock.OpLockWait && p.cmd.Wait == 0 && c.tx == nil
}

// wave is the writes of a pipeline that go to the cluster together; no two
// name a key in common (a resend after a leader change may reorder them).
// The pipeline's goroutine owns it.
type wave struct {
	cmds   []lock.Command
	specs  []*commandSpec
	starts []time.Time // when each was read, for the observer
	keys   map[string]struct{}
}

// names reports whether c names a key already in the wave.
func (w *wave) names(c *lock.Command) bool {
	if _, ok := w.keys[c.Name]; ok {
		return true
	}
	if c.X != nil {
		for _, k := range c.X.Keys {
			if _, ok := w.keys[k]; ok {
				return true
			}
		}
	}
	return false
}

func (w *wave) add(p prepared) {
	if w.keys == nil {
		w.keys = make(map[string]struct{})
	}
	w.cmds = append(w.cmds, p.cmd)
	w.specs = append(w.specs, p.spec)
	w.starts = append(w.starts, p.start)
	w.keys[p.cmd.Name] = struct{}{}
	if p.cmd.X != nil {
		for _, k := range p.cmd.X.Keys {
			w.keys[k] = struct{}{}
		}
	}
}

// flush sends the wave, answers its writes in order and empties it.
func (s *Server) flush(conn redcon.Conn, c *client, w *wave) {
	if len(w.cmds) == 0 {
		return
	}
	results, errs := s.node.ExecuteAll(context.Background(), w.cmds)
	r := reply{c: conn, resp3: c.resp3.Load(), res: &c.result}
	for i, spec := range w.specs {
		c.result = ResultOK
		s.answer(r, spec, &w.cmds[i], results[i], errs[i])
		s.observe(c, spec, w.starts[i])
	}
	w.cmds, w.specs, w.starts = w.cmds[:0], w.specs[:0], w.starts[:0]
	clear(w.keys)
}

// copyArgs copies the arguments of cmds, which point into the connection's
// read buffer, for a reader of its own.
func copyArgs(cmds []redcon.Command) [][][]byte {
	out := make([][][]byte, len(cmds))
	for i, cmd := range cmds {
		out[i] = make([][]byte, len(cmd.Args))
		for j, a := range cmd.Args {
			out[i][j] = append([]byte(nil), a...)
		}
	}
	return out
}
