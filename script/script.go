package script

import (
	"crypto/sha1"
	"encoding/hex"
	"time"

	"github.com/lockd/lockd/resp"
)

// Caller runs the commands a script issues with redis.call and redis.pcall.
//
// Concurrency: Run calls Call only from the goroutine that called Run, one
// call at a time, and never after Run has returned.
type Caller interface {
	// Call runs one command. args[0] is the command name as the script wrote
	// it (any case); the rest are its arguments, numbers already converted to
	// strings the way Redis converts them. A command that fails (unknown
	// command, wrong arity, wrong type...) answers an Error Value with
	// Redis's text, without the leading dash: "ERR Unknown Redis command
	// called from script" is what Redis 7 says for an unknown command, and
	// "ERR Wrong number of args calling Redis command from script" for a bad
	// arity. redis.call raises that error in the script; redis.pcall returns
	// it as a table {err=...}.
	Call(args []string) resp.Value
}

// Limits bounds one run. A zero or negative field takes its default.
type Limits struct {
	// Instructions bounds the work of a run: one unit per Lua VM instruction,
	// per step of the pattern matcher (string.find, match, gmatch, gsub) and
	// per value converted between Lua and RESP. Default 10,000,000: about
	// 0.2 s of a tight loop on the development machine, and five orders of
	// magnitude more than any lock library's script needs (a release takes
	// about 20).
	Instructions int64
	// Timeout bounds a run's wall-clock time. Default 5 s, Redis's
	// busy-reply-threshold (lua-time-limit), after which Redis lets a client
	// kill the script.
	Timeout time.Duration
	// HeapBytes bounds how far the process's heap may grow while the script
	// runs (sampled every millisecond, process-wide, garbage included: see
	// the package doc for how far past it a run can get). Default 256 MiB.
	HeapBytes int64
	// MaxString bounds the length of a string that the .. operator or a
	// library function (string.rep, string.format, table.concat,
	// string.gsub, ...) builds. Default 16 MiB: 32 times respguard's default
	// longest bulk string (512 KiB; lockd's client port accepts 64 KiB), and
	// a sixteenth of HeapBytes, so one call cannot overshoot the heap budget by much.
	MaxString int
}

// The defaults of Limits.
const (
	DefaultInstructions = 10_000_000
	DefaultTimeout      = 5 * time.Second
	DefaultHeapBytes    = 256 << 20
	DefaultMaxString    = 16 << 20
)

func (l Limits) withDefaults() Limits {
	if l.Instructions <= 0 {
		l.Instructions = DefaultInstructions
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	if l.HeapBytes <= 0 {
		l.HeapBytes = DefaultHeapBytes
	}
	if l.MaxString <= 0 {
		l.MaxString = DefaultMaxString
	}
	return l
}

// SHA1Hex is the script's name for EVALSHA and SCRIPT LOAD: the lower-case
// hex SHA-1 of its body, as Redis computes it.
func SHA1Hex(body string) string {
	sum := sha1.Sum([]byte(body))
	return hex.EncodeToString(sum[:])
}

// Compile checks that body compiles, for SCRIPT LOAD, and keeps the compiled
// form for later runs. The error's text is Redis's reply, without the leading
// dash: "ERR Error compiling script (new function): user_script:1: ...".
//
// Concurrency: safe for concurrent use.
func Compile(body string) error {
	if _, err := compiled(SHA1Hex(body), body); err != nil {
		return err
	}
	return nil
}

// Run runs body as EVAL does, with KEYS and ARGV set from keys and args,
// calling c for every redis.call and redis.pcall, within lim. It returns the
// script's reply converted as Redis converts it for a RESP2 client; every
// failure (compile error, runtime error, a redis.call error that the script
// did not catch, an exhausted budget) is an Error Value with Redis's text.
// Run never panics, and no goroutine it starts outlives it.
//
// Concurrency: safe for concurrent use; each run has its own interpreter.
func Run(body string, keys, args []string, c Caller, lim Limits) resp.Value {
	lim = lim.withDefaults()
	sha := SHA1Hex(body)
	proto, err := compiled(sha, body)
	if err != nil {
		return resp.ErrorValue(err.Error())
	}
	return execute(proto, sha, keys, args, c, lim)
}
