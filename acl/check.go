package acl

import (
	"slices"
	"strings"

	"github.com/lockd/lockd/internal/glob"
)

// Category is a set of ACL categories, one bit each.
type Category uint16

// The categories: Redis's, for the commands lockd has, and @lock for the
// lock commands (LOCK, UNLOCK, RENEW, OWNER, LOCKINFO).
const (
	CatKeyspace Category = 1 << iota
	CatRead
	CatWrite
	CatPubsub
	CatAdmin
	CatFast
	CatSlow
	CatDangerous
	CatConnection
	CatTransaction
	CatScripting
	CatLock
	catEnd
)

// categoryNames are the names of the categories, in ACL CAT's order, bit by
// bit.
var categoryNames = [...]string{"keyspace", "read", "write", "pubsub", "admin", "fast", "slow", "dangerous",
	"connection", "transaction", "scripting", "lock"}

// CategoryNames returns the names of every category, in ACL CAT's order.
func CategoryNames() []string { return categoryNames[:] }

// CategoryByName returns the category of name (lower or upper case,
// without '@'), or 0 when there is none.
func CategoryByName(name string) Category {
	for i, n := range categoryNames {
		if strings.EqualFold(n, name) {
			return 1 << i
		}
	}
	return 0
}

// String is the category's name, for a single category.
func (c Category) String() string {
	for i, n := range categoryNames {
		if c == 1<<i {
			return n
		}
	}
	return "?"
}

// CanRun reports whether u may run the command cmd (lower case) whose
// first argument is sub (lower case, "" for none) and whose categories are
// cats.
func (u *User) CanRun(cmd, sub string, cats Category) bool {
	ok := u.AllCommands
	for i := range u.Rules {
		r := &u.Rules[i]
		if r.Category != 0 {
			if cats&r.Category != 0 {
				ok = r.Allow
			}
		} else if r.Command == cmd && (r.Sub == "" || r.Sub == sub) {
			ok = r.Allow
		}
	}
	return ok
}

// Unrestricted reports whether u may run every command on every key and
// channel, so that a check needs to look no further.
func (u *User) Unrestricted() bool {
	return u.AllCommands && u.AllKeys && u.AllChannels && len(u.Rules) == 0
}

// CanChannel reports whether u may publish to or subscribe to channel:
// some channel pattern of u matches it.
func (u *User) CanChannel(channel string) bool {
	if u.AllChannels {
		return true
	}
	for _, p := range u.Channels {
		if glob.Match(p, channel) {
			return true
		}
	}
	return false
}

// CanPattern reports whether u may subscribe to the channel pattern
// (PSUBSCRIBE): as in Redis, only a pattern u holds literally, unless u has
// all channels, because a pattern's matches cannot be compared.
func (u *User) CanPattern(pattern string) bool {
	return u.AllChannels || slices.Contains(u.Channels, pattern)
}

// CanKey reports whether u may access key as need says: some pattern of u
// grants at least need and matches key.
func (u *User) CanKey(key string, need Perm) bool {
	if u.AllKeys {
		return true
	}
	for _, p := range u.Keys {
		if p.Perm&need == need && glob.Match(p.Pattern, key) {
			return true
		}
	}
	return false
}
