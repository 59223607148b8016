package script

import (
	"reflect"
	"testing"

	"github.com/lockd/lockd/resp"
)

// TestLibraries: the string, table, math and bit libraries answer what Lua
// 5.1 (and LuaBitOp) answer.
func TestLibraries(t *testing.T) {
	b, n := resp.BulkValue, resp.IntValue
	arr := resp.ArrayValue
	for _, tc := range []struct {
		body string
		want resp.Value
	}{
		{"return string.format('[%5.2s] [%-5d] [%+.3e] [%g] [%#x] [%o] [%5.1f]', 'abc', 42, 3.14159, 1234567, 255, 8, -2.25)", b("[   ab] [42   ] [+3.142e+00] [1.23457e+06] [0xff] [10] [ -2.2]")},
		{"return string.format('%d %i %u %c%c %x %X %5.3d %%', 3.9, -3.9, 7, 72, 105, 255, 255, 7)", b("3 -3 7 Hi ff FF   007 %")},
		{"return string.format('%q', 'a\"b\\\\c\\n\\0')", b("\"a\\\"b\\\\c\\\n\\000\"")},
		{"return string.format('%s %s %s', 1, 1.5, 'x')", b("1 1.5 x")},
		{"return string.format('%f %e %g', 1/0, -1/0, 1/0)", b("inf -inf inf")},
		{"return string.format('%y', 1)", resp.ErrorValue("")},
		{"return string.format('%d')", resp.ErrorValue("")},
		{"return {string.find('hello', 'l')}", arr(n(3), n(3))},
		{"return {string.find('hello', 'l', 4)}", arr(n(4), n(4))},
		{"return {string.find('hello', 'l', -1)}", arr()},
		{"return {string.find('a.b', '.', 1, true)}", arr(n(2), n(2))},
		{"return {string.find('key=val', '(%w+)=(%w+)')}", arr(n(1), n(7), b("key"), b("val"))},
		{"return {string.find('abc', '^b')}", arr()},
		{"return {string.find('abc', 'c$')}", arr(n(3), n(3))},
		{"return {string.find('', '')}", arr(n(1), n(0))},
		{"return {string.match('  trim  ', '^%s*(.-)%s*$')}", arr(b("trim"))},
		{"return {string.match('2024-01-02', '(%d+)-(%d+)-(%d+)')}", arr(b("2024"), b("01"), b("02"))},
		{"return {string.match('hello', '()ll()')}", arr(n(3), n(5))},
		{"return {string.match('f(a(b)c)d', '%b()')}", arr(b("(a(b)c)"))},
		{"return {string.match('THE (quick) fox', '%f[%a]%a+')}", arr(b("THE"))},
		{"return {string.match('abab', '(ab)%1')}", arr(b("ab"))},
		{"return {string.match('x', '[%a_][%w_]*')}", arr(b("x"))},
		{"return {string.match('a]b', '[]]')}", arr(b("]"))},
		{"return {string.match('a-b', '[a%-]+')}", arr(b("a-"))},
		{"return {string.match('a', '[')}", resp.ErrorValue("")},
		{"return {string.match('a', '%')}", resp.ErrorValue("")},
		{"return {string.match('a', '(a')}", resp.ErrorValue("")},
		{"return {string.gsub('hello world', 'o', '0')}", arr(b("hell0 w0rld"), n(2))},
		{"return {string.gsub('hello world', '(%w+)', '<%1>')}", arr(b("<hello> <world>"), n(2))},
		{"return {string.gsub('abc', '', '-')}", arr(b("-a-b-c-"), n(4))},
		{"return {string.gsub('abc', '%w', '%0%0', 2)}", arr(b("aabbc"), n(2))},
		{"return {string.gsub('$name is $age', '%$(%w+)', {name = 'bob', age = 7})}", arr(b("bob is 7"), n(2))},
		{"return {string.gsub('abc', '%w', function(c) if c == 'b' then return false end return c:upper() end)}", arr(b("AbC"), n(3))},
		{"return {string.gsub('abc', '^a', 'x')}", arr(b("xbc"), n(1))},
		{"return {string.gsub('abc', '%w', {})}", arr(b("abc"), n(3))},
		{"return string.gsub('abc', '%w', '%2')", resp.ErrorValue("")},
		{"local t = {} for k, v in string.gmatch('a=1, b=2', '(%w+)=(%w+)') do t[#t + 1] = k .. v end return t", arr(b("a1"), b("b2"))},
		{"local t = {} for w in string.gmatch('one two', '%a+') do t[#t + 1] = w end return t", arr(b("one"), b("two"))},
		{"return {string.byte('ABC', 1, -1)}", arr(n(65), n(66), n(67))},
		{"return string.char(72, 105)", b("Hi")},
		{"return string.char(256)", resp.ErrorValue("")},
		{"return {string.sub('hello', 2, -2), string.sub('hello', -3), string.sub('hello', 0), string.sub('hello', 10)}", arr(b("ell"), b("llo"), b("hello"), b(""))},
		{"return {string.len('a\\0b'), ('x'):rep(3), ('x'):rep(0), string.reverse('abc'), string.upper('aBc'), string.lower('AbC')}", arr(n(3), b("xxx"), b(""), b("cba"), b("ABC"), b("abc"))},
		{"return string.len(123)", n(3)},
		{"return table.concat({1, 'a', 2.5}, ', ')", b("1, a, 2.5")},
		{"return table.concat({'a', 'b', 'c'}, '', 2, 3)", b("bc")},
		{"return table.concat({'a', {}}, '')", resp.ErrorValue("")},
		{"local t = {1, 2} table.insert(t, 3) table.insert(t, 1, 0) return t", arr(n(0), n(1), n(2), n(3))},
		{"local t = {1, 2, 3} return {table.remove(t), table.remove(t, 1), t[1], #t}", arr(n(3), n(1), n(2), n(1))},
		{"local t = {3, 1, 2} table.sort(t) return t", arr(n(1), n(2), n(3))},
		{"local t = {'b', 'c', 'a'} table.sort(t, function(x, y) return x > y end) return t", arr(b("c"), b("b"), b("a"))},
		{"local t = {1, 'x'} table.sort(t)", resp.ErrorValue("")},
		{"return {table.maxn({1, 2, [10] = 3}), table.getn({1, 2})}", arr(n(10), n(2))},
		{"local s = 0 table.foreachi({5, 6}, function(i, v) s = s + i * v end) return s", n(17)},
		{"table.setn({}, 1)", resp.ErrorValue("")},
		{"return {math.floor(-1.5), math.ceil(-1.5), math.abs(-2), math.max(1, 5, 3), math.min(4, 2), math.fmod(7, 3), math.mod(-7, 3)}", arr(n(-2), n(-1), n(2), n(5), n(2), n(1), n(-1))},
		{"return {math.sqrt(16), math.pow(2, 10), math.huge > 1e308, math.pi > 3.14, math.floor(math.log10(1000) + 0.5)}", arr(n(4), n(1024), n(1), n(1), n(3))},
		{"return {math.modf(3.7)}", arr(n(3), n(0))},
		{"return {math.frexp(8)}", arr(n(0), n(4))},
		{"return math.max()", resp.ErrorValue("")},
		{"return {bit.band(0xff, 0x0f), bit.bor(1, 2, 4), bit.bxor(5, 3), bit.bnot(0), bit.tobit(0xffffffff), bit.tobit(2^32 + 1)}", arr(n(15), n(7), n(6), n(-1), n(-1), n(1))},
		{"return {bit.lshift(1, 31), bit.rshift(-1, 28), bit.arshift(-16, 2), bit.rol(0x80000001, 1), bit.ror(1, 1), bit.bswap(0x01020304)}", arr(n(-2147483648), n(15), n(-4), n(3), n(-2147483648), n(0x04030201))},
		{"return {bit.tohex(255), bit.tohex(255, -4), bit.tohex(-1, 2)}", arr(b("000000ff"), b("00FF"), b("ff"))},
	} {
		t.Run(tc.body, func(t *testing.T) {
			got := eval(t, nil, tc.body, nil, nil)
			if tc.want.Kind == resp.Error {
				if !got.IsError() {
					t.Errorf("got %v, want an error", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
