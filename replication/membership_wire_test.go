package replication

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/lockd/lockd/lock"
)

// A snapshot's data carries the members' addresses before the table's
// bytes; a table snapshot of an older lockd (no members section) reads as
// the table alone; a damaged section is refused.
func TestSnapshotDataMembersSection(t *testing.T) {
	table := lock.NewTable().Snapshot()
	addrs := map[uint64]string{1: "10.0.0.1:7000", 2: "10.0.0.2:7000", 65535: "[::1]:7000"}
	data := appendSnapshotData(nil, addrs, table)
	got, rest, err := splitSnapshotData(data)
	if err != nil || !maps.Equal(got, addrs) || !bytes.Equal(rest, table) {
		t.Fatalf("round trip: %v, %d table bytes, %v", got, len(rest), err)
	}
	if got, rest, err := splitSnapshotData(table); err != nil || got != nil || !bytes.Equal(rest, table) {
		t.Fatalf("an older snapshot: %v, %d table bytes, %v; want no members and the table", got, len(rest), err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"mark alone", []byte{membersMark}},
		{"count past the limit", append([]byte{membersMark}, 0xff, 0xff, 0x7f)},
		{"address longer than the data", []byte{membersMark, 1, 1, 200, 'a'}},
		{"cut inside an id", []byte{membersMark, 2, 1, 1, 'a', 0x80}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := splitSnapshotData(tc.data); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// The ADMIN payloads and a conf change's context decode to what was
// encoded; a refusal keeps its kind across the wire.
func TestAdminPayloads(t *testing.T) {
	req, addr := uint64(3)<<48|42, "10.0.0.4:7000"
	if r, a := decodeConfContext(appendConfContext(nil, req, addr)); r != req || a != addr {
		t.Fatalf("context: %d %q", r, a)
	}
	if r, a := decodeConfContext(nil); r != 0 || a != "" {
		t.Fatalf("an older bootstrap entry's empty context: %d %q", r, a)
	}
	n := &Node{cfg: Config{ID: 3}}
	for _, want := range []error{ErrMemberExists, ErrChangePending, ErrNoQuorum, errors.New("something else")} {
		done := n.confWaits.register(req)
		n.admin(1, appendConfAnswer(nil, req, refuse(want, "text of %v", want)))
		got := <-done
		if got.Error() != "text of "+want.Error() || (slices.Contains(refusals, want) && !errors.Is(got, want)) {
			t.Fatalf("answer %v: got %v", want, got)
		}
	}
}
