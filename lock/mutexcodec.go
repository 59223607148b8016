package lock

import "encoding/binary"

// The encodings of lock-delay and multi-lock commands. A LOCK without a
// delay encodes as it always has; one with a delay sets delayedOp in its
// op byte and ends with the delay, so log entries written before
// lock-delay existed decode unchanged.

// delayedOp marks, in the op byte, an OpLock or OpLockWait that carries a
// Delay after its other fields.
const delayedOp = 0x80

// appendDelayed appends c, an OpLock or OpLockWait with a Delay.
func appendDelayed(dst []byte, c *Command) []byte {
	dst = append(dst, byte(c.Op)|delayedOp)
	dst = binary.AppendUvarint(dst, c.ID)
	dst = appendString(dst, c.Name)
	dst = appendString(dst, c.Owner)
	dst = binary.AppendVarint(dst, c.TTL)
	if c.Op == OpLockWait {
		dst = binary.AppendVarint(dst, c.Wait)
	}
	return binary.AppendVarint(dst, c.Delay)
}

// delayed decodes the rest of a command whose op byte, op, has delayedOp.
func (d *decoder) delayed(op byte) Command {
	c := Command{Op: Op(op &^ delayedOp), ID: d.uvarint(), Name: d.string(), Owner: d.string(), TTL: d.varint()}
	if c.Op == OpLockWait {
		c.Wait = d.varint()
	}
	c.Delay = d.varint()
	if d.err == nil && ((c.Op != OpLock && c.Op != OpLockWait) || c.TTL < 0 || c.Wait < 0 || c.Delay <= 0) {
		d.err = ErrCorrupt
	}
	return c
}

// appendMulti appends the fields of an OpMultiLock or OpMultiUnlock after
// its TTL: Wait and Delay (OpMultiLock), then X.Keys, the names after Name.
func appendMulti(dst []byte, c *Command) []byte {
	if c.Op == OpMultiLock {
		dst = binary.AppendVarint(dst, c.Wait)
		dst = binary.AppendVarint(dst, c.Delay)
	}
	var keys []string
	if c.X != nil {
		keys = c.X.Keys
	}
	return appendStrings(dst, keys)
}

// multi decodes what appendMulti appended into c.
func (d *decoder) multi(c *Command) {
	if c.Op == OpMultiLock {
		c.Wait = d.varint()
		c.Delay = d.varint()
	}
	if keys := d.strings(); len(keys) > 0 {
		c.X = &Extra{Keys: keys}
	}
	if d.err == nil && c.Delay < 0 {
		d.err = ErrCorrupt
	}
}
