package replication

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// wal is the node's raft log on disk: a directory of segment files, each a
// sequence of records
//
//	[4-byte little-endian payload length][4-byte CRC-32C of payload][payload]
//
// whose payload starts with a record type: an entry, a hard state, or a
// reset (the log was replaced by a snapshot at some index). Replaying the
// records in order rebuilds the log: an entry at or below the last index
// replaces the tail from there on (raft overwrote a conflicting suffix), the
// last hard state wins, a reset drops every entry before it.
//
// One Ready's entries and hard state are appended with one write and made
// durable with one fdatasync. A hard state that differs from the last synced
// one only in its commit index is written but not synced by itself: raft's
// commit index is volatile state that a restarted node learns again from the
// leader (load never lets it fall below the snapshot), and syncing it cost a
// second flush per round on every node. Segments are preallocated so that the sync
// rarely has file metadata to write. A record that fails its length or CRC
// check ends the log: it was torn by a crash before its sync, so nothing
// acknowledged depended on it; recovery cuts the segment there.
//
// Why not a library: etcd's server/storage/wal is built on the raftpb of
// raft v3.6 (gogo types) and does not build against v3.7's pointer API;
// tidwall/wal keeps no checksums and refuses to open a log with a torn
// tail; bbolt (used before) costs two fsyncs and a B+tree update per Ready.
//
// wal is used only by the goroutine that owns the raft node.
type wal struct {
	dir      string
	sync     bool
	segSize  int64
	segs     []walSegment // oldest first; the last is open for appends
	f        *os.File     // the last segment
	off      int64        // append offset in f
	buf      []byte
	lastHard *raftpb.HardState
	// mustSync is set when buf holds records that must be durable before
	// they are acknowledged: entries, or a new term or vote.
	mustSync bool
	synced   *raftpb.HardState // the last hard state made durable
	syncs    uint64            // syncs so far (for tests)

	// syncGate, when set (tests only), is received from before each sync:
	// a test holds the disk still by leaving it open.
	syncGate atomic.Pointer[chan struct{}]
}

// walSegment is one file, named <seq>-<first>.wal in hex: seq orders the
// segments, first is the index of the first entry written to it.
type walSegment struct {
	seq   uint64
	first uint64
	path  string
}

const (
	recEntry = 1
	recHard  = 2
	recReset = 3

	defaultSegmentSize = 16 << 20
	maxRecord          = 1 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errCorruptWAL reports damage that a crash cannot explain.
var errCorruptWAL = errors.New("wal: corrupt")

// walState is what replaying the log yields.
type walState struct {
	entries []*raftpb.Entry // consecutive
	hard    *raftpb.HardState
	reset   uint64 // index of the last reset, 0 if none
}

// openWAL opens (or creates) the log in dir and replays it.
func openWAL(dir string, sync bool, segSize int64) (*wal, *walState, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	w := &wal{dir: dir, sync: sync, segSize: segSize}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range names {
		name := e.Name()
		seqS, firstS, ok := strings.Cut(strings.TrimSuffix(name, ".wal"), "-")
		if !ok || !strings.HasSuffix(name, ".wal") {
			continue
		}
		seq, err1 := strconv.ParseUint(seqS, 16, 64)
		first, err2 := strconv.ParseUint(firstS, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		w.segs = append(w.segs, walSegment{seq: seq, first: first, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(w.segs, func(a, b walSegment) int { return cmp.Compare(a.seq, b.seq) })
	st := &walState{}
	for i, s := range w.segs {
		last := i == len(w.segs)-1
		end, err := w.replay(s.path, st, last)
		if err != nil {
			return nil, nil, err
		}
		if last {
			if err := w.openTail(s.path, end); err != nil {
				return nil, nil, err
			}
		}
	}
	if len(w.segs) == 0 {
		if err := w.newSegment(1); err != nil {
			return nil, nil, err
		}
	}
	w.lastHard, w.synced = st.hard, st.hard
	return w, st, nil
}

// replay applies the records of one segment to st and returns the offset
// after the last good record. Only the last segment may end in a torn record.
func (w *wal) replay(path string, st *walState, last bool) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var off int64
	for {
		payload, n := nextRecord(data[off:])
		if n == 0 {
			break
		}
		if err := st.apply(payload); err != nil {
			return 0, fmt.Errorf("%s at %d: %w", path, off, err)
		}
		off += int64(n)
	}
	if !last && !allZero(data[off:]) {
		return 0, fmt.Errorf("%w: %s: bad record at %d before the last segment", errCorruptWAL, path, off)
	}
	return off, nil
}

// nextRecord returns the payload of the record at the front of b and the
// record's size, or 0 when b holds no whole, intact record.
func nextRecord(b []byte) ([]byte, int) {
	if len(b) < 8 {
		return nil, 0
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > maxRecord || uint64(len(b)-8) < uint64(n) {
		return nil, 0
	}
	payload := b[8 : 8+n]
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, 0
	}
	return payload, 8 + int(n)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func (st *walState) apply(p []byte) error {
	switch p[0] {
	case recEntry:
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(p[1:], e); err != nil {
			return err
		}
		idx := e.GetIndex()
		if n := len(st.entries); n > 0 {
			first := st.entries[0].GetIndex()
			switch {
			case idx < first:
				st.entries = st.entries[:0]
			case idx <= st.entries[n-1].GetIndex():
				st.entries = st.entries[:idx-first]
			case idx != st.entries[n-1].GetIndex()+1:
				return fmt.Errorf("%w: entry %d after %d", errCorruptWAL, idx, st.entries[n-1].GetIndex())
			}
		}
		st.entries = append(st.entries, e)
	case recHard:
		hs := &raftpb.HardState{}
		if err := proto.Unmarshal(p[1:], hs); err != nil {
			return err
		}
		st.hard = hs
	case recReset:
		idx, n := binary.Uvarint(p[1:])
		if n <= 0 {
			return errCorruptWAL
		}
		st.reset = idx
		st.entries = st.entries[:0]
	default:
		return fmt.Errorf("%w: record type %d", errCorruptWAL, p[0])
	}
	return nil
}

// openTail opens the last segment for appending at off, cutting off what a
// crash left after the last good record.
func (w *wal) openTail(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(off); err != nil {
		f.Close()
		return err
	}
	preallocate(f, w.segSize)
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	w.f, w.off = f, off
	return nil
}

// newSegment closes the current segment and starts one named first, which
// begins with the current hard state so that older segments can go.
func (w *wal) newSegment(first uint64) error {
	var seq uint64
	if n := len(w.segs); n > 0 {
		seq = w.segs[n-1].seq + 1
	}
	path := filepath.Join(w.dir, fmt.Sprintf("%016x-%016x.wal", seq, first))
	if w.f != nil {
		// The old segment's last records must be durable before records
		// in the new one are: replay refuses a gap before the last segment.
		if err := w.syncNow(); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	preallocate(f, w.segSize)
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	if w.f != nil {
		w.f.Close()
	}
	w.f, w.off = f, 0
	w.segs = append(w.segs, walSegment{seq: seq, first: first, path: path})
	if w.lastHard != nil {
		w.buf = appendRecord(w.buf, recHard, w.lastHard)
		return w.syncNow()
	}
	return nil
}

// save appends one Ready's entries and hard state and syncs them.
func (w *wal) save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	if err := w.write(hs, ents); err != nil {
		return err
	}
	return w.syncNow()
}

// write queues entries and hard state in memory; syncNow writes everything
// queued so far with one write and makes it durable with one sync. Several
// Readys share both.
func (w *wal) write(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	if raftEmptyHardState(hs) && len(ents) == 0 {
		return nil
	}
	if len(ents) > 0 && w.off+int64(len(w.buf)) >= w.segSize {
		if err := w.newSegment(ents[0].GetIndex()); err != nil {
			return err
		}
	}
	for _, e := range ents {
		w.buf = appendRecord(w.buf, recEntry, e)
	}
	if len(ents) > 0 {
		w.mustSync = true
	}
	if !raftEmptyHardState(hs) {
		w.buf = appendRecord(w.buf, recHard, hs)
		w.lastHard = proto.Clone(hs).(*raftpb.HardState)
		if hs.GetTerm() != w.synced.GetTerm() || hs.GetVote() != w.synced.GetVote() {
			w.mustSync = true
		}
	}
	return nil
}

// flush writes what is queued and syncs it if it must be durable: it holds
// entries or a new term or vote (see wal). A commit index alone is written
// without a sync; the next sync makes it durable too.
func (w *wal) flush() error {
	if w.mustSync {
		return w.syncNow()
	}
	return w.writeBuf()
}

// syncNow writes what is queued and, unless syncing is off, syncs it.
func (w *wal) syncNow() error {
	if err := w.writeBuf(); err != nil {
		return err
	}
	if g := w.syncGate.Load(); g != nil {
		<-*g
	}
	if w.sync {
		if err := fdatasync(w.f); err != nil {
			return err
		}
		w.syncs++
	}
	w.mustSync, w.synced = false, w.lastHard
	return nil
}

// reset records that a snapshot at index replaced the whole log, in a new
// segment, and deletes the older ones.
func (w *wal) reset(index uint64) error {
	if err := w.newSegment(index + 1); err != nil {
		return err
	}
	start := len(w.buf)
	w.buf = binary.AppendUvarint(append(w.buf, 0, 0, 0, 0, 0, 0, 0, 0, recReset), index)
	sealRecord(w.buf[start:])
	if err := w.syncNow(); err != nil {
		return err
	}
	return w.dropBefore(len(w.segs) - 1)
}

// compact deletes the segments that hold only entries before index.
func (w *wal) compact(index uint64) error {
	keep := 0
	for keep+1 < len(w.segs) && w.segs[keep+1].first <= index {
		keep++
	}
	return w.dropBefore(keep)
}

// dropBefore deletes segments [0, i).
func (w *wal) dropBefore(i int) error {
	for _, s := range w.segs[:i] {
		if err := os.Remove(s.path); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	w.segs = slices.Delete(w.segs, 0, i)
	return nil
}

// writeBuf writes the queued records at the end of the current segment.
func (w *wal) writeBuf() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.f.WriteAt(w.buf, w.off); err != nil {
		return err
	}
	w.off += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

func (w *wal) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// appendRecord appends m as a record of type t.
func appendRecord(b []byte, t byte, m proto.Message) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, t)
	b, err := proto.MarshalOptions{}.MarshalAppend(b, m)
	if err != nil {
		panic(fmt.Sprintf("wal: marshal: %v", err)) // generated code cannot fail
	}
	sealRecord(b[start:])
	return b
}

// sealRecord fills in the length and CRC of the record that is all of r.
func sealRecord(r []byte) {
	payload := r[8:]
	binary.LittleEndian.PutUint32(r, uint32(len(payload)))
	binary.LittleEndian.PutUint32(r[4:], crc32.Checksum(payload, crcTable))
}

// preallocate extends f to size bytes of written zeros, so that appending
// records overwrites allocated, initialized blocks and fdatasync has no file
// metadata to write (fallocate would leave "unwritten" extents, whose first
// write is a metadata change). Failure only costs speed.
func preallocate(f *os.File, size int64) {
	st, err := f.Stat()
	if err != nil || st.Size() >= size {
		return
	}
	zeros := make([]byte, 1<<20)
	for off := st.Size(); off < size; off += int64(len(zeros)) {
		n := min(int64(len(zeros)), size-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return
		}
	}
}

// fdatasync syncs f's data (and the metadata needed to read it back). It
// goes through SyscallConn so that it is safe against a concurrent Close.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = syscall.Fdatasync(int(fd)); serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
