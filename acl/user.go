package acl

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"slices"
)

// The limits (see the package doc).
const (
	MaxNameLen    = 128
	MaxUsers      = 1000
	MaxRules      = 256
	MaxPatterns   = 256 // key patterns, and channel patterns apart
	MaxPatternLen = 1024
	MaxPasswords  = 16
	MaxRuleLen    = 2048
)

// DefaultName is the user every connection starts as, which always exists.
const DefaultName = "default"

// Perm is the access to keys a key pattern grants, or a command needs.
type Perm uint8

// The permissions. A command that needs neither (EXISTS, TYPE, WATCH, as
// in Redis) needs a key to match some pattern of the user, whatever its
// permissions.
const (
	PermRead  Perm = 1 << iota // %R~
	PermWrite                  // %W~
	PermRW    = PermRead | PermWrite
)

// KeyPattern is one key pattern of a user: a Redis glob and the access it
// grants to the keys it matches.
type KeyPattern struct {
	Perm    Perm
	Pattern string
}

// Rule is one command rule of a user: +name or -name (Allow), where name is
// a command, command|subcommand, or a category (Category not 0).
type Rule struct {
	Allow    bool
	Category Category // 0: a command rule
	Command  string   // lower case
	Sub      string   // lower case; "" for the whole command
}

// User is one ACL user. The zero User is what ACL SETUSER starts a new user
// from: off, no password (so AUTH fails), no keys, no commands.
//
// Passwords holds SHA-256 hashes in lower-case hex, in the order they were
// added; NoPass is set only when Passwords is empty. AllKeys excludes Keys
// (allkeys clears them), AllChannels excludes Channels (allchannels clears
// them), and Rules apply in order after AllCommands: a
// command is allowed when the last rule that names it, or a category it is
// in, allows it, or, when none does, when AllCommands.
type User struct {
	Name        string
	On          bool
	NoPass      bool
	Passwords   []string
	AllKeys     bool
	Keys        []KeyPattern
	AllChannels bool
	Channels    []string // pub/sub channel patterns (&pattern)
	AllCommands bool
	Rules       []Rule
}

// NewDefault returns the default user as a node without a replicated one
// has it: on, all keys, all channels, all commands, with the SHA-256 of
// password, or nopass when password is empty (--requirepass).
func NewDefault(password string) *User {
	u := &User{Name: DefaultName, On: true, AllKeys: true, AllChannels: true, AllCommands: true}
	if password == "" {
		u.NoPass = true
	} else {
		u.Passwords = []string{HashPassword(password)}
	}
	return u
}

// Clone returns a deep copy of u.
func (u *User) Clone() *User {
	c := *u
	c.Passwords = slices.Clone(u.Passwords)
	c.Keys = slices.Clone(u.Keys)
	c.Channels = slices.Clone(u.Channels)
	c.Rules = slices.Clone(u.Rules)
	return &c
}

// Equal reports whether u and v are the same user.
func (u *User) Equal(v *User) bool {
	return u.Name == v.Name && u.On == v.On && u.NoPass == v.NoPass && u.AllKeys == v.AllKeys &&
		u.AllCommands == v.AllCommands && u.AllChannels == v.AllChannels && slices.Equal(u.Passwords, v.Passwords) &&
		slices.Equal(u.Keys, v.Keys) && slices.Equal(u.Channels, v.Channels) && slices.Equal(u.Rules, v.Rules)
}

// HashPassword is the SHA-256 of password in lower-case hex, as Redis
// stores passwords.
func HashPassword(password string) string {
	sum := sha256.Sum256([]byte(password))
	return hex.EncodeToString(sum[:])
}

// CheckPassword reports whether password opens u: any password when u is
// nopass, else one whose hash u holds. It compares hashes in constant time.
// It does not look at On.
func (u *User) CheckPassword(password []byte) bool {
	if u.NoPass {
		return true
	}
	sum := sha256.Sum256(password)
	var h [64]byte
	hex.Encode(h[:], sum[:])
	ok := 0
	for _, p := range u.Passwords {
		ok |= subtle.ConstantTimeCompare(h[:], []byte(p))
	}
	return ok == 1
}
