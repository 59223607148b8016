package peering

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/lockd/lockd/lock"
	"github.com/tidwall/redcon"
)

// maxForwardBatch bounds the commands in one FORWARDS frame, beside its
// size (maxForwardFrame): it bounds what one frame makes the leader decode
// and check at once.
const maxForwardBatch = 1024

// forwardBatch gathers the forwarded commands that a peer's pump takes from
// its queue in one go (those that arrived while it was writing, or before it
// woke) into one FORWARDS frame, instead of a FORWARD frame each. It never
// waits for more: the pump flushes it with whatever it took. A lone command
// still goes as a FORWARD frame. Frames keep their queue order: a batch is
// flushed before a frame of another kind.
//
// Concurrency: the pump's goroutine alone uses it.
type forwardBatch struct {
	payload []byte // the commands, each as lock.AppendCommand encodes it
	n       int    // commands in payload
	frames  uint64 // frames appended to the pump's buffer since it last wrote
	// batches is set once the peer said it reads FORWARDS frames
	// (features.go); until then each command goes in a FORWARD frame.
	batches atomic.Bool
}

// add appends f to buf, or adds it to the batch if it is a forwarded
// command; a batch that would pass maxForwardBatch commands or
// maxForwardFrame bytes is flushed first. It returns buf.
func (fb *forwardBatch) add(buf []byte, f frame) []byte {
	if !f.fwd {
		buf = fb.flush(buf)
		fb.frames++
		return appendFrame(buf, f)
	}
	start := len(fb.payload)
	fb.payload = lock.AppendCommand(fb.payload, &f.cmd)
	if fb.n > 0 && (fb.n == maxForwardBatch || len(fb.payload) > maxForwardFrame || !fb.batches.Load()) {
		buf = fb.flushPrefix(buf, start) // f's command starts the next batch
	}
	fb.n++
	return buf
}

// flush appends the batch, if any, to buf as one frame, and empties it.
func (fb *forwardBatch) flush(buf []byte) []byte {
	if fb.n == 0 {
		return buf
	}
	return fb.flushPrefix(buf, len(fb.payload))
}

// flushPrefix appends the batch's commands before byte end as one frame
// and keeps the rest (at most one command) as the next batch's start.
func (fb *forwardBatch) flushPrefix(buf []byte, end int) []byte {
	b := redcon.AppendArray(buf, 2)
	if fb.n == 1 {
		b = redcon.AppendBulkString(b, "FORWARD")
	} else {
		b = redcon.AppendBulkString(b, "FORWARDS")
	}
	b = redcon.AppendBulk(b, fb.payload[:end])
	fb.frames++
	fb.payload = fb.payload[:copy(fb.payload, fb.payload[end:])]
	fb.n = 0
	return b
}

// decodeForwards appends to cmds the commands of a FORWARDS frame's
// payload: one or more commands, at most maxForwardBatch, each as
// lock.AppendCommand encodes it, back to back, and nothing else.
func decodeForwards(cmds []lock.Command, payload []byte) ([]lock.Command, error) {
	if len(payload) == 0 {
		return cmds, errors.New("empty forwards frame")
	}
	for n := 0; len(payload) > 0; n++ {
		if n == maxForwardBatch {
			return cmds, fmt.Errorf("forwards frame of more than %d commands", maxForwardBatch)
		}
		c, rest, err := lock.DecodeCommand(payload)
		if err != nil {
			return cmds, fmt.Errorf("bad forwarded command: %v", err)
		}
		cmds = append(cmds, c)
		payload = rest
	}
	return cmds, nil
}
