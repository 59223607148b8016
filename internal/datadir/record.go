package datadir

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Record framing, shared by log segments and snapshot files. All integers
// are little-endian. Never change these constants: they are the format.
//
//	+---------+---------+---------+------------------+------+
//	| len u32 | crc u32 | hck u32 | payload: len B   | 0xA5 |
//	+---------+---------+---------+------------------+------+
//
// crc is the CRC-32C of the payload and hck the CRC-32C of the 8 bytes
// before it, so a record's extent can be trusted before its payload is
// read. The end mark is never zero, so the last byte of every record that
// reached the disk whole is non-zero: a zero there means "not written".
const (
	recHeader  = 12
	recTrailer = 1
	recOver    = recHeader + recTrailer
	endMark    = 0xA5
	// maxPayload bounds one record. Entries are bounded far below this by
	// the proposer. Nothing bounds a snapshot this node takes (replication's
	// Config.MaxSnapshotBytes bounds those it receives): one larger than
	// this would be written but would not read back.
	maxPayload = 1 << 31
	// sector is the unit a disk writes atomically: a torn write leaves
	// whole sectors unwritten.
	sector = 512
)

// castagnoli is the one CRC polynomial of the data directory.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// appendRecord appends payload framed as one record.
func appendRecord(dst, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, recHeader)...)
	dst = append(dst, payload...)
	dst = append(dst, endMark)
	sealRecord(dst[start:])
	return dst
}

// sealRecord fills in the header of the record that is all of r, whose
// payload and end mark are already in place.
func sealRecord(r []byte) {
	payload := r[recHeader : len(r)-recTrailer]
	binary.LittleEndian.PutUint32(r, uint32(len(payload)))
	binary.LittleEndian.PutUint32(r[4:], checksum(payload))
	binary.LittleEndian.PutUint32(r[8:], checksum(r[:8]))
}

// readRecord returns the payload of the whole, intact record at data[off:]
// and the record's size, or ok false when there is none.
func readRecord(data []byte, off int) (payload []byte, size int, ok bool) {
	n, good := header(data, off)
	if !good {
		return nil, 0, false
	}
	end := off + recHeader + n + recTrailer
	if end > len(data) || data[end-1] != endMark {
		return nil, 0, false
	}
	payload = data[off+recHeader : end-recTrailer]
	if checksum(payload) != binary.LittleEndian.Uint32(data[off+4:]) {
		return nil, 0, false
	}
	return payload, end - off, true
}

// header returns the payload length of the record header at data[off:] if
// the header is whole and its check holds.
func header(data []byte, off int) (int, bool) {
	if off < 0 || len(data)-off < recHeader {
		return 0, false
	}
	h := data[off : off+recHeader]
	if checksum(h[:8]) != binary.LittleEndian.Uint32(h[8:]) {
		return 0, false
	}
	n := binary.LittleEndian.Uint32(h)
	if n == 0 || n > maxPayload {
		return 0, false
	}
	return int(n), true
}

// tail is what lies after the last good record of a segment.
type tail int

const (
	tailClean   tail = iota // zeros (preallocated space), or nothing
	tailTorn                // an incomplete last record: a write that never finished
	tailDamaged             // anything else: the bytes were changed after they were written
)

// judgeTail decides what the bytes from off on are, off being just past the
// last good record. Only a genuinely torn tail may be cut: the record at off
// is incomplete (its header or some whole sector of it is zero, or its end
// mark is zero, or it runs past the end of the file) and no valid record
// follows anywhere after it. A record that is all there but fails its
// checksum, or a valid record after a bad one, is damage. why says what was
// found, for the error.
func judgeTail(data []byte, off int) (t tail, why string) {
	rest := data[off:]
	switch {
	case len(rest) == 0:
		return tailClean, ""
	case allZero(rest):
		return tailClean, ""
	}
	t, why = judgeRecord(data, off)
	if t == tailDamaged {
		return t, why
	}
	if at, ok := validRecordAfter(data, off+1); ok {
		return tailDamaged, fmt.Sprintf("bad bytes at %d followed by a valid record at %d", off, at)
	}
	return t, why
}

// judgeRecord tells whether the bad record at off was torn or damaged.
func judgeRecord(data []byte, off int) (tail, string) {
	if len(data)-off < recHeader {
		return tailTorn, "the file ends inside a record header"
	}
	h := data[off : off+recHeader]
	if allZero(h) {
		return tailTorn, "nothing written at the end of the log" // zeros, then stray bytes
	}
	n, good := header(data, off)
	if !good {
		if sectorZeroFrom(data, off+1, off+recHeader) {
			return tailTorn, "a record header cut at a sector boundary"
		}
		return tailDamaged, fmt.Sprintf("record header at %d fails its check", off)
	}
	end := off + recHeader + n + recTrailer
	if end > len(data) {
		return tailTorn, "the last record runs past the end of the file"
	}
	if data[end-1] == 0 {
		return tailTorn, "the last record's end was never written"
	}
	if wholeSectorZero(data, off+recHeader, end-recTrailer) {
		return tailTorn, "a sector of the last record was never written"
	}
	return tailDamaged, fmt.Sprintf("record at %d (%d bytes) fails its checksum", off, n)
}

// sectorZeroFrom reports whether some sector boundary b in [lo, hi) starts a
// sector that is zero up to its end (or the end of data).
func sectorZeroFrom(data []byte, lo, hi int) bool {
	for b := (lo + sector - 1) / sector * sector; b < hi; b += sector {
		if allZero(data[b:min(b+sector, len(data))]) {
			return true
		}
	}
	return false
}

// wholeSectorZero reports whether a whole sector within [lo, hi) is zero.
func wholeSectorZero(data []byte, lo, hi int) bool {
	for b := (lo + sector - 1) / sector * sector; b+sector <= hi; b += sector {
		if allZero(data[b : b+sector]) {
			return true
		}
	}
	return false
}

// validRecordAfter looks for a whole, intact record starting at any offset
// from off on, and returns the first one's offset.
func validRecordAfter(data []byte, off int) (int, bool) {
	for y := off; y+recOver <= len(data); y++ {
		if data[y] == 0 && allZero(data[y:y+recHeader]) {
			// A valid header is never all zero: skip to 11 bytes before
			// the next non-zero byte.
			z := nextNonZero(data, y+recHeader)
			if z < 0 {
				return 0, false
			}
			y = max(y, z-recHeader) // the loop adds one
			continue
		}
		if _, _, ok := readRecord(data, y); ok {
			return y, true
		}
	}
	return 0, false
}

func nextNonZero(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] != 0 {
			return i
		}
	}
	return -1
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
