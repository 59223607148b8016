package script

import (
	"reflect"
	"testing"

	"github.com/lockd/lockd/resp"
)

// replyCaller answers every command with reply, and remembers the last
// arguments it was called with.
type replyCaller struct {
	reply resp.Value
	args  []string
}

func (c *replyCaller) Call(args []string) resp.Value {
	c.args = args
	return c.reply
}

// TestLuaToReply: what a script returns becomes the reply Redis sends a
// RESP2 client.
func TestLuaToReply(t *testing.T) {
	arr := resp.ArrayValue
	for _, tc := range []struct {
		name, body string
		want       resp.Value
	}{
		{"integer", "return 42", resp.IntValue(42)},
		{"number truncated toward zero", "return 3.99", resp.IntValue(3)},
		{"negative number truncated toward zero", "return -3.99", resp.IntValue(-3)},
		{"huge number", "return 2^63", resp.IntValue(-1 << 63)},
		{"string is bulk", "return 'hello'", resp.BulkValue("hello")},
		{"binary string", `return "a\0b\255"`, resp.BulkValue("a\x00b\xff")},
		{"numeric string stays a string", "return '42'", resp.BulkValue("42")},
		{"true is 1", "return true", resp.IntValue(1)},
		{"false is null", "return false", resp.NilValue()},
		{"nil is null", "return nil", resp.NilValue()},
		{"nothing is null", "", resp.NilValue()},
		{"function is null", "return tostring", resp.NilValue()},
		{"table is an array", "return {1, 'two', {3}}", arr(resp.IntValue(1), resp.BulkValue("two"), arr(resp.IntValue(3)))},
		{"array stops at the first nil", "return {1, nil, 3}", arr(resp.IntValue(1))},
		{"array of nothing", "return {}", arr()},
		{"false inside an array is null", "return {1, false, 3}", arr(resp.IntValue(1), resp.NilValue(), resp.IntValue(3))},
		{"string keys are dropped", "return {1, 2, x = 3}", arr(resp.IntValue(1), resp.IntValue(2))},
		{"ok field is a status", "return {ok = 'FINE'}", resp.StatusValue("FINE")},
		{"status line breaks become spaces", "return {ok = 'a\\r\\nb'}", resp.StatusValue("a  b")},
		{"err field is an error", "return {err = 'BAD thing'}", resp.ErrorValue("BAD thing")},
		{"err wins over ok", "return {ok = 'a', err = 'b'}", resp.ErrorValue("b")},
		{"a numeric err field is no error", "return {err = 5}", arr()},
		{"status_reply", "return redis.status_reply('PONG')", resp.StatusValue("PONG")},
		{"error_reply gets the code ERR", "return redis.error_reply('boom')", resp.ErrorValue("ERR boom")},
		{"error_reply keeps its code", "return redis.error_reply('MYCODE went wrong')", resp.ErrorValue("MYCODE went wrong")},
		{"error_reply with a dash", "return redis.error_reply('-MYCODE x')", resp.ErrorValue("MYCODE x")},
		{"double is a bulk string for RESP2", "return {double = 3.5}", resp.BulkValue("3.5")},
		{"integral double", "return {double = 1e15}", resp.BulkValue("1000000000000000")},
		{"big_number is a bulk string for RESP2", "return {big_number = '123456789012345678901234567890'}", resp.BulkValue("123456789012345678901234567890")},
		{"verbatim string is a bulk string for RESP2", "return {verbatim_string = {format = 'txt', string = 'hi'}}", resp.BulkValue("hi")},
		{"map is a flat array for RESP2", "return {map = {a = 1}}", arr(resp.BulkValue("a"), resp.IntValue(1))},
		{"set is an array of its members for RESP2", "return {set = {x = true}}", arr(resp.BulkValue("x"))},
		{"nested past the limit", "local t = {} t[1] = t return t", nestedError()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := eval(t, nil, tc.body, nil, nil); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.body, got, tc.want)
			}
		})
	}
}

// nestedError is the reply to a table that contains itself: arrays 16 deep,
// then Redis's error for a table nested too deep.
func nestedError() resp.Value {
	v := resp.ErrorValue("ERR reached lua stack limit")
	for range maxReplyDepth {
		v = resp.ArrayValue(v)
	}
	return v
}

// TestDeepestReplyFitsTheLog: the deepest reply a script can return round-trips
// through resp's binary form.
func TestDeepestReplyFitsTheLog(t *testing.T) {
	v := eval(t, nil, "local t = {} t[1] = t return t", nil, nil)
	back, rest, err := resp.Decode(resp.Append(nil, v))
	if err != nil || len(rest) != 0 || !reflect.DeepEqual(back, v) {
		t.Fatalf("decoded %v, rest %d, %v", back, len(rest), err)
	}
}

// TestReplyToLua: what a command answers becomes what redis.call returns to
// the script.
func TestReplyToLua(t *testing.T) {
	// Each body describes r, the value redis.call returned.
	describe := `
		local function show(v)
			if type(v) ~= 'table' then return type(v) .. ':' .. tostring(v) end
			local parts = {}
			for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. '=' .. show(x) end
			table.sort(parts)
			return '{' .. table.concat(parts, ',') .. '}'
		end
		return show(redis.pcall('x'))`
	for _, tc := range []struct {
		name  string
		reply resp.Value
		want  string
	}{
		{"integer is a number", resp.IntValue(-7), "number:-7"},
		{"bulk is a string", resp.BulkValue("v\x00"), "string:v\x00"},
		{"null is false", resp.NilValue(), "boolean:false"},
		{"status is an ok table", resp.StatusValue("OK"), "{ok=string:OK}"},
		{"error is an err table", resp.ErrorValue("WRONGTYPE Operation against a key"), "{err=string:WRONGTYPE Operation against a key,ignore_error_stats_update=boolean:true}"},
		{"error without a code gets ERR", resp.ErrorValue("NOPE"), "{err=string:ERR NOPE,ignore_error_stats_update=boolean:true}"},
		{"array is a table, null elements false", resp.ArrayValue(resp.IntValue(1), resp.NilValue(), resp.BulkValue("x")), "{1=number:1,2=boolean:false,3=string:x}"},
		{"empty array", resp.ArrayValue(), "{}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := eval(t, &replyCaller{reply: tc.reply}, describe, nil, nil)
			if !reflect.DeepEqual(got, resp.BulkValue(tc.want)) {
				t.Errorf("got %v, want %q", got, tc.want)
			}
		})
	}
}

// TestCallArguments: redis.call takes strings and numbers, numbers written
// as Redis 7.2 writes them (the shortest form that reads back).
func TestCallArguments(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		want string
	}{
		{"'x'", "x"}, {"''", ""}, {"1", "1"}, {"-1", "-1"}, {"0", "0"}, {"-0", "0"},
		{"1.5", "1.5"}, {"0.1", "0.1"}, {"1/3", "0.3333333333333333"}, {"100", "100"},
		{"1e7", "10000000"}, {"1e8", "100000000"}, {"2^62", "4611686018427387904"}, {"2^63", "9223372036854776000"}, {"-2^61", "-2305843009213693952"}, {"123456789", "123456789"}, {"2^53", "9007199254740992"},
		{"1e20", "1e+20"}, {"0.0001", "0.0001"}, {"1e-7", "1e-7"}, {"0.000123", "0.000123"},
		{"1.5e-7", "1.5e-7"}, {"1e300", "1e+300"}, {"1/0", "inf"}, {"-1/0", "-inf"}, {"1e16 + 0.5", "10000000000000000"}, {"123.456", "123.456"}, {"-0.5", "-0.5"},
		{"1700000000000", "1700000000000"}, {"ARGV[1] + 1", "42"},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			c := &replyCaller{reply: resp.OK()}
			v := eval(t, c, "return redis.call('set', 'k', "+tc.arg+")", nil, []string{"41"})
			if v.IsError() || len(c.args) != 3 || c.args[2] != tc.want {
				t.Errorf("%s: reply %v, args %q, want %q", tc.arg, v, c.args, tc.want)
			}
		})
	}
}

// TestCallMisuse: redis.call refuses what Redis refuses, with its words;
// redis.pcall returns the same errors as tables.
func TestCallMisuse(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"no arguments", "return redis.call()", "ERR Please specify at least one argument for this redis lib call script: "},
		{"a table argument", "return redis.call('get', {})", "ERR Lua redis lib command arguments must be strings or integers script: "},
		{"a nil argument", "return redis.call('get', nil)", "ERR Lua redis lib command arguments must be strings or integers script: "},
		{"a boolean argument", "return redis.call('get', true)", "ERR Lua redis lib command arguments must be strings or integers script: "},
		{"pcall returns the error", "return redis.pcall()", "ERR Please specify at least one argument for this redis lib call"},
		{"unknown command", "return redis.call('nosuch')", "ERR Unknown Redis command called from script script: "},
		{"wrong arity", "return redis.call('get')", "ERR Wrong number of args calling Redis command from script script: "},
		{"command error", "redis.call('set', 'k', 'v', 'px', 'x')", "ERR value is not an integer or out of range script: "},
		{"sha1hex with no argument", "return redis.sha1hex()", "ERR wrong number of arguments script: "},
		{"log with one argument", "redis.log(redis.LOG_WARNING)", "ERR redis.log() requires two arguments or more. script: "},
		{"log with a bad level", "redis.log('x', 'y')", "ERR First argument must be a number (log level). script: "},
		{"log with an unknown level", "redis.log(4, 'y')", "ERR Invalid debug level. script: "},
		{"setresp 3", "redis.setresp(3)", "ERR RESP3 is not supported by lockd's scripts. script: "},
		{"setresp 4", "redis.setresp(4)", "ERR RESP version must be 2 or 3. script: "},
		{"set_repl with bad flags", "redis.set_repl(8)", "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE. script: "},
		{"error_reply misused", "return redis.error_reply(1)", "ERR wrong number or type of arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := eval(t, nil, tc.body, nil, nil)
			if !isError(v, tc.want) {
				t.Errorf("%s: got %v, want %q...", tc.body, v, tc.want)
			}
		})
	}
}

// TestRedisTable: the rest of the redis table works as in Redis 7.2.
func TestRedisTable(t *testing.T) {
	for _, tc := range []struct {
		body string
		want resp.Value
	}{
		{"return redis.sha1hex('')", resp.BulkValue("da39a3ee5e6b4b0d3255bfef95601890afd80709")},
		{"return redis.sha1hex('abc')", resp.BulkValue("a9993e364706816aba3e25717850c26c9cd0d89d")},
		{"return redis.sha1hex({})", resp.BulkValue("da39a3ee5e6b4b0d3255bfef95601890afd80709")},
		{"return redis.REDIS_VERSION", resp.BulkValue("7.2.0")},
		{"return redis.REDIS_VERSION_NUM", resp.IntValue(0x070200)},
		{"return redis.replicate_commands()", resp.IntValue(1)},
		{"return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}", resp.ArrayValue(resp.IntValue(0), resp.IntValue(1), resp.IntValue(2), resp.IntValue(3))},
		{"return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL}", resp.ArrayValue(resp.IntValue(0), resp.IntValue(1), resp.IntValue(2), resp.IntValue(2), resp.IntValue(3))},
		{"redis.log(redis.LOG_NOTICE, 'hello', 1) return 1", resp.IntValue(1)},
		{"redis.setresp(2) return 1", resp.IntValue(1)},
		{"redis.set_repl(redis.REPL_ALL) return 1", resp.IntValue(1)},
		{"return redis.breakpoint()", resp.NilValue()},
		{"return type(redis.acl_check_cmd)", resp.BulkValue("nil")},
		{"local ok, e = pcall(redis.call, 'nosuch') return {tostring(ok), e}", resp.ArrayValue(resp.BulkValue("false"), resp.BulkValue("ERR Unknown Redis command called from script"))},
	} {
		t.Run(tc.body, func(t *testing.T) {
			if got := eval(t, nil, tc.body, nil, nil); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestKeysAndArgv: KEYS and ARGV hold the run's arguments, as strings.
func TestKeysAndArgv(t *testing.T) {
	v := eval(t, nil, "return {#KEYS, #ARGV, KEYS[1], ARGV[2], type(ARGV[1])}", []string{"k1"}, []string{"1", "a b"})
	want := resp.ArrayValue(resp.IntValue(1), resp.IntValue(2), resp.BulkValue("k1"), resp.BulkValue("a b"), resp.BulkValue("string"))
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("got %v, want %v", v, want)
	}
	if v := eval(t, nil, "KEYS[1] = 'changed' return KEYS[1]", []string{"k"}, nil); !reflect.DeepEqual(v, resp.BulkValue("changed")) {
		t.Fatalf("KEYS is the script's to change, as in Redis: %v", v)
	}
	if v := eval(t, nil, "return #KEYS + #ARGV", nil, nil); !reflect.DeepEqual(v, resp.IntValue(0)) {
		t.Fatalf("no keys, no args: %v", v)
	}
}
