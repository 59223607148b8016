package peering

import (
	"net"
	"sync/atomic"
)

// What a listener can read beyond the first version of the frames is
// announced, not assumed, so that a cluster may run two versions during a
// rolling upgrade: right after its VERDICT OK, the listener writes
//
//	FEATURES FORWARDS
//
// saying that it reads FORWARDS frames. A dialer sends FORWARDS frames on
// that connection only once it read this; a listener of an older version
// writes nothing, and hears only FORWARD frames. A dialer of an older
// version never reads what the listener writes, and discards it.

// featureForwards is the feature of reading FORWARDS frames.
const featureForwards = "FORWARDS"

// announceFeatures writes the listener's FEATURES message to a dialer it
// just admitted.
func (t *Transport) announceFeatures(conn net.Conn) error {
	if t.noFeatures {
		return nil
	}
	return writeArray(conn, []byte("FEATURES"), []byte(featureForwards))
}

// readFeatures reads what the listener writes after its verdict, until the
// connection ends or breaks the handshake's limits, and sets batches when
// it announces FORWARDS. Anything else it writes is ignored.
func readFeatures(h *handshakeConn, batches *atomic.Bool) {
	for {
		cmd, err := h.rd.ReadCommand()
		if err != nil {
			return
		}
		if len(cmd.Args) > 0 && string(cmd.Args[0]) == "FEATURES" {
			for _, f := range cmd.Args[1:] {
				if string(f) == featureForwards {
					batches.Store(true)
				}
			}
		}
	}
}
