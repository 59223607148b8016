package lock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// sameBatch compares batches, treating a nil and an empty command list alike.
func sameBatch(a, b Batch) bool {
	return a.Term == b.Term && a.Stamp == b.Stamp && slices.Equal(a.Cmds, b.Cmds)
}

func TestOpString(t *testing.T) {
	tests := []struct {
		op   Op
		want string
	}{
		{OpLock, "LOCK"}, {OpUnlock, "UNLOCK"}, {OpRenew, "RENEW"}, {OpTick, "TICK"},
		{OpLockWait, "LOCKWAIT"}, {OpCancel, "CANCEL"}, {OpSet, "SET"}, {OpDel, "DEL"}, {OpExpire, "PEXPIRE"},
		{OpTx, "EXEC"}, {OpEffects, "EFFECTS"}, {OpLockInfo, "LOCKINFO"}, {OpLeaderTransfer, "LEADERTRANSFER"},
		{0, "Op(0)"}, {maxOp + 1, fmt.Sprintf("Op(%d)", maxOp+1)}, {255, "Op(255)"},
	}
	for _, tt := range tests {
		if got := tt.op.String(); got != tt.want {
			t.Errorf("Op(%d).String() = %q, want %q", uint8(tt.op), got, tt.want)
		}
	}
}

func TestOpValuesAreFrozen(t *testing.T) {
	// The values are part of the on-disk format.
	if OpLock != 1 || OpUnlock != 2 || OpRenew != 3 || OpTick != 4 || OpSet != 7 || OpEffects != 12 || OpLockInfo != 21 || OpPublish != 22 || OpLeaderTransfer != 23 {
		t.Fatalf("ops renumbered: %d %d %d %d %d %d %d", OpLock, OpUnlock, OpRenew, OpTick, OpSet, OpEffects, OpLockInfo)
	}
	if FlagNX != 1 || FlagGet != 16 || FlagSeconds != 1024 {
		t.Fatalf("flags renumbered: %d %d %d", FlagNX, FlagGet, FlagSeconds)
	}
	got := AppendBatch(nil, &Batch{Term: 2, Stamp: -1, Wall: 3, Cmds: []Command{lockCmd(300, "n", "ow", 150)}})
	want := []byte{batchVersion, 2, 1, 6, 1, byte(OpLock), 0xac, 0x02, 1, 'n', 2, 'o', 'w', 0xac, 0x02}
	if !bytes.Equal(got, want) {
		t.Errorf("AppendBatch = % x, want % x", got, want)
	}
	// Version 1 batches, without the wall clock, are still read.
	old := []byte{1, 2, 1, 1, byte(OpLock), 0xac, 0x02, 1, 'n', 2, 'o', 'w', 0xac, 0x02}
	if b, err := DecodeBatch(old); err != nil || b.Term != 2 || b.Stamp != -1 || len(b.Cmds) != 1 {
		t.Errorf("DecodeBatch(version 1) = %+v, %v", b, err)
	}
	set := Command{Op: OpSet, ID: 1, Name: "k", Owner: "v", TTL: 5, Flags: FlagNX | FlagGet, Match: "m", At: 2}
	wantSet := []byte{byte(OpSet), 1, 1, 'k', 1, 'v', 10, 17, 1, 'm', 4, 0}
	if got := AppendCommand(nil, &set); !bytes.Equal(got, wantSet) {
		t.Errorf("AppendCommand(SET) = % x, want % x", got, wantSet)
	}
}

var roundTripCommands = []struct {
	name string
	c    Command
}{
	{"lock with a lease", lockCmd(1, "orders-42", "worker-7", 30_000)},
	{"lock without a lease", lockCmd(2, "a", "b", 0)},
	{"unlock", unlockCmd(3, "a", "b")},
	{"rwlock read", readCmd(3, "a", "b", 10, 0)},
	{"rwlock write with a wait", writeCmd(3, "a", "b", 0, 100)},
	{"semlock", semCmd(3, "a", "b", 7, 10, 100)},
	{"rwunlock", rwUnlockCmd(3, "a", "b")},
	{"semunlock", semUnlockCmd(3, "a", "b")},
	{"rwrenew", rwRenewCmd(3, "a", "b", 5)},
	{"renew", renewCmd(4, "a", "b", 1)},
	{"tick without an ID", tickCmd()},
	{"tick with an ID", Command{Op: OpTick, ID: 5}},
	{"empty name and owner", Command{Op: OpLock}},
	{"largest TTL", lockCmd(6, "a", "b", math.MaxInt64)},
	{"largest ID", lockCmd(math.MaxUint64, "a", "b", 1)},
	{"leader transfer to a node", Command{Op: OpLeaderTransfer, ID: 7, Target: 3}},
	{"leader transfer to the most caught-up", Command{Op: OpLeaderTransfer, ID: 8}},
	{"binary name and owner", lockCmd(7, "\x00\xff\n\r", "\x00", 9)},
	{"unicode name", lockCmd(8, "verrou-é-锁", "владелец", 10)},
	{"long name and owner", lockCmd(9, strings.Repeat("n", 70_000), strings.Repeat("o", 300), 11)},
}

func TestCommandRoundTrip(t *testing.T) {
	for _, tt := range roundTripCommands {
		t.Run(tt.name, func(t *testing.T) {
			enc := AppendCommand(nil, &tt.c)
			got, rest, err := DecodeCommand(enc)
			if err != nil {
				t.Fatalf("DecodeCommand: %v", err)
			}
			if got != tt.c {
				t.Errorf("DecodeCommand = %+v, want %+v", got, tt.c)
			}
			if len(rest) != 0 {
				t.Errorf("rest = % x, want empty", rest)
			}
		})
	}
}

func TestDecodeCommandReturnsTheRest(t *testing.T) {
	a, b := lockCmd(1, "a", "x", 5), unlockCmd(2, "bb", "yy")
	enc := AppendCommand(nil, &a)
	enc = AppendCommand(enc, &b)
	enc = append(enc, 0xde, 0xad)
	got, rest, err := DecodeCommand(enc)
	if err != nil || got != a {
		t.Fatalf("first DecodeCommand = %+v, %v; want %+v", got, err, a)
	}
	got, rest, err = DecodeCommand(rest)
	if err != nil || got != b {
		t.Fatalf("second DecodeCommand = %+v, %v; want %+v", got, err, b)
	}
	if !bytes.Equal(rest, []byte{0xde, 0xad}) {
		t.Errorf("rest = % x, want de ad", rest)
	}
}

func TestAppendKeepsDst(t *testing.T) {
	prefix := []byte("prefix")
	c := lockCmd(1, "a", "x", 5)
	enc := AppendCommand(slices.Clone(prefix), &c)
	if !bytes.HasPrefix(enc, prefix) || !bytes.Equal(enc[len(prefix):], AppendCommand(nil, &c)) {
		t.Errorf("AppendCommand did not append: % x", enc)
	}
	bt := Batch{Term: 1, Cmds: []Command{c}}
	enc = AppendBatch(slices.Clone(prefix), &bt)
	if !bytes.HasPrefix(enc, prefix) || !bytes.Equal(enc[len(prefix):], AppendBatch(nil, &bt)) {
		t.Errorf("AppendBatch did not append: % x", enc)
	}
}

var roundTripBatches = []struct {
	name string
	b    Batch
}{
	{"empty batch", Batch{}},
	{"empty batch of a term", Batch{Term: 7, Stamp: 1_700_000_000_000}},
	{"one command", Batch{Term: 1, Stamp: 5, Cmds: []Command{lockCmd(1, "a", "x", 100)}}},
	{"negative stamp", Batch{Term: 1, Stamp: -12345, Cmds: []Command{tickCmd()}}},
	{"extreme values", Batch{Term: math.MaxUint64, Stamp: math.MinInt64, Cmds: []Command{
		lockCmd(math.MaxUint64, "", "", math.MaxInt64), {Op: OpTick},
	}}},
	{"largest stamp", Batch{Term: 1, Stamp: math.MaxInt64}},
	{"every command", Batch{Term: 3, Stamp: 99, Cmds: func() []Command {
		var cs []Command
		for _, tt := range roundTripCommands {
			cs = append(cs, tt.c)
		}
		return cs
	}()}},
	{"many commands", Batch{Term: 2, Stamp: 1, Cmds: func() []Command {
		cs := make([]Command, 1000)
		for i := range cs {
			cs[i] = lockCmd(uint64(i), fmt.Sprint("n", i), "o", int64(i))
		}
		return cs
	}()}},
}

func TestBatchRoundTrip(t *testing.T) {
	for _, tt := range roundTripBatches {
		t.Run(tt.name, func(t *testing.T) {
			enc := AppendBatch(nil, &tt.b)
			got, err := DecodeBatch(enc)
			if err != nil {
				t.Fatalf("DecodeBatch: %v", err)
			}
			if !sameBatch(got, tt.b) {
				t.Errorf("DecodeBatch = %+v, want %+v", got, tt.b)
			}
			if again := AppendBatch(nil, &got); !bytes.Equal(again, enc) {
				t.Errorf("re-encoding differs:\n% x\n% x", again, enc)
			}
		})
	}
}

func TestDecodeBatchCopiesStrings(t *testing.T) {
	enc := AppendBatch(nil, &Batch{Term: 1, Cmds: []Command{lockCmd(1, "name", "owner", 0)}})
	got, err := DecodeBatch(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 'Z'
	}
	if got.Cmds[0].Name != "name" || got.Cmds[0].Owner != "owner" {
		t.Errorf("decoded strings alias the input: %+v", got.Cmds[0])
	}
}

// uv and sv build encodings by hand.
func uv(v uint64) []byte { return binary.AppendUvarint(nil, v) }
func sv(v int64) []byte  { return binary.AppendVarint(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestDecodeCorrupt(t *testing.T) {
	good := lockCmd(1, "a", "x", 5)
	goodCmd := AppendCommand(nil, &good)
	header := cat([]byte{batchVersion}, uv(1), sv(0), sv(0))
	overlong := bytes.Repeat([]byte{0xff}, 10)
	overlong = append(overlong, 0x01) // 11 bytes: no uint64 is that long

	batches := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"version 0", cat([]byte{0}, uv(1), sv(0), uv(0))},
		{"version 3", cat([]byte{3}, uv(1), sv(0), sv(0), uv(0))},
		{"version 255", cat([]byte{255}, uv(1), sv(0), uv(0))},
		{"version only", []byte{batchVersion}},
		{"no count", header},
		{"trailing byte after an empty batch", cat(header, uv(0), []byte{0})},
		{"trailing bytes after a command", cat(header, uv(1), goodCmd, []byte{1, 2})},
		{"trailing command", cat(header, uv(1), goodCmd, goodCmd)},
		{"count larger than the commands", cat(header, uv(2), goodCmd)},
		{"count just over the bound", cat(header, uv(3), goodCmd, goodCmd)},
		{"huge count", cat(header, uv(1<<62), goodCmd)},
		{"largest count", cat(header, uv(math.MaxUint64), goodCmd)},
		{"overlong term varint", cat([]byte{batchVersion}, overlong, sv(0), uv(0))},
		{"overlong stamp varint", cat([]byte{batchVersion}, uv(1), overlong, uv(0))},
		{"overlong count varint", cat(header, overlong)},
		{"op 0", cat(header, uv(1), []byte{0}, goodCmd[1:])},
		{"op 5", cat(header, uv(1), []byte{5}, goodCmd[1:])},
		{"op 255", cat(header, uv(1), []byte{255}, goodCmd[1:])},
		{"op past the last", cat(header, uv(1), []byte{byte(maxOp + 1)}, goodCmd[1:])},
		{"a key-space command without its options", cat(header, uv(1), []byte{byte(OpSet)}, goodCmd[1:])},
		{"an unknown flag", cat(header, uv(1), []byte{byte(OpSet)}, goodCmd[1:], uv(uint64(maxFlag)), uv(0), sv(0), []byte{0})},
		{"a transaction nested in a transaction", cat(header, uv(1), []byte{byte(OpTx)}, goodCmd[1:], uv(0), uv(0), sv(0), []byte{1},
			uv(0), uv(1), []byte{byte(OpTx)}, goodCmd[1:], uv(0), uv(0), sv(0), []byte{1}, uv(0), uv(1))},
		{"a huge count of keys", cat(header, uv(1), []byte{byte(OpDel)}, goodCmd[1:], uv(0), uv(0), sv(0), []byte{1}, uv(1<<40))},
		{"negative TTL", cat(header, uv(1), []byte{byte(OpLock)}, uv(1), uv(1), []byte("a"), uv(1), []byte("x"), sv(-1))},
		{"most negative TTL", cat(header, uv(1), []byte{byte(OpLock)}, uv(1), uv(0), uv(0), sv(math.MinInt64))},
		{"name longer than the input", cat(header, uv(1), []byte{byte(OpLock)}, uv(1), uv(100), []byte("a"), uv(0), sv(0), bytes.Repeat([]byte{0}, 10))},
		{"huge name length", cat(header, uv(1), []byte{byte(OpLock)}, uv(1), uv(math.MaxUint64), uv(0), uv(0), sv(0))},
		{"huge owner length", cat(header, uv(1), []byte{byte(OpLock)}, uv(1), uv(0), uv(1<<62), uv(0), sv(0))},
		{"overlong ID varint", cat(header, uv(1), []byte{byte(OpLock)}, overlong, uv(0), uv(0), sv(0))},
	}
	for _, tt := range batches {
		t.Run("batch: "+tt.name, func(t *testing.T) {
			b, err := DecodeBatch(tt.data)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("DecodeBatch(% x) = %+v, %v; want ErrCorrupt", tt.data, b, err)
			}
		})
	}

	commands := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"op only", []byte{byte(OpLock)}},
		{"op 0", cat([]byte{0}, goodCmd[1:])},
		{"op 5", cat([]byte{5}, goodCmd[1:])},
		{"negative TTL", cat([]byte{byte(OpRenew)}, uv(1), uv(0), uv(0), sv(-30_000))},
		{"name longer than the input", cat([]byte{byte(OpLock)}, uv(1), uv(5), []byte("abc"))},
		{"huge name length", cat([]byte{byte(OpLock)}, uv(1), uv(math.MaxUint64), []byte("abc"))},
		{"missing TTL", cat([]byte{byte(OpLock)}, uv(1), uv(0), uv(0))},
		{"overlong TTL varint", cat([]byte{byte(OpLock)}, uv(1), uv(0), uv(0), overlong)},
	}
	for _, tt := range commands {
		t.Run("command: "+tt.name, func(t *testing.T) {
			c, rest, err := DecodeCommand(tt.data)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("DecodeCommand(% x) = %+v, %v; want ErrCorrupt", tt.data, c, err)
			}
			if c != (Command{}) || rest != nil {
				t.Errorf("on error DecodeCommand returned %+v, % x; want zero values", c, rest)
			}
		})
	}
}

func TestDecodeTruncated(t *testing.T) {
	for _, tt := range roundTripBatches {
		t.Run(tt.name, func(t *testing.T) {
			enc := AppendBatch(nil, &tt.b)
			if len(enc) > 2000 {
				enc = AppendBatch(nil, &Batch{Term: tt.b.Term, Stamp: tt.b.Stamp, Cmds: tt.b.Cmds[:3]})
			}
			for n := range len(enc) {
				if b, err := DecodeBatch(enc[:n]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("DecodeBatch of the first %d of %d bytes = %+v, %v; want ErrCorrupt", n, len(enc), b, err)
				}
			}
		})
	}
	for _, tt := range roundTripCommands {
		t.Run("command: "+tt.name, func(t *testing.T) {
			enc := AppendCommand(nil, &tt.c)
			for n := range len(enc) {
				if c, _, err := DecodeCommand(enc[:n]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("DecodeCommand of the first %d of %d bytes = %+v, %v; want ErrCorrupt", n, len(enc), c, err)
				}
			}
		})
	}
}

// TestDecodeHugeCountAllocatesLittle: a few bytes claiming 2^62 commands
// are rejected without allocating for them.
func TestDecodeHugeCountAllocatesLittle(t *testing.T) {
	for _, count := range []uint64{21, 1 << 16, 1 << 20, 1 << 40, 1 << 62, math.MaxUint64} {
		data := cat([]byte{batchVersion}, uv(1), sv(0), sv(0), uv(count), bytes.Repeat([]byte{1}, 100))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 100 {
			if _, err := DecodeBatch(data); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeBatch claiming %d commands = %v, want ErrCorrupt", count, err)
			}
		}
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
			t.Errorf("100 decodes of a %d-byte batch claiming %d commands allocated %d bytes", len(data), count, got)
		}
	}
	// A batch as large as its count allows allocates in proportion to its size.
	n := 10_000
	data := cat([]byte{batchVersion}, uv(1), sv(0), sv(0), uv(uint64(n)), bytes.Repeat([]byte{byte(OpTick), 0, 0, 0, 0}, n))
	if allocs := testing.AllocsPerRun(10, func() {
		if b, err := DecodeBatch(data); err != nil || len(b.Cmds) != n {
			t.Fatalf("DecodeBatch = %d commands, %v", len(b.Cmds), err)
		}
	}); allocs > 2 {
		t.Errorf("DecodeBatch of %d empty-string commands: %v allocations, want at most 2", n, allocs)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	for _, tt := range roundTripBatches {
		if len(tt.b.Cmds) < 50 {
			f.Add(AppendBatch(nil, &tt.b))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{batchVersion, 1, 0, 1, 1, 0, 0, 0, 0})
	f.Add(cat([]byte{batchVersion}, uv(1), sv(0), uv(1<<62)))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeBatch error %v is not ErrCorrupt", err)
			}
			return
		}
		enc := AppendBatch(nil, &b)
		// A version 1 batch is re-encoded as version 2, with its Wall (0):
		// one byte more.
		if grown := len(enc) - len(data); grown > 0 && !(data[0] == 1 && grown == 1) {
			t.Errorf("re-encoding is %d bytes, the input %d", len(enc), len(data))
		}
		b2, err := DecodeBatch(enc)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if !sameBatch(b, b2) {
			t.Fatalf("round trip changed the batch:\n%+v\n%+v", b, b2)
		}
		// Whatever decodes can be applied.
		tab := NewTable()
		tab.Apply(b.Term, &b, nil)
		tab.Apply(b.Term, &b, nil)
	})
}

// benchBatch is 64 LOCK/UNLOCK commands as the leader batches them.
func benchBatch() Batch {
	batch := Batch{Term: 3, Stamp: 1_700_000_000_000}
	for i := range 64 {
		op := OpLock
		if i%2 == 1 {
			op = OpUnlock
		}
		batch.Cmds = append(batch.Cmds, Command{
			Op: op, ID: 1<<48 + uint64(i), Name: fmt.Sprintf("orders-%d", i/2),
			Owner: "3f2b8c1e-8d4a-4c1b-9e0f-2a7d5b6c9e01", TTL: 30_000,
		})
	}
	return batch
}

func BenchmarkDecodeBatch(b *testing.B) {
	batch := benchBatch()
	enc := AppendBatch(nil, &batch)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBatch(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendBatch(b *testing.B) {
	batch := benchBatch()
	buf := AppendBatch(nil, &batch)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendBatch(buf[:0], &batch)
	}
}
