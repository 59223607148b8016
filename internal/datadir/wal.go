package datadir

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Record types of the log. Never renumber.
const (
	recEntry = 1 // a raftpb.Entry
	recHard  = 2 // a raftpb.HardState
	recReset = 3 // uvarint index: a snapshot at index replaced the log
)

// segMagic opens every log segment, followed by the format version and a
// CRC-32C of the 12 bytes before it.
var segMagic = []byte("lockdWAL")

const (
	segHeader = 16
	// formatVersion is the version of segments, snapshot files and the
	// node file. lockd 0.1 wrote segments without a header (version 1).
	formatVersion = 2
	// DefaultSegmentSize is the size a segment is preallocated to.
	DefaultSegmentSize = 16 << 20
)

// wal is the raft log on disk: a directory of segment files, each a header
// and then records (see record.go) whose payload is a type byte and a
// message. Replaying the records in order rebuilds the log: an entry at or
// below the last index replaces the tail from there on (raft overwrote a
// conflicting suffix), the last hard state wins, a reset drops every entry
// before it.
//
// Concurrency: one goroutine uses a wal (replication's appender,
// and start-up before it).
type wal struct {
	dir     string
	sync    bool
	segSize int64
	log     *slog.Logger
	before  func() error // Options.BeforeSync

	segs     []segment // oldest first; the last is open for appends
	f        *os.File  // the last segment
	off      int64     // append offset in f
	buf      []byte
	lastHard *raftpb.HardState
	// mustSync is set when buf holds records that must be durable before
	// they are acknowledged: entries, or a new term or vote.
	mustSync bool
	synced   *raftpb.HardState // the last hard state made durable
	syncs    uint64
	unsynced int         // entries written since the last sync
	obs      LogObserver // Options.Observer; may be nil
}

// segment is one file, named <seq>-<first>.wal in hex: seq orders the
// segments, first is the index of the first entry written to it.
type segment struct {
	seq   uint64
	first uint64
	path  string
}

// logState is what replaying the log yields.
type logState struct {
	entries []*raftpb.Entry // consecutive
	hard    *raftpb.HardState
	reset   uint64 // index of the last reset, 0 if none
}

// openWAL opens (or creates) the log in dir and replays it.
func openWAL(dir string, o *Options) (*wal, *logState, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	w := &wal{dir: dir, sync: !o.NoSync, segSize: o.SegmentSize, log: o.Logger, before: o.BeforeSync, obs: o.Observer}
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
		w.segs = append(w.segs, segment{seq: seq, first: first, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(w.segs, func(a, b segment) int { return cmp.Compare(a.seq, b.seq) })
	st := &logState{}
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
// after the last good record. Only the last segment may end in a torn
// record, and only there is a tail cut; damage anywhere is an error.
func (w *wal) replay(path string, st *logState, last bool) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if len(data) < segHeader || allZero(data[:segHeader]) {
		// Created, but its header never reached the disk: only possible
		// for the newest segment, which then holds nothing.
		if last && allZero(data) {
			return -1, nil
		}
		return 0, &CorruptError{File: path, Offset: 0, Why: "segment header missing"}
	}
	if err := checkFileHeader(data, segMagic); err != nil {
		return 0, &CorruptError{File: path, Offset: 0, Why: err.Error()}
	}
	off := segHeader
	for {
		payload, n, ok := readRecord(data, off)
		if !ok {
			break
		}
		if err := st.apply(payload); err != nil {
			return 0, &CorruptError{File: path, Offset: int64(off), Why: err.Error()}
		}
		off += n
	}
	t, why := judgeTail(data, off)
	switch {
	case t == tailDamaged:
		return 0, &CorruptError{File: path, Offset: int64(off), Why: why}
	case t == tailTorn && !last:
		// A segment is synced whole before the next one is started.
		return 0, &CorruptError{File: path, Offset: int64(off), Why: why + " (in a segment before the last)"}
	case t == tailTorn:
		w.log.Warn("wal: cutting a torn tail", "file", path, "offset", off, "bytes", len(data)-off, "why", why)
	case !allZero(data[off:]):
		w.log.Warn("wal: clearing stray bytes after the end of the log", "file", path, "offset", off)
	}
	return int64(off), nil
}

// CorruptError reports damage in the data directory that a crash cannot
// explain. The node must not start on it: see the recovery section of
// docs/DESIGN.md.
type CorruptError struct {
	File   string
	Offset int64
	Why    string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("data directory damaged: %s at offset %d: %s", e.File, e.Offset, e.Why)
}

// ErrCorrupt is wrapped by every CorruptError.
var ErrCorrupt = errors.New("datadir: corrupt")

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// checkFileHeader checks the 16-byte header of a segment or snapshot file.
func checkFileHeader(data, magic []byte) error {
	if !bytes.Equal(data[:8], magic) {
		return fmt.Errorf("not a %s file", magic)
	}
	if checksum(data[:12]) != binary.LittleEndian.Uint32(data[12:16]) {
		return errors.New("file header fails its check")
	}
	if v := binary.LittleEndian.Uint32(data[8:]); v != formatVersion {
		return fmt.Errorf("format version %d; this lockd reads version %d", v, formatVersion)
	}
	return nil
}

func fileHeader(magic []byte) []byte {
	h := make([]byte, 16)
	copy(h, magic)
	binary.LittleEndian.PutUint32(h[8:], formatVersion)
	binary.LittleEndian.PutUint32(h[12:], checksum(h[:12]))
	return h
}

func (st *logState) apply(p []byte) error {
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
				return fmt.Errorf("entry %d after %d", idx, st.entries[n-1].GetIndex())
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
			return errors.New("bad reset record")
		}
		st.reset = idx
		st.entries = st.entries[:0]
	default:
		return fmt.Errorf("record type %d", p[0])
	}
	return nil
}

// openTail opens the last segment for appending at off, cutting off what a
// crash left after the last good record; off -1 means the segment's header
// is to be written first.
func (w *wal) openTail(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if off < 0 {
		if _, err := f.WriteAt(fileHeader(segMagic), 0); err != nil {
			f.Close()
			return err
		}
		off = segHeader
	}
	if err := f.Truncate(off); err != nil {
		f.Close()
		return err
	}
	if err := w.preallocateSynced(f); err != nil {
		return err
	}
	w.f, w.off = f, off
	return nil
}

// preallocateSynced grows segment f to the segment size and syncs it; on an
// error it closes f.
func (w *wal) preallocateSynced(f *os.File) error {
	preallocate(f, w.segSize)
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
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
		// in the new one are: replay refuses damage before the last segment.
		if err := w.syncNow(); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(fileHeader(segMagic), 0); err != nil {
		f.Close()
		return err
	}
	if err := w.preallocateSynced(f); err != nil {
		return err
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	if w.f != nil {
		w.f.Close()
	}
	w.f, w.off = f, segHeader
	w.segs = append(w.segs, segment{seq: seq, first: first, path: path})
	if w.lastHard != nil {
		w.buf = appendMsg(w.buf, recHard, w.lastHard)
		return w.syncNow()
	}
	return nil
}

// write queues entries and a hard state in memory; flush or syncNow writes
// everything queued so far with one write. Several Readys share both.
func (w *wal) write(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	if emptyHardState(hs) && len(ents) == 0 {
		return nil
	}
	if len(ents) > 0 && w.off+int64(len(w.buf)) >= w.segSize {
		if err := w.newSegment(ents[0].GetIndex()); err != nil {
			return err
		}
	}
	for _, e := range ents {
		w.buf = appendMsg(w.buf, recEntry, e)
	}
	if len(ents) > 0 {
		w.mustSync = true
		w.unsynced += len(ents)
	}
	if !emptyHardState(hs) {
		w.buf = appendMsg(w.buf, recHard, hs)
		w.lastHard = proto.Clone(hs).(*raftpb.HardState)
		if hs.GetTerm() != w.synced.GetTerm() || hs.GetVote() != w.synced.GetVote() {
			w.mustSync = true
		}
	}
	return nil
}

// flush writes what is queued and syncs it if it must be durable: it holds
// entries or a new term or vote. A commit index alone is written without a
// sync (see the package doc); the next sync makes it durable too.
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
	if w.before != nil {
		if err := w.before(); err != nil {
			return err
		}
	}
	if w.sync {
		start := time.Now()
		if err := fdatasync(w.f); err != nil {
			return err
		}
		w.syncs++
		if w.obs != nil {
			w.obs.Synced(time.Since(start), w.unsynced)
		}
	}
	w.unsynced = 0
	w.mustSync, w.synced = false, w.lastHard
	return nil
}

// reset records that a snapshot at index replaced the whole log, in a new
// segment, and deletes the older ones.
func (w *wal) reset(index uint64) error {
	if err := w.newSegment(index + 1); err != nil {
		return err
	}
	w.buf = appendRecord(w.buf, binary.AppendUvarint([]byte{recReset}, index))
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
	if w.obs != nil {
		w.obs.Wrote(len(w.buf))
	}
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

// appendMsg appends m as a record of type t.
func appendMsg(b []byte, t byte, m proto.Message) []byte {
	start := len(b)
	b = append(b, make([]byte, recHeader)...)
	b = append(b, t)
	b, err := proto.MarshalOptions{}.MarshalAppend(b, m)
	if err != nil {
		panic(fmt.Sprintf("datadir: marshal: %v", err)) // generated code cannot fail
	}
	b = append(b, endMark)
	sealRecord(b[start:])
	return b
}

func emptyHardState(hs *raftpb.HardState) bool {
	return hs == nil || (hs.GetTerm() == 0 && hs.GetVote() == 0 && hs.GetCommit() == 0)
}

// preallocate extends f to size bytes of written zeros, so that appending
// records overwrites allocated, initialized blocks and fdatasync has no file
// metadata to write (fallocate would leave "unwritten" extents, whose first
// write is a metadata change), and so that whatever a torn write did not
// reach reads as zeros. Failure only costs speed.
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
