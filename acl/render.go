package acl

import "strings"

// Describe is u as ACL LIST shows it: "user <name> " and its rules
// (RuleStrings), which ACL SETUSER turns back into u.
func Describe(u *User) string {
	return "user " + u.Name + " " + strings.Join(RuleStrings(u), " ")
}

// RuleStrings are the rules that make u from a new user, in Redis's order:
// on or off, nopass, the password hashes (#hash), the key patterns (~* for
// allkeys), the channel rules (always one: &* for allchannels, else
// resetchannels and the patterns), +@all or -@all and the command rules.
func RuleStrings(u *User) []string {
	out := Flags(u)
	for _, p := range u.Passwords {
		out = append(out, "#"+p)
	}
	if k := KeyRules(u); k != "" {
		out = append(out, strings.Fields(k)...)
	}
	if u.AllChannels {
		out = append(out, "&*")
	} else {
		out = append(out, "resetchannels")
		for _, c := range u.Channels {
			out = append(out, "&"+c)
		}
	}
	return append(out, strings.Fields(CommandRules(u))...)
}

// Flags are ACL GETUSER's flags: on or off, and nopass.
func Flags(u *User) []string {
	out := []string{"off"}
	if u.On {
		out[0] = "on"
	}
	if u.NoPass {
		out = append(out, "nopass")
	}
	return out
}

// KeyRules is ACL GETUSER's keys: "~*" for allkeys, else the patterns
// separated by spaces ("" for none).
func KeyRules(u *User) string {
	if u.AllKeys {
		return "~*"
	}
	var b strings.Builder
	for i, k := range u.Keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch k.Perm {
		case PermRead:
			b.WriteString("%R")
		case PermWrite:
			b.WriteString("%W")
		}
		b.WriteByte('~')
		b.WriteString(k.Pattern)
	}
	return b.String()
}

// ChannelRules is ACL GETUSER's channels: "&*" for allchannels, else the
// patterns, each with its &, separated by spaces ("" for none).
func ChannelRules(u *User) string {
	if u.AllChannels {
		return "&*"
	}
	var b strings.Builder
	for i, c := range u.Channels {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('&')
		b.WriteString(c)
	}
	return b.String()
}

// CommandRules is ACL GETUSER's commands: +@all or -@all, then the rules.
func CommandRules(u *User) string {
	var b strings.Builder
	if u.AllCommands {
		b.WriteString("+@all")
	} else {
		b.WriteString("-@all")
	}
	for _, r := range u.Rules {
		b.WriteByte(' ')
		if r.Allow {
			b.WriteByte('+')
		} else {
			b.WriteByte('-')
		}
		if r.Category != 0 {
			b.WriteByte('@')
			b.WriteString(r.Category.String())
			continue
		}
		b.WriteString(r.Command)
		if r.Sub != "" {
			b.WriteByte('|')
			b.WriteString(r.Sub)
		}
	}
	return b.String()
}
