package acl

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

//lint:file-ignore ST1005 the texts are Redis's, word for word

// RuleError is a rule that ACL SETUSER refuses, with Redis's reply text.
type RuleError struct {
	Rule string
	Msg  string
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("ERR Error in ACL SETUSER modifier '%s': %s", e.Rule, e.Msg)
}

// Redis's reasons (ACLSetUserStringError), and lockd's limits.
const (
	msgSyntax       = "Syntax error"
	msgUnknown      = "Unknown command or category name in ACL"
	msgAfterAllKeys = "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
	msgNoSuchPass   = "The password you are trying to remove from the user does not exist"
	msgBadHash      = "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
	msgAfterAllChan = "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels"
)

var (
	msgTooManyRules     = fmt.Sprintf("too many command rules (at most %d)", MaxRules)
	msgTooManyPatterns  = fmt.Sprintf("too many key patterns (at most %d)", MaxPatterns)
	msgTooManyChannels  = fmt.Sprintf("too many channel patterns (at most %d)", MaxPatterns)
	msgTooManyPasswords = fmt.Sprintf("too many passwords (at most %d)", MaxPasswords)
	msgTooLong          = fmt.Sprintf("rule too long (at most %d bytes; key patterns at most %d)", MaxRuleLen, MaxPatternLen)
)

// Errors about user names, with Redis's text where it has one.
var (
	ErrNameSpaces  = errors.New("ERR Usernames can't contain spaces or null characters")
	ErrNameLength  = fmt.Errorf("ERR user names must have 1 to %d bytes", MaxNameLen)
	ErrTooManyUser = fmt.Errorf("ERR too many ACL users (at most %d)", MaxUsers)
)

// ValidName checks a user name: 1 to MaxNameLen bytes, no white space, no
// NUL.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return ErrNameLength
	}
	if hasSpace(name) {
		return ErrNameSpaces
	}
	return nil
}

// hasSpace reports whether s holds a space (see below) or NUL.
//
// Space is what strings.Fields splits on (unicode.IsSpace, U+00A0 and
// U+2028 included): a rule is stored as one string and read back as the
// fields of the rules joined by spaces, so a rule with any space in it
// would come back as several rules.
func hasSpace(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r == 0 || unicode.IsSpace(r) }) >= 0
}

// Apply returns u with rules applied in order, as ACL SETUSER applies
// them; u is not changed. On the first rule refused it returns a
// *RuleError and no user: a SETUSER applies all its rules or none. known,
// when not nil, says whether a command exists (+command of any other is
// refused); the replicated table passes nil, as every rule in the log was
// checked by the node that proposed it.
func Apply(u *User, rules []string, known func(cmd string) bool) (*User, error) {
	n := u.Clone()
	for _, r := range rules {
		if msg := n.apply(r, known); msg != "" {
			return nil, &RuleError{Rule: r, Msg: msg}
		}
	}
	return n, nil
}

// apply applies one rule to u, or returns why not.
func (u *User) apply(rule string, known func(string) bool) string {
	if len(rule) > MaxRuleLen {
		return msgTooLong
	}
	switch lower(rule) {
	case "on":
		u.On = true
	case "off":
		u.On = false
	case "nopass":
		u.NoPass, u.Passwords = true, nil
	case "resetpass":
		u.NoPass, u.Passwords = false, nil
	case "allkeys":
		u.AllKeys, u.Keys = true, nil
	case "resetkeys":
		u.AllKeys, u.Keys = false, nil
	case "allchannels":
		u.AllChannels, u.Channels = true, nil
	case "resetchannels":
		u.AllChannels, u.Channels = false, nil
	case "allcommands", "+@all":
		u.AllCommands, u.Rules = true, nil
	case "nocommands", "-@all":
		u.AllCommands, u.Rules = false, nil
	case "reset":
		*u = User{Name: u.Name}
	default:
		if rule == "" {
			return msgSyntax
		}
		switch rule[0] {
		case '>':
			return u.addPassword(HashPassword(rule[1:]))
		case '<':
			return u.removePassword(HashPassword(rule[1:]))
		case '#':
			if !validHash(rule[1:]) {
				return msgBadHash
			}
			return u.addPassword(rule[1:])
		case '!':
			if !validHash(rule[1:]) {
				return msgBadHash
			}
			return u.removePassword(rule[1:])
		case '~', '%':
			return u.addPattern(rule)
		case '&':
			return u.addChannel(rule[1:])
		case '+', '-':
			return u.addRule(rule[0] == '+', lower(rule[1:]), known)
		}
		return msgSyntax
	}
	return ""
}

// lower is s with ASCII letters in lower case, and every other byte as it
// is (strings.ToLower would turn invalid UTF-8 into longer runes).
func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (u *User) addPassword(h string) string {
	u.NoPass = false
	if slices.Contains(u.Passwords, h) {
		return ""
	}
	if len(u.Passwords) >= MaxPasswords {
		return msgTooManyPasswords
	}
	u.Passwords = append(u.Passwords, h)
	return ""
}

func (u *User) removePassword(h string) string {
	i := slices.Index(u.Passwords, h)
	if i < 0 {
		return msgNoSuchPass
	}
	u.Passwords = slices.Delete(u.Passwords, i, i+1)
	if len(u.Passwords) == 0 {
		u.Passwords = nil
	}
	return ""
}

// addPattern applies ~pattern or %<R|W|RW>~pattern. A pattern already
// there gains the new permissions; ~* (read and write on everything) is
// allkeys.
func (u *User) addPattern(rule string) string {
	if u.AllKeys {
		return msgAfterAllKeys
	}
	perm, rest := PermRW, rule[1:]
	if rule[0] == '%' {
		perm = 0
		i := 1
		for ; i < len(rule) && rule[i] != '~'; i++ {
			switch c := rule[i] | 0x20; {
			case c == 'r' && perm&PermRead == 0:
				perm |= PermRead
			case c == 'w' && perm&PermWrite == 0:
				perm |= PermWrite
			default:
				return msgSyntax
			}
		}
		if i == len(rule) || perm == 0 {
			return msgSyntax
		}
		rest = rule[i+1:]
	}
	switch {
	case len(rest) > MaxPatternLen:
		return msgTooLong
	case hasSpace(rest):
		return msgSyntax
	}
	if i := slices.IndexFunc(u.Keys, func(k KeyPattern) bool { return k.Pattern == rest }); i >= 0 {
		perm |= u.Keys[i].Perm
		u.Keys = slices.Delete(u.Keys, i, i+1)
		if rest != "*" || perm != PermRW {
			u.Keys = slices.Insert(u.Keys, i, KeyPattern{Perm: perm, Pattern: rest})
		}
	}
	if rest == "*" && perm == PermRW {
		u.AllKeys, u.Keys = true, nil
		return ""
	}
	if !slices.ContainsFunc(u.Keys, func(k KeyPattern) bool { return k.Pattern == rest }) {
		if len(u.Keys) >= MaxPatterns {
			return msgTooManyPatterns
		}
		u.Keys = append(u.Keys, KeyPattern{Perm: perm, Pattern: rest})
	}
	return ""
}

// addChannel applies &pattern: a pub/sub channel pattern; &* is
// allchannels.
func (u *User) addChannel(pattern string) string {
	switch {
	case pattern == "*": // also after allchannels (Redis refuses it), so that ACL LIST's &* reads back on any user
		u.AllChannels, u.Channels = true, nil
		return ""
	case u.AllChannels:
		return msgAfterAllChan
	case len(pattern) > MaxPatternLen:
		return msgTooLong
	case hasSpace(pattern):
		return msgSyntax
	case slices.Contains(u.Channels, pattern):
		return ""
	case len(u.Channels) >= MaxPatterns:
		return msgTooManyChannels
	}
	u.Channels = append(u.Channels, pattern)
	return ""
}

// addRule applies +name or -name (name in lower case): a category
// (@name), a command or command|subcommand. A rule for the same category
// or command replaces the earlier one, which it overrides anyway.
func (u *User) addRule(allow bool, name string, known func(string) bool) string {
	r := Rule{Allow: allow}
	if cat, ok := strings.CutPrefix(name, "@"); ok {
		if r.Category = CategoryByName(cat); r.Category == 0 {
			return msgUnknown
		}
	} else {
		r.Command, r.Sub, _ = strings.Cut(name, "|")
		switch {
		case r.Command == "" || hasSpace(name) || strings.Contains(r.Sub, "|"):
			return msgSyntax
		case strings.Contains(name, "|") && r.Sub == "":
			return msgSyntax
		case known != nil && !known(r.Command):
			return msgUnknown
		}
	}
	same := func(o Rule) bool { return o.Category == r.Category && o.Command == r.Command && o.Sub == r.Sub }
	u.Rules = slices.DeleteFunc(u.Rules, same)
	if len(u.Rules) >= MaxRules {
		return msgTooManyRules
	}
	u.Rules = append(u.Rules, r)
	return ""
}

// HashRules returns rules with every clear password hashed: >password
// becomes #hash and <password !hash, so that what a node proposes to the
// raft log holds no clear password. The rules are not otherwise checked.
func HashRules(rules []string) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		switch {
		case strings.HasPrefix(r, ">"):
			out[i] = "#" + HashPassword(r[1:])
		case strings.HasPrefix(r, "<"):
			out[i] = "!" + HashPassword(r[1:])
		default:
			out[i] = r
		}
	}
	return out
}

// ClearPassword reports whether rule carries a clear password (>, <), which
// the raft log must never hold.
func ClearPassword(rule string) bool {
	return strings.HasPrefix(rule, ">") || strings.HasPrefix(rule, "<")
}
