package script

import "testing"

func TestSmoke(t *testing.T) {
	for _, s := range []string{
		`return 1`,
		`return 'a' .. 'b' .. 'c'`,
		`return {1, 2, {3, 'x'}}`,
		`return redis.call('get', KEYS[1])`,
		`redis.call('set', KEYS[1], ARGV[1]) return redis.call('get', KEYS[1])`,
		`return x`,
		`x = 1`,
		`return redis.call('nope')`,
		`return redis.pcall('nope')`,
		`return pcall(redis.call, 'nope')`,
		`error('boom')`,
		`error({err='MY boom'})`,
		`while true do end`,
		`local function f() return f() + 1 end return f()`,
		`local s = 'x' while true do s = s .. s end`,
		`return string.rep('x', 2^31)`,
		`return tostring(1e15) .. ' ' .. tostring(0.1)`,
		`return string.format('%5.2f|%d|%s|%q', 3.14159, 42, 'hi', 'a\nb')`,
		`return {string.find('hello world', 'o w')}`,
		`return {string.match('key:123', '(%a+):(%d+)')}`,
		`return (string.gsub('hello', 'l', 'L'))`,
		`return math.random(100)`,
		`return bit.band(0xff, 0x0f)`,
		`string.x = 1`,
		`return rawset(_G, 'x', 1)`,
		`return getmetatable('').__index == string`,
		`local c = coroutine.wrap(function() coroutine.yield(1) return 2 end) return {c(), c()}`,
		`local co = coroutine.create(function() while true do end end) return coroutine.resume(co)`,
		`return {ok='fine'}`,
		`return redis.error_reply('MY bad')`,
		`return #KEYS`,
		`local t = {} for k in pairs(_G) do t[#t+1] = k end table.sort(t) return t`,
	} {
		v := evalWithin(t, nil, s, []string{"k"}, []string{"v"}, Limits{Instructions: 1_000_000, HeapBytes: 64 << 20})
		t.Logf("%-60s => %v", s, v)
	}
}
