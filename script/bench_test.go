package script

import (
	"testing"

	"github.com/lockd/lockd/resp"
	lua "github.com/yuin/gopher-lua"
)

// releaseScript is redis-py's Lock release script (redis/lock.py 4.3.4).
const releaseScript = `
        local token = redis.call('get', KEYS[1])
        if not token or token ~= ARGV[1] then
            return 0
        end
        redis.call('del', KEYS[1])
        return 1
    `

// tokenCaller answers GET with the token and DEL with 1, without a map, so
// that the benchmark measures the interpreter.
type tokenCaller struct{}

func (tokenCaller) Call(args []string) resp.Value {
	if args[0] == "get" {
		return resp.BulkValue("tok")
	}
	return resp.IntValue(1)
}

// BenchmarkRun runs the release script as Run does: a fresh interpreter per
// run, the compiled script from the cache, the watchdog started and stopped.
func BenchmarkRun(b *testing.B) {
	keys, args := []string{"lock"}, []string{"tok"}
	b.ReportAllocs()
	for b.Loop() {
		if v := Run(releaseScript, keys, args, tokenCaller{}, Limits{}); v.Int != 1 {
			b.Fatal(v)
		}
	}
}

// BenchmarkRunPooled runs the release script on one interpreter reused from
// run to run, which Run does not do: it measures what pooling would save.
func BenchmarkRunPooled(b *testing.B) {
	keys, args := []string{"lock"}, []string{"tok"}
	proto, err := compiled(SHA1Hex(releaseScript), releaseScript)
	if err != nil {
		b.Fatal(err)
	}
	lim := Limits{}.withDefaults()
	r := &run{budget: newBudget(lim.Instructions), caller: tokenCaller{}, lim: lim, random: newLrand48()}
	L := r.newState(keys, args)
	defer L.Close()
	b.ReportAllocs()
	for b.Loop() {
		r.budget = newBudget(lim.Instructions)
		L.SetContext(r)
		stop := r.watch(lim.Timeout, lim.HeapBytes)
		fn := L.NewFunctionFromProto(proto)
		fn.Env = r.globals
		ret, errObj, _ := r.call(L, fn)
		L.SetTop(0)
		stop()
		if errObj != nil || ret != lua.LNumber(1) {
			b.Fatal(ret, errObj)
		}
	}
}
