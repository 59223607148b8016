package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/lockd/lockd/replication"
)

// restoreUsage opens lockd restore's help.
const restoreUsage = `usage: lockd restore --from FILE --data-dir DIR --id N [--peers 1=host:port,...] [--cluster-id ID]

Seeds the empty (or missing) data directory DIR of node N of a new cluster
from a backup file written by BACKUP. Seed every member from the same file,
each with its own --id and --data-dir and the same --peers, then start them
with the same --id, --data-dir, --peers and --cluster-id. The new cluster has
the backup's locks, tokens, leases and scripts; a lease keeps the time it had
left at the backup, counted from the new cluster's first leader.
`

// runRestore is lockd restore: it exits 0 when the directory is seeded, 1
// when the backup or the directory is refused, 2 for bad flags.
func runRestore(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lockd restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, restoreUsage)
		fs.PrintDefaults()
	}
	from := fs.String("from", "", "the backup file")
	dataDir := fs.String("data-dir", "", "the data directory to seed; it must not exist or be empty")
	id := fs.Uint64("id", 0, "the node's id, one of --peers")
	peers := fs.String("peers", "", "the new cluster's members as for lockd --peers (default: this node alone)")
	clusterID := fs.String("cluster-id", "", "the new cluster's id; it must be the backup's (default: the backup's)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	bad := func(err error) int {
		fmt.Fprintln(stderr, "lockd restore:", err)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return bad(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case *from == "" || *dataDir == "" || *id == 0:
		return bad(errors.New("--from, --data-dir and --id are required"))
	}
	members := map[uint64]string{*id: ""}
	if *peers != "" {
		var err error
		if members, err = parsePeers(*peers); err != nil {
			return bad(err)
		}
	}
	info, err := replication.Restore(*from, replication.RestoreConfig{DataDir: *dataDir, ID: *id, Peers: members, ClusterID: *clusterID})
	if err != nil {
		fmt.Fprintln(stderr, "lockd restore:", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored %s (cluster %q, index %d, term %d, written by node %d, %d bytes) into %s as node %d of %v\n",
		*from, info.ClusterID, info.Index, info.Term, info.Node, info.Bytes, *dataDir, *id, slices.Sorted(maps.Keys(members)))
	return 0
}
