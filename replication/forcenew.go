package replication

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/lockd/lockd/internal/datadir"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// forceNewCluster makes a node restarted with Config.ForceNewCluster the
// only member of its cluster, keeping its state (etcd's
// --force-new-cluster), for when a majority is gone for good. Start calls
// it after recover, before raft starts. The members at the end of the log
// are read from its snapshot and the conf changes of its log; one conf
// change entry per other member that removes it is appended, in the node's
// current term, and the commit index moves past them. The whole log is
// kept and committed: the commit index on disk may lag what was committed
// (it is written without a sync of its own), so cutting the log there
// could drop acknowledged writes, while committing entries whose outcome
// was never known is what their clients were told may happen. Raft then
// replays the entries like any change: the node is the sole voter and
// elects itself. The entries are written and synced before raft starts,
// so a crash meanwhile leaves either the old state or the new.
func (n *Node) forceNewCluster() error {
	hs, _, err := n.mem.InitialState()
	if err != nil {
		return err
	}
	end, _ := n.mem.LastIndex()
	roles, err := n.recoveredRoles()
	if err != nil {
		return err
	}
	self := n.cfg.ID
	if roles[self] == "" {
		return fmt.Errorf("--force-new-cluster: node %d is not a member in its own data directory (removed?)", self)
	}
	var changes []*raftpb.ConfChange
	if roles[self] == "learner" {
		changes = append(changes, &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(self)})
	}
	for _, id := range slices.Sorted(maps.Keys(roles)) {
		if id != self {
			changes = append(changes, &raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)})
		}
	}
	if len(changes) == 0 {
		return nil // alone already
	}
	term := max(hs.GetTerm(), 1)
	out := make([]*raftpb.Entry, len(changes))
	for i, cc := range changes {
		data, err := proto.Marshal(cc)
		if err != nil {
			return err
		}
		out[i] = &raftpb.Entry{Type: raftpb.EntryConfChange.Enum(), Term: proto.Uint64(term),
			Index: proto.Uint64(end + 1 + uint64(i)), Data: data}
	}
	last := end + uint64(len(out))
	nhs := &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(hs.GetVote()), Commit: proto.Uint64(last)}
	if err := n.disk.Write(nhs, out); err != nil {
		return err
	}
	if err := n.disk.Flush(); err != nil {
		return err
	}
	if err := n.mem.Append(out); err != nil {
		return err
	}
	if err := n.mem.SetHardState(nhs); err != nil {
		return err
	}
	n.pub.commit.Store(last)
	n.log.Warn("forced a new cluster of this node alone", "removed", len(roles)-1, "commit_was", hs.GetCommit(), "log_end", end, "commit", last)
	return nil
}

// recoveredRoles returns the members at the end of the recovered log, id
// to "voter" or "learner": the snapshot's, changed by the conf change
// entries after it.
func (n *Node) recoveredRoles() (map[uint64]string, error) {
	first, _ := n.mem.FirstIndex()
	end, _ := n.mem.LastIndex()
	ents, err := n.mem.Entries(first, end+1, 1<<62)
	if err != nil && !errors.Is(err, raft.ErrCompacted) {
		return nil, err
	}
	roles := map[uint64]string{}
	if m := n.members.Load(); m != nil { // the snapshot's; nil without one
		for _, id := range m.cs.GetVoters() {
			roles[id] = "voter"
		}
		for _, id := range m.cs.GetLearners() {
			roles[id] = "learner"
		}
	}
	for _, e := range ents {
		if e.GetType() != raftpb.EntryConfChange {
			continue
		}
		cc := &raftpb.ConfChange{}
		if proto.Unmarshal(e.GetData(), cc) != nil || cc.GetNodeId() == raft.None {
			continue
		}
		switch cc.GetType() {
		case raftpb.ConfChangeAddNode:
			roles[cc.GetNodeId()] = "voter"
		case raftpb.ConfChangeAddLearnerNode:
			if roles[cc.GetNodeId()] == "" {
				roles[cc.GetNodeId()] = "learner"
			}
		case raftpb.ConfChangeRemoveNode:
			delete(roles, cc.GetNodeId())
		}
	}
	return roles, nil
}

// checkForceNew refuses ForceNewCluster on an empty data directory.
func checkForceNew(rec *datadir.Recovered) error {
	if rec.Empty() {
		return errors.New("--force-new-cluster: the data directory is empty; nothing to keep")
	}
	return nil
}
