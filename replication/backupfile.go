package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/lockd/lockd/lock"
)

// A backup file is the replicated state at one applied index: the lock
// table's snapshot encoding (locks, tokens, leases, waiters, remembered
// request ids, scripts) with what identifies it. Integers are big-endian:
//
//	magic       8 bytes  "lockdBAK"
//	version     2 bytes  backupVersion
//	index       8 bytes  the applied index the state is at
//	term        8 bytes  the term of the entry at index
//	node        2 bytes  the node that wrote it
//	cluster id  2 bytes length, then the bytes
//	body        8 bytes length, then the table's snapshot encoding
//	crc32c      4 bytes  CRC-32C (Castagnoli) of everything after the magic
//
// The membership is not in it: a restore names the new cluster's members.

// backupMagic opens every backup file.
var backupMagic = []byte("lockdBAK")

// backupVersion is the format version this build writes and reads.
const backupVersion = 1

// maxBackupBody bounds the body a backup may hold: a snapshot a node writes
// is at most 2 GiB (see PROTOCOL.md, Limits).
const maxBackupBody = 2 << 30

// backupFixed is the size of a backup file without its cluster id and body.
const backupFixed = 8 + 2 + 8 + 8 + 2 + 2 + 8 + 4

// ErrBadBackup is wrapped by every error about a backup file's contents.
var ErrBadBackup = errors.New("not a usable lockd backup")

// BackupInfo describes a backup: whose state it is and where in the log.
type BackupInfo struct {
	ClusterID string
	Node      uint64 // the node that wrote it
	Index     uint64
	Term      uint64
	Bytes     int // the file's size
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeBackup returns the file holding body, the table at info's index.
func encodeBackup(info BackupInfo, body []byte) []byte {
	b := make([]byte, 0, backupFixed+len(info.ClusterID)+len(body))
	b = append(b, backupMagic...)
	b = binary.BigEndian.AppendUint16(b, backupVersion)
	b = binary.BigEndian.AppendUint64(b, info.Index)
	b = binary.BigEndian.AppendUint64(b, info.Term)
	b = binary.BigEndian.AppendUint16(b, uint16(info.Node))
	b = binary.BigEndian.AppendUint16(b, uint16(len(info.ClusterID)))
	b = append(b, info.ClusterID...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(body)))
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[len(backupMagic):], castagnoli))
}

// decodeBackup checks a backup file whole (magic, version, lengths,
// checksum, and that its body decodes as a table) and returns what it
// holds: its description, its body and the table. Every error wraps
// ErrBadBackup and says what is wrong.
func decodeBackup(data []byte) (BackupInfo, []byte, *lock.Table, error) {
	bad := func(format string, args ...any) (BackupInfo, []byte, *lock.Table, error) {
		return BackupInfo{}, nil, nil, fmt.Errorf("%w: %s", ErrBadBackup, fmt.Sprintf(format, args...))
	}
	if len(data) < len(backupMagic) || !bytes.Equal(data[:len(backupMagic)], backupMagic) {
		return bad("it does not start with %q", backupMagic)
	}
	if len(data) < backupFixed {
		return bad("truncated: %d bytes, shorter than any backup", len(data))
	}
	if v := binary.BigEndian.Uint16(data[8:]); v != backupVersion {
		return bad("format version %d; this lockd reads version %d", v, backupVersion)
	}
	info := BackupInfo{
		Index: binary.BigEndian.Uint64(data[10:]),
		Term:  binary.BigEndian.Uint64(data[18:]),
		Node:  uint64(binary.BigEndian.Uint16(data[26:])),
		Bytes: len(data),
	}
	idLen := int(binary.BigEndian.Uint16(data[28:]))
	if len(data) < backupFixed+idLen {
		return bad("truncated: %d bytes, the header alone needs %d", len(data), backupFixed+idLen)
	}
	info.ClusterID = string(data[30 : 30+idLen])
	bodyLen := binary.BigEndian.Uint64(data[30+idLen:])
	if bodyLen > maxBackupBody {
		return bad("a body of %d bytes, more than any snapshot", bodyLen)
	}
	if want := uint64(backupFixed+idLen) + bodyLen; uint64(len(data)) != want {
		return bad("%d bytes where its header says %d: truncated or extended", len(data), want)
	}
	body := data[38+idLen : len(data)-4]
	if got, want := crc32.Checksum(data[len(backupMagic):len(data)-4], castagnoli), binary.BigEndian.Uint32(data[len(data)-4:]); got != want {
		return bad("checksum mismatch (%08x, the file says %08x): the file is damaged", got, want)
	}
	if info.Index == 0 {
		return bad("index 0")
	}
	t := lock.NewTable()
	if err := t.Restore(body); err != nil {
		return bad("its table does not decode: %v", err)
	}
	return info, body, t, nil
}
