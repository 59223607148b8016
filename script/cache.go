package script

import (
	"container/list"
	"sync"

	lua "github.com/yuin/gopher-lua"
)

// The bounds of the compiled-script cache: how many scripts, and how many
// bytes of their bodies (the compiled form takes a small multiple of that).
// A body larger than cacheBytes is compiled for each run and not kept.
const (
	cacheEntries = 1024
	cacheBytes   = 8 << 20
)

// protos is the process's cache of compiled scripts.
var protos = newProtoCache(cacheEntries, cacheBytes)

// protoCache keeps compiled scripts by SHA, evicting the least recently used
// beyond its bounds. A FunctionProto is read-only once compiled, so many runs
// may share one (gopher-lua's NewFunctionFromProto).
//
// Concurrency: safe for concurrent use.
type protoCache struct {
	maxEntries, maxBytes int

	mu    sync.Mutex
	bytes int                      // sum of the cached bodies' lengths
	order *list.List               // of *cached, most recently used first
	bySHA map[string]*list.Element // values are in order
}

type cached struct {
	sha   string
	proto *lua.FunctionProto
	size  int
}

func newProtoCache(maxEntries, maxBytes int) *protoCache {
	return &protoCache{maxEntries: maxEntries, maxBytes: maxBytes, order: list.New(), bySHA: map[string]*list.Element{}}
}

// get returns the compiled script with this SHA, or nil.
func (c *protoCache) get(sha string) *lua.FunctionProto {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.bySHA[sha]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*cached).proto
}

// put keeps p, compiled from a body of size bytes, under sha.
func (c *protoCache) put(sha string, p *lua.FunctionProto, size int) {
	if size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.bySHA[sha]; ok {
		return
	}
	c.bySHA[sha] = c.order.PushFront(&cached{sha: sha, proto: p, size: size})
	c.bytes += size
	for c.order.Len() > c.maxEntries || c.bytes > c.maxBytes {
		old := c.order.Remove(c.order.Back()).(*cached)
		delete(c.bySHA, old.sha)
		c.bytes -= old.size
	}
}
