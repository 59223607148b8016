package datadir

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// Identity names a data directory's owner: the cluster and node it was
// created for, and its incarnation, a random id made when the directory
// was created. A node that lost its directory comes back with another
// incarnation, which lets its peers tell it from its old self.
type Identity struct {
	ClusterID   string
	NodeID      uint64
	Incarnation string
}

// IDBlock is how many request ids one reservation covers. A restarted node
// starts at the next block, so no id is used twice, whatever the clock says.
const IDBlock = 1 << 24

// nodeFile is the JSON form of the node file: the identity, the request
// ids reserved so far, and the incarnation each peer had when this node
// first authenticated it. The file ends with a line "crc32c <hex>" over the
// JSON before it.
type nodeFile struct {
	Format      int               `json:"format"`
	ClusterID   string            `json:"cluster_id"`
	NodeID      uint64            `json:"node_id"`
	Incarnation string            `json:"incarnation"`
	IDsReserved uint64            `json:"ids_reserved"`
	Peers       map[string]string `json:"peers,omitempty"`
}

// identity owns the node file.
//
// Concurrency: every method may be called from any goroutine.
type identity struct {
	path string
	mu   sync.Mutex
	f    nodeFile
}

// createIdentity makes a new node file for an empty directory.
func createIdentity(path, clusterID string, nodeID uint64) (*identity, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	id := &identity{path: path, f: nodeFile{
		Format: formatVersion, ClusterID: clusterID, NodeID: nodeID, Incarnation: hex.EncodeToString(b[:]),
	}}
	return id, id.store()
}

// loadIdentity reads the node file and checks that it belongs to clusterID
// and nodeID.
func loadIdentity(path, clusterID string, nodeID uint64) (*identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndex(data, []byte("\ncrc32c "))
	if i < 0 {
		return nil, &CorruptError{File: path, Why: "no checksum line"}
	}
	want, err := strconv.ParseUint(string(bytes.TrimSpace(data[i+8:])), 16, 32)
	if err != nil || uint32(want) != checksum(data[:i]) {
		return nil, &CorruptError{File: path, Why: "checksum mismatch"}
	}
	id := &identity{path: path}
	if err := json.Unmarshal(data[:i], &id.f); err != nil {
		return nil, &CorruptError{File: path, Why: err.Error()}
	}
	switch {
	case id.f.Format != formatVersion:
		return nil, fmt.Errorf("%s: format version %d; this lockd reads version %d", path, id.f.Format, formatVersion)
	case id.f.ClusterID != clusterID:
		return nil, fmt.Errorf("%s belongs to cluster %q, not %q: start the node with its own cluster id and data directory", path, id.f.ClusterID, clusterID)
	case id.f.NodeID != nodeID:
		return nil, fmt.Errorf("%s belongs to node %d, not node %d: start each node on its own data directory", path, id.f.NodeID, nodeID)
	case id.f.Incarnation == "":
		return nil, &CorruptError{File: path, Why: "no incarnation"}
	}
	return id, nil
}

// store writes the node file atomically. The caller holds mu or owns id.
func (id *identity) store() error {
	body, err := json.MarshalIndent(&id.f, "", "  ")
	if err != nil {
		return err
	}
	body = fmt.Appendf(body, "\ncrc32c %08x\n", checksum(body))
	return writeFileSync(id.path, body)
}

func (id *identity) identity() Identity {
	id.mu.Lock()
	defer id.mu.Unlock()
	return Identity{ClusterID: id.f.ClusterID, NodeID: id.f.NodeID, Incarnation: id.f.Incarnation}
}

// reserveIDs persists the reservation of the next IDBlock request ids and
// returns the first one; ids [first, first+IDBlock) are then this process's
// to use.
func (id *identity) reserveIDs() (uint64, error) {
	id.mu.Lock()
	defer id.mu.Unlock()
	first := id.f.IDsReserved
	if first > 1<<48-IDBlock {
		return 0, errors.New("datadir: request ids exhausted")
	}
	id.f.IDsReserved = first + IDBlock
	if err := id.store(); err != nil {
		id.f.IDsReserved = first
		return 0, err
	}
	return first, nil
}

// skipIDs makes the next reservation start past sequence number past.
func (id *identity) skipIDs(past uint64) error {
	id.mu.Lock()
	defer id.mu.Unlock()
	next := (past/IDBlock + 1) * IDBlock
	if next <= id.f.IDsReserved {
		return nil
	}
	if next > 1<<48-IDBlock {
		return errors.New("datadir: request ids exhausted")
	}
	old := id.f.IDsReserved
	id.f.IDsReserved = next
	if err := id.store(); err != nil {
		id.f.IDsReserved = old
		return err
	}
	return nil
}

// checkPeer compares the incarnation a peer presents with the one this node
// recorded when it first met that peer. A peer not met before is recorded
// (trust on first use). It returns an error that says what happened when
// the peer is not the one this node knew.
func (id *identity) checkPeer(peer uint64, incarnation string) error {
	if incarnation == "" {
		return errors.New("no incarnation")
	}
	key := strconv.FormatUint(peer, 10)
	id.mu.Lock()
	defer id.mu.Unlock()
	known, ok := id.f.Peers[key]
	switch {
	case ok && known == incarnation:
		return nil
	case ok:
		return &LostStateError{Node: peer, Known: known, Presented: incarnation}
	}
	if id.f.Peers == nil {
		id.f.Peers = map[string]string{}
	}
	id.f.Peers[key] = incarnation
	if err := id.store(); err != nil {
		delete(id.f.Peers, key)
		return err
	}
	return nil
}

// LostStateError says that a node presented another data directory than the
// one its peers knew it by: it lost its state (a wiped or replaced data
// directory) and must not take part as its old self.
type LostStateError struct {
	Node             uint64
	Known, Presented string
}

func (e *LostStateError) Error() string {
	return fmt.Sprintf("node %d presented data directory incarnation %s, but the cluster knows node %d as incarnation %s: "+
		"its data directory was wiped or replaced, so it lost the votes and log entries it had promised; "+
		"it must not rejoin under its old identity (see docs/DESIGN.md, Recovering a node)",
		e.Node, short(e.Presented), e.Node, short(e.Known))
}

func short(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}
