package server

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/lockd/lockd/replication"
)

// cmdMember: MEMBER LIST | ADD id peer-addr | PROMOTE id | REMOVE id | HELP. The
// changes go to the leader from any node and return once this node has
// applied them (replication.Node.AddMember and the others); each refusal
// is an ERR reply and changes nothing.
func (s *Server) cmdMember(c *client, r reply, args [][]byte) {
	sub, n := strings.ToUpper(string(args[1])), len(args)
	var id uint64
	if n >= 3 && sub != "LIST" && sub != "HELP" {
		var err error
		if id, err = strconv.ParseUint(string(args[2]), 10, 64); err != nil || id == 0 || id > 0xffff {
			r.err(errMemberID)
			return
		}
	}
	ctx := context.Background()
	var err error
	switch {
	case sub == "LIST" && n == 2:
		s.memberList(r)
		return
	case sub == "ADD" && n == 4:
		err = s.node.AddMember(ctx, id, string(args[3]))
	case sub == "PROMOTE" && n == 3:
		err = s.node.PromoteMember(ctx, id)
	case sub == "REMOVE" && n == 3:
		err = s.node.RemoveMember(ctx, id)
	case sub == "HELP" && n == 2:
		lines := []string{
			"MEMBER <subcommand> [<arg> ...]. Subcommands are:",
			"LIST", "ADD <id> <host:port>", "PROMOTE <id>", "REMOVE <id>",
		}
		r.array(len(lines))
		for _, l := range lines {
			r.status(l)
		}
		return
	case sub == "LIST" || sub == "ADD" || sub == "PROMOTE" || sub == "REMOVE":
		r.err(arityError{cmd: "member|" + strings.ToLower(sub)})
		return
	default:
		r.err(unknownSubcommandError{cmd: "member", sub: string(args[1])})
		return
	}
	if err != nil {
		r.err(err)
		return
	}
	r.ok()
}

// memberList answers an array of [id, cluster address, role, is-leader,
// match index] per member, by id.
func (s *Server) memberList(r reply) {
	ms := s.node.Members()
	r.array(len(ms))
	for _, m := range ms {
		r.array(5)
		r.int(int64(m.ID))
		r.bulk(m.Addr)
		r.bulk(m.Role)
		r.int(int64(b2i(m.Leader)))
		r.int(int64(m.Match))
	}
}

// membersLine is INFO's members line: each member's id and role, by id.
func membersLine(ms []replication.Member) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%d=%s", m.ID, m.Role)
	}
	return "members:" + strings.Join(parts, ",")
}
