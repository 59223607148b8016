// Package script runs Redis Lua scripts (EVAL, EVALSHA, SCRIPT LOAD) the way
// Redis 7.2 runs them, so that the lock libraries built on them (redis-py's
// Lock, go-redsync, node-redlock) work against lockd unchanged. It knows
// nothing of the lock table or of replication: Run runs one script and calls
// its Caller for every redis.call and redis.pcall; the cluster decides what
// those calls read and write.
//
// # Engine
//
// The interpreter is github.com/yuin/gopher-lua v1.1.2, a pure-Go Lua 5.1,
// the dialect of Redis's scripts. Its parser and compiler turn a script into
// a FunctionProto, kept in a bounded cache by SHA-1 so that a script is
// compiled once; its VM runs it. The libraries a script sees are this
// package's (Lua 5.1's, with Lua's and Redis's wording), except getfenv,
// setfenv, xpcall, newproxy and the coroutine functions, which are
// gopher-lua's.
//
// # Sandbox
//
// As in Redis 7: the globals and the library tables are read-only (writing
// one fails with "Attempt to modify a readonly table", reading a global that
// does not exist with "Script attempted to access nonexistent global
// variable 'x'"); there is no os, io, debug, package, require, module, load,
// loadstring, loadfile, dofile or print; collectgarbage accepts its options
// and does nothing; KEYS and ARGV are the run's own tables; the libraries are
// the safe part of base, string, table, math (math.random and randomseed are
// Redis's, an lrand48 that each run starts from the same state), bit
// (LuaBitOp) and coroutine; the redis table has call, pcall, error_reply,
// status_reply, sha1hex, log, setresp, set_repl, replicate_commands,
// breakpoint, debug, the LOG_* and REPL_* constants, REDIS_VERSION and
// REDIS_VERSION_NUM.
//
// Each run has a fresh interpreter (LState). The library tables are built
// once per process and shared by every run, each behind a read-only proxy: no
// script can reach a table or a metatable another script can see, so no run
// sees another's changes. Reusing interpreters would save about half the time
// of a short script (BenchmarkRun, BenchmarkRunPooled) but leave what one
// script leaves on the stack, in the registry or in a half-finished coroutine
// to the next; this package does not.
//
// # Budgets
//
// Limits bounds each run: its instructions (gopher-lua consults the run's
// context before every VM instruction; the pattern matcher, library loops and
// reply conversion spend the same budget), its wall-clock time and the growth
// of the process's heap, both checked every millisecond by a watchdog
// goroutine that ends before Run returns. Once a budget is spent the script
// fails at its next instruction, and again at every one after, so pcall
// cannot keep it alive. Recursion fails at callStackSize calls ("stack
// overflow"), the value stack at 4 MiB, syntax nested deeper than 200 levels
// at compile time, a library function that would build a string longer than
// Limits.MaxString with "resulting string too large", unpack and string.byte
// past 8000 results, a pattern match past 200 levels of recursion with
// "pattern too complex".
//
// The watchdog can only stop a script between two instructions, and its
// samples can come late on a loaded machine, so the functions that build long
// strings do not wait for it: the .. operator (compiled into a call of the
// library's concatenation, which joins a whole chain a .. b .. c at once and
// refuses a result past Limits.MaxString before building it), string.rep,
// string.format, table.concat and string.gsub read the heap themselves before
// building a string of 256 KiB or more. A doubling loop (s = s .. s) now ends
// at MaxString; a loop keeping 512 KiB strings stopped 34 MiB past where the
// heap started with HeapBytes 32 MiB, and one keeping 8 MiB strings 256 MiB
// past with the default (TestBudgets, TestHeapOvershoot; a doubling loop
// went 111 MiB past a 32 MiB budget on a loaded machine before). One
// assignment can grow a table's array part by at most 4 Mi slots (64 MiB):
// lua.MaxArrayIndex is lowered for the process (t[2^25] = 1 grew the heap by
// 1.4 GiB before).
// The heap measured is the process's (runtime/metrics
// /memory/classes/heap/objects:bytes), garbage included, so a script that
// churns garbage faster than the collector frees it, or other goroutines
// allocating meanwhile, count against it.
//
// Not bounded by the instruction budget, only by the time budget: an error
// caught by pcall costs time in proportion to the depth of the call stack
// (gopher-lua formats a traceback for each). Not bounded by any budget, only
// by the size of the script: gopher-lua's parser allocates up to a few
// hundred bytes per byte of a pathologically nested body (a 200 KiB body of
// "((((" about 64 MiB), before the depth check can refuse it; lockd's wire
// limit (respguard: 128 KiB per command on the client port) bounds the body.
//
// # Conversions and errors
//
// Replies convert as Redis documents for RESP2, both ways (see toReply and
// fromReply). Errors are Error Values with Redis 7's text: compile errors
// "ERR Error compiling script (new function): user_script:LINE: ...",
// runtime errors "ERR user_script:LINE: MESSAGE script: SHA, on
// @user_script:LINE.", a redis.call error the script did not catch with its
// own text and the same suffix, and a spent budget "ERR Script exceeded the
// limit of N instructions" (or the time or memory limit) with the suffix.
//
// # Differences from Redis 7.2
//
//   - Not available: loadstring and load (Redis has them), cjson, cmsgpack,
//     struct, string.dump, redis.acl_check_cmd, RESP3 (redis.setresp(3) fails
//     with an error). redis.log checks its arguments and logs nothing;
//     redis.set_repl checks its flags and changes nothing; the flags of a
//     "#!lua" shebang line are checked and not enforced.
//   - math.random starts from the same state in every run (Redis 7's
//     sequence goes on from script to script).
//   - Syntax errors say what gopher-lua's parser says ("user_script:1:
//     syntax error near 'x'", where Lua would say "unexpected symbol near
//     'x'"), and errors raised by the VM itself say what gopher-lua says
//     ("attempt to index a non-table object(nil) with key 'x'", where Lua
//     names the variable). Errors raised by the libraries and the redis
//     table have Lua's and Redis's wording.
//   - Nesting deeper than 200 levels of the syntax tree fails to compile; Lua
//     counts levels differently (a long a + b + c ... chain, or a long
//     elseif chain, is one level to Lua and one per term here).
//   - The .. operator converts numbers to strings as gopher-lua does
//     (integers in full, others to the shortest form that reads back); Lua
//     uses "%.14g" (1e15 is "1e+15"), as tostring, string.format, table.concat
//     and the string functions do here too. A concatenation longer than
//     Limits.MaxString fails with "resulting string too large" (Lua: bounded
//     by memory only).
//   - Lua function calls nest at most 1000 deep (Lua 5.1: 20000, and 200
//     levels of C calls); a pattern
//     match recurses at most 200 deep (Lua 5.1: unbounded); string.rep and
//     string.format count in 64 bits (Lua casts string.rep's count to a C int,
//     so string.rep('x', 2^31) is "" there and "resulting string too large"
//     here).
//   - getmetatable answers nil for _G and the library tables (Redis answers
//     the read-only metatable of _G, nil for the libraries).
//   - A table nested more than 16 deep in a reply becomes the error "ERR
//     reached lua stack limit" (Redis: past its Lua stack, about 2000 deep),
//     so that every reply fits resp's binary form.
//   - An error raised as a table without an err field is "ERR Error running
//     script: the error object is a table without an err field" (Redis 7.2
//     reads a NULL message).
package script
