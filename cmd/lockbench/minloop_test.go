//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Sizes of the minimal loop's messages and of its log file.
const (
	minLoopFrame  = 100     // one small raft entry's message
	minLoopAck    = 16      // the acknowledgement
	minLoopRegion = 1 << 20 // the log: preallocated, then overwritten in a ring
)

// BenchmarkMinimalLoop is the floor a follower's cost per raft entry is
// compared against: over one loopback TCP connection, the sender writes a
// frame of 100 bytes and waits for the acknowledgement; the receiver reads
// the frame, writes it into a file with pwrite, calls fdatasync (the
// syscall, as lockd's log does; not f.Sync, which is fsync) and writes a
// 16-byte acknowledgement. As in lockd's log the file is preallocated with
// written zeros, so the sync has no file metadata to write.
//
// ns/op is one round trip. cpu-us/op is this whole process's CPU time per
// round trip (getrusage(RUSAGE_SELF), user plus system: the sender's side,
// the receiver's, and the Go runtime's scheduling of both), sys-us/op the
// system part of it.
func BenchmarkMinimalLoop(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, minLoopRegion)); err != nil {
		b.Fatal(err)
	}
	fd := int(f.Fd())
	if err := syscall.Fdatasync(fd); err != nil {
		b.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(5 * time.Minute) // bounds every wait on either side
	received := make(chan error, 1)
	// The receiver stops when the sender closes the connection (or at the
	// deadline); it reports nil for a clean EOF.
	go func() {
		received <- receiveLoop(ln, f, fd, deadline)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		b.Fatal(err)
	}

	frame := make([]byte, minLoopFrame)
	ack := make([]byte, minLoopAck)
	var before, after syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &before); err != nil {
		b.Fatal(err)
	}
	var n uint64
	for b.Loop() {
		n++
		binary.LittleEndian.PutUint64(frame, n)
		if _, err := conn.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, ack); err != nil {
			b.Fatal(err)
		}
		if got := binary.LittleEndian.Uint64(ack); got != n {
			b.Fatalf("acknowledgement of frame %d for frame %d", got, n)
		}
	}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &after); err != nil {
		b.Fatal(err)
	}
	user := time.Duration(after.Utime.Nano() - before.Utime.Nano())
	sys := time.Duration(after.Stime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(user+sys)/float64(time.Microsecond)/float64(n), "cpu-us/op")
	b.ReportMetric(float64(sys)/float64(time.Microsecond)/float64(n), "sys-us/op")

	_ = conn.Close()
	if err := <-received; err != nil {
		b.Fatal(err)
	}
}

// receiveLoop accepts one connection on ln and, for every frame read from
// it, writes the frame at the next offset of the ring in f, fdatasyncs fd
// (f's descriptor) and answers with the frame's first 8 bytes and the
// offset. It returns nil when the peer closes the connection.
func receiveLoop(ln net.Listener, f *os.File, fd int, deadline time.Time) error {
	conn, err := ln.Accept()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	frame := make([]byte, minLoopFrame)
	ack := make([]byte, minLoopAck)
	var off int64
	for {
		if _, err := io.ReadFull(conn, frame); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if _, err := f.WriteAt(frame, off); err != nil {
			return err
		}
		if err := syscall.Fdatasync(fd); err != nil {
			return err
		}
		copy(ack, frame[:8])
		binary.LittleEndian.PutUint64(ack[8:], uint64(off))
		if _, err := conn.Write(ack); err != nil {
			return err
		}
		off = (off + minLoopFrame) % (minLoopRegion - minLoopRegion%minLoopFrame)
	}
}
