package server

import (
	"context"
	"strings"

	"github.com/lockd/lockd/lock"
	"github.com/tidwall/redcon"
)

// maxWave bounds the writes of one pipeline that go to the cluster together.
const maxWave = 1024

// pipeline runs the commands a client pipelined, starting with first, a
// write. Consecutive valid writes (LOCK without WAIT, UNLOCK, RENEW) on
// distinct lock names go to the cluster together as one wave: they share
// raft entries instead of waiting for one commit each. Anything else — a
// read, a LOCK ... WAIT, an invalid command, a second write on a name already
// in the wave — first waits for the wave, then runs alone. Replies keep the
// pipeline's order, and every command sees the effects of those before it
// on the same lock, as if they ran one by one.
func (s *Server) pipeline(conn redcon.Conn, c *client, first redcon.Command) {
	cmds := append([]redcon.Command{first}, conn.ReadPipeline()...)
	var (
		wave  []lock.Command
		specs []*commandSpec
		names = make(map[string]struct{})
	)
	flush := func() {
		if len(wave) == 0 {
			return
		}
		vs, errs := s.node.ExecuteAll(context.Background(), wave)
		r := reply{c: conn, resp3: c.resp3.Load()}
		for i, spec := range specs {
			spec.answer(r, vs[i].Value, errs[i])
		}
		wave, specs = wave[:0], specs[:0]
		clear(names)
	}
	for _, cmd := range cmds {
		spec, lc, ok := s.batchable(c, cmd)
		if !ok {
			flush()
			s.run(conn, c, cmd)
			if c.quit {
				return // nothing after QUIT runs, as in Redis
			}
			continue
		}
		if _, again := names[lc.Name]; again || len(wave) == maxWave {
			flush()
		}
		s.commands.Add(1)
		c.last.Store(spec)
		wave = append(wave, lc)
		specs = append(specs, spec)
		names[lc.Name] = struct{}{}
	}
	flush()
}

// batchable reports whether cmd is a valid write that may join a wave, and
// returns its spec and parsed command. It replies nothing.
func (s *Server) batchable(c *client, cmd redcon.Command) (*commandSpec, lock.Command, bool) {
	if len(cmd.Args) == 0 {
		return nil, lock.Command{}, false
	}
	spec := commandTable[strings.ToUpper(string(cmd.Args[0]))]
	if spec == nil || spec.parse == nil || !c.authed {
		return nil, lock.Command{}, false
	}
	if n := len(cmd.Args); (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
		return nil, lock.Command{}, false
	}
	lc, err := spec.parse(s, cmd.Args)
	if err != nil || lc.Op == lock.OpLockWait {
		return nil, lock.Command{}, false
	}
	return spec, lc, true
}
