package lock

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

var mutexCommands = []struct {
	name string
	c    Command
}{
	{"LOCK with a lock-delay", Command{Op: OpLock, ID: 1, Name: "a", Owner: "x", TTL: 100, Delay: 50}},
	{"LOCK ... WAIT with a lock-delay", Command{Op: OpLockWait, ID: 2, Name: "a", Owner: "x", TTL: 100, Wait: 7, Delay: MaxDelay}},
	{"MLOCK of one name", Command{Op: OpMultiLock, ID: 3, Name: "a", Owner: "x"}},
	{"MLOCK of three names with every option", Command{Op: OpMultiLock, ID: 4, Name: "a", Owner: "x", TTL: 5, Wait: 6, Delay: 7, X: &Extra{Keys: []string{"b", "c"}}}},
	{"MUNLOCK", Command{Op: OpMultiUnlock, ID: 5, Name: "a", Owner: "x", X: &Extra{Keys: []string{"b"}}}},
}

func TestMutexCommandsRoundTrip(t *testing.T) {
	for _, tt := range mutexCommands {
		t.Run(tt.name, func(t *testing.T) {
			enc := AppendCommand(nil, &tt.c)
			got, rest, err := DecodeCommand(enc)
			if err != nil || len(rest) != 0 {
				t.Fatalf("DecodeCommand: %v, rest % x", err, rest)
			}
			if !reflect.DeepEqual(got, tt.c) {
				t.Errorf("DecodeCommand = %+v, want %+v", got, tt.c)
			}
		})
	}
}

// A LOCK without a lock-delay encodes as it did before lock-delay existed
// (so entries written before decode unchanged, with no delay); one with a
// delay marks its op byte and ends with the delay.
func TestLockDelayEncoding(t *testing.T) {
	plain := Command{Op: OpLock, ID: 300, Name: "n", Owner: "ow", TTL: 150}
	old := []byte{byte(OpLock), 0xac, 0x02, 1, 'n', 2, 'o', 'w', 0xac, 0x02}
	if got := AppendCommand(nil, &plain); !bytes.Equal(got, old) {
		t.Errorf("LOCK without delay = % x, want % x", got, old)
	}
	if c, _, err := DecodeCommand(old); err != nil || c != plain {
		t.Errorf("an old LOCK decodes as %+v, %v", c, err)
	}
	delayed := plain
	delayed.Delay = 3
	want := append([]byte{byte(OpLock) | delayedOp}, append(old[1:], 6)...)
	if got := AppendCommand(nil, &delayed); !bytes.Equal(got, want) {
		t.Errorf("LOCK DELAY 3 = % x, want % x", got, want)
	}
}

func TestMutexCommandsCorrupt(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"delay mark on UNLOCK", []byte{byte(OpUnlock) | delayedOp, 1, 1, 'n', 1, 'o', 0, 2}},
		{"delay mark with no delay", []byte{byte(OpLock) | delayedOp, 1, 1, 'n', 1, 'o', 0, 0}},
		{"negative delay", []byte{byte(OpLock) | delayedOp, 1, 1, 'n', 1, 'o', 0, 1}},
		{"MLOCK with a negative delay", []byte{byte(OpMultiLock), 1, 1, 'n', 1, 'o', 0, 0, 1, 0}},
		{"MLOCK with a negative wait", []byte{byte(OpMultiLock), 1, 1, 'n', 1, 'o', 0, 1, 0, 0}},
		{"MLOCK cut short", []byte{byte(OpMultiLock), 1, 1, 'n', 1, 'o', 0, 0, 0}},
		{"an op of another branch's range", []byte{26, 1, 1, 'n', 1, 'o', 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := DecodeCommand(tt.data); !errors.Is(err, ErrCorrupt) {
				t.Errorf("DecodeCommand(% x) = %v, want ErrCorrupt", tt.data, err)
			}
		})
	}
}
