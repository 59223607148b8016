package server

import (
	"context"
	"strconv"
	"strings"
)

// cmdLeader: LEADER TRANSFER [id] moves the cluster's leadership to node
// id, or to the most caught-up voter, and replies the new leader's id once
// this node follows it (see replication.Node.TransferLeader, which bounds
// the wait). Any node may be asked. Errors: an unknown id, an id that is
// not a voter, no leader (-TRYAGAIN), a transfer that timed out. LEADER
// HELP lists the subcommands.
func (s *Server) cmdLeader(c *client, r reply, args [][]byte) {
	switch sub := strings.ToUpper(string(args[1])); {
	case sub == "HELP" && len(args) == 2:
		r.array(2)
		r.status("LEADER <subcommand> [<arg> ...]. Subcommands are:")
		r.status("TRANSFER [<id>]")
		return
	case sub != "TRANSFER":
		r.err(unknownSubcommandError{cmd: "leader", sub: string(args[1])})
		return
	}
	var target uint64
	switch len(args) {
	case 2:
	case 3:
		id, err := strconv.ParseUint(string(args[2]), 10, 16)
		if err != nil || id == 0 {
			r.err(errNotInteger)
			return
		}
		target = id
	default:
		r.err(errSyntax)
		return
	}
	lead, err := s.node.TransferLeader(context.Background(), target)
	if err != nil {
		r.err(err)
		return
	}
	r.int(int64(lead))
}
