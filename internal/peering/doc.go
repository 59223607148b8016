// Package peering is the link between the members of a lockd cluster: each
// node dials every other member (an outbound link per peer, peer.go) and
// accepts them on its cluster port (inbound.go). Its node reaches it through
// a Transport (Send, Forward, Peers, Close) and is reached through a Handler
// it implements (replication's Node does); peering knows frames, its node
// knows raft and commands.
//
// Every connection opens with a challenge-response (handshake.go): HELLO,
// CHALLENGE, AUTH, VERDICT, where each side proves with an HMAC-SHA256 over
// both fresh nonces, both ids and the cluster id that it holds the shared
// secret, which never crosses the wire. Any failure is answered
// "-ERR refused", whatever failed. Then each side vets the other's data
// directory incarnation (Handler.CheckPeer): a node that lost its state is
// refused with a verdict it can trust (LOSTSTATE), and stops
// (Handler.LostState). At most 32 connections may be in their handshake at
// once (more are closed at accept), and the handshake's messages are held to
// small RESP limits within 2 s.
//
// After the handshake the dialer writes frames, RESP arrays, and the listener
// writes nothing back:
//
//	RAFT <raftpb.Message>          any raft message but a snapshot, ≤ 4 MiB
//	FORWARD <lock.Command>         a client command for the leader, ≤ 256 KiB
//	FORWARDS <lock.Command>...     client commands for the leader, back to
//	                               back in one argument: ≤ 256 KiB and
//	                               ≤ 1024 commands (maxForwardBatch)
//	ADMIN <payload>                a membership change request or its
//	                               answer (the node's encoding), ≤ 4 KiB
//	SNAP <raftpb.Message> <size>   a snapshot message without its data,
//	SNAPDATA <chunk>               then its data in chunks of at most 1 MiB,
//	SNAPEND <crc32c>               then the CRC-32C of the whole data.
//
// A snapshot's size is bounded by Config.MaxSnapshotBytes, and its data is
// delivered (Handler.Step) only whole and with a matching checksum. Raft
// messages must come from the peer, be addressed to this node and not be
// raft's local types; anything else drops the connection. A member may hold
// 2 authenticated connections: a third closes its oldest.
//
// The listener writes one thing after its verdict: FEATURES FORWARDS, the
// frames it reads beyond FORWARD (features.go). A dialer sends FORWARDS
// frames only to a listener that said so, and an older dialer discards it,
// so a cluster of two versions keeps forwarding during a rolling upgrade.
//
// Outbound, Send and Forward never block: each peer has a queue bounded in
// frames (Config.QueueLen) and in bytes (16 MiB), and a full queue drops the
// frame (counted in PeerStatus.Dropped). The link's goroutine dials with
// backoff (50 ms to 1 s), then writes queued frames in batches of about
// 256 KiB with one write each; forwarded commands taken from the queue
// together go in one FORWARDS frame (forwards.go), and before it takes them
// the link lets the goroutines that are runnable go first, so that commands
// of other clients arriving at the same moment join them (a yield, never a
// timer: a lone command goes at once, as a FORWARD frame); a snapshot is streamed in chunks, each write
// with its own 2 s deadline. A lost link is reported
// (Handler.ReportUnreachable), and so is each snapshot sent or failed
// (Handler.ReportSnapshot).
//
// With Config.TLS the cluster port is mutual TLS 1.3 (tls.go) and all of
// the above runs inside it: each side verifies the other's certificate
// against the CA and for the host of that member's cluster address, and the
// secret handshake still runs, so a member needs both. TLS then also
// authenticates and encrypts the frames; without it they are not
// authenticated one by one.
//
// The members change at runtime (Transport.SetPeers): a new member gets a
// link, and a removed one loses its link and its inbound connections, and
// its handshakes are refused from then on.
package peering
