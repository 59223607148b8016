package acl

import (
	"strings"
	"testing"
)

func apply(t testing.TB, u *User, rules string) *User {
	t.Helper()
	n, err := Apply(u, strings.Fields(rules), nil)
	if err != nil {
		t.Fatalf("Apply(%q): %v", rules, err)
	}
	return n
}

func TestApplyRendersAsRedis(t *testing.T) {
	h := HashPassword("secret")
	for _, tc := range []struct {
		name, rules, want string
	}{
		{"new user", "", "user alice off resetchannels -@all"},
		{"a service", "on >secret ~orders:* -@all +@lock", "user alice on #" + h + " ~orders:* resetchannels -@all +@lock"},
		{"read-only monitor", "on nopass %R~* +@read -@write", "user alice on nopass %R~* resetchannels -@all +@read -@write"},
		{"admin", "on >secret allkeys allcommands", "user alice on #" + h + " ~* resetchannels +@all"},
		{"~* is allkeys", "~*", "user alice off ~* resetchannels -@all"},
		{"%RW~* is allkeys", "%RW~*", "user alice off ~* resetchannels -@all"},
		{"%R~ and %W~ merge", "%R~a %W~a", "user alice off ~a resetchannels -@all"},
		{"%R~* and %W~* merge into allkeys", "%R~* %W~*", "user alice off ~* resetchannels -@all"},
		{"a pattern twice is kept once", "~a ~b ~a", "user alice off ~a ~b resetchannels -@all"},
		{"resetkeys", "~a resetkeys ~b", "user alice off ~b resetchannels -@all"},
		{"a later rule for a command replaces the earlier", "+get -set +get", "user alice off resetchannels -@all -set +get"},
		{"subcommands", "+acl|WHOAMI -client", "user alice off resetchannels -@all +acl|whoami -client"},
		{"+@all clears the rules", "+get +@all -lock", "user alice off resetchannels +@all -lock"},
		{"nocommands", "+@all -get nocommands", "user alice off resetchannels -@all"},
		{"nopass clears passwords", ">a >b nopass", "user alice off nopass resetchannels -@all"},
		{"a password clears nopass", "nopass >secret", "user alice off #" + h + " resetchannels -@all"},
		{"<password removes", ">a >secret <a", "user alice off #" + h + " resetchannels -@all"},
		{"#hash and !hash", "#" + h + " >x !" + HashPassword("x"), "user alice off #" + h + " resetchannels -@all"},
		{"resetpass", ">a resetpass", "user alice off resetchannels -@all"},
		{"reset", "on >a ~* +@all reset", "user alice off resetchannels -@all"},
		{"keywords in any case", "ON NoPass AllKeys AllCommands AllChannels", "user alice on nopass ~* &* +@all"},
		{"a service's channels", "&orders:* &jobs", "user alice off resetchannels &orders:* &jobs -@all"},
		{"&* is allchannels", "&a resetchannels &*", "user alice off &* -@all"},
		{"a channel pattern twice is kept once", "&a &a", "user alice off resetchannels &a -@all"},
		{"resetchannels", "allchannels resetchannels &b", "user alice off resetchannels &b -@all"},
		{"reset leaves no channels", "allchannels reset", "user alice off resetchannels -@all"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := apply(t, &User{Name: "alice"}, tc.rules)
			if got := Describe(u); got != tc.want {
				t.Fatalf("Describe = %q, want %q", got, tc.want)
			}
			again := apply(t, &User{Name: "alice"}, strings.Join(RuleStrings(u), " "))
			if !again.Equal(u) {
				t.Fatalf("parse(render(u)) = %+v, want %+v", again, u)
			}
		})
	}
}

func TestApplyRefusesAsRedis(t *testing.T) {
	known := func(cmd string) bool { return cmd == "get" || cmd == "lock" }
	for _, tc := range []struct {
		name, before, rule, want string
	}{
		{"unknown keyword", "", "foo", "ERR Error in ACL SETUSER modifier 'foo': Syntax error"},
		{"empty", "", "", "ERR Error in ACL SETUSER modifier '': Syntax error"},
		{"unknown command", "", "+nosuch", "ERR Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"},
		{"unknown category", "", "-@nosuch", "ERR Error in ACL SETUSER modifier '-@nosuch': Unknown command or category name in ACL"},
		{"pattern after allkeys", "allkeys", "~a", "ERR Error in ACL SETUSER modifier '~a': Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"},
		{"removing a password not there", "", "<nope", "ERR Error in ACL SETUSER modifier '<nope': The password you are trying to remove from the user does not exist"},
		{"bad hash", "", "#abc", "ERR Error in ACL SETUSER modifier '#abc': The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"},
		{"upper-case hash", "", "#" + strings.ToUpper(HashPassword("x")), "ERR Error in ACL SETUSER modifier '#" + strings.ToUpper(HashPassword("x")) + "': The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"},
		{"bad permission", "", "%X~a", "ERR Error in ACL SETUSER modifier '%X~a': Syntax error"},
		{"no tilde", "", "%R", "ERR Error in ACL SETUSER modifier '%R': Syntax error"},
		{"no permission", "", "%~a", "ERR Error in ACL SETUSER modifier '%~a': Syntax error"},
		{"channel after allchannels", "allchannels", "&chan", "ERR Error in ACL SETUSER modifier '&chan': Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels"},
		{"no-break space in a channel pattern", "", "&a\u00a0&*", "ERR Error in ACL SETUSER modifier '&a\u00a0&*': Syntax error"},
		{"selectors are left out", "", "(~a +get)", "ERR Error in ACL SETUSER modifier '(~a +get)': Syntax error"},
		{"empty subcommand", "", "+get|", "ERR Error in ACL SETUSER modifier '+get|': Syntax error"},
		// Spaces that strings.Fields splits on: stored, such a rule would
		// come back as two (a wider user, or one that does not parse).
		{"no-break space in a pattern", "", "~orders:\u00a0~*", "ERR Error in ACL SETUSER modifier '~orders:\u00a0~*': Syntax error"},
		{"line separator in a command rule", "", "+get|x\u2028+@all", "ERR Error in ACL SETUSER modifier '+get|x\u2028+@all': Syntax error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := apply(t, &User{Name: "alice"}, tc.before)
			n, err := Apply(u, []string{"on", tc.rule}, known)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Apply = %v, %v; want error %q", n, err, tc.want)
			}
			if u.On {
				t.Fatal("Apply changed the user it was given")
			}
		})
	}
}

func TestLimits(t *testing.T) {
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		rules []string
	}{
		{"rules", many(MaxRules+1, func(i int) string { return "+cmd" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) })},
		{"patterns", many(MaxPatterns+1, func(i int) string { return "~p" + strings.Repeat("x", i) })},
		{"channel patterns", many(MaxPatterns+1, func(i int) string { return "&p" + strings.Repeat("x", i) })},
		{"channel pattern length", []string{"&" + strings.Repeat("x", MaxPatternLen+1)}},
		{"passwords", many(MaxPasswords+1, func(i int) string { return ">p" + strings.Repeat("x", i) })},
		{"pattern length", []string{"~" + strings.Repeat("x", MaxPatternLen+1)}},
		{"rule length", []string{">" + strings.Repeat("x", MaxRuleLen)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Apply(&User{Name: "a"}, tc.rules[:len(tc.rules)-1], nil); err != nil {
				t.Fatalf("at the limit: %v", err)
			}
			if _, err := Apply(&User{Name: "a"}, tc.rules, nil); err == nil {
				t.Fatal("past the limit: no error")
			}
		})
	}
	for _, name := range []string{"", "a b", "a\x00", "a\tb", strings.Repeat("n", MaxNameLen+1)} {
		if ValidName(name) == nil {
			t.Errorf("ValidName(%q) = nil", name)
		}
	}
	if err := ValidName(strings.Repeat("n", MaxNameLen)); err != nil {
		t.Errorf("ValidName(%d bytes) = %v", MaxNameLen, err)
	}
}

func TestCanRun(t *testing.T) {
	for _, tc := range []struct {
		rules, cmd, sub string
		cats            Category
		want            bool
	}{
		{"", "get", "", CatRead, false},
		{"+@all", "get", "", CatRead, true},
		{"+@read", "get", "", CatRead | CatFast, true},
		{"+@read", "set", "", CatWrite, false},
		{"+@all -@write", "set", "", CatWrite, false},
		{"+@all -@write +set", "set", "", CatWrite, true},
		{"+set -@write", "set", "", CatWrite, false},
		{"+acl|whoami", "acl", "whoami", CatSlow, true},
		{"+acl|whoami", "acl", "setuser", CatAdmin, false},
		{"+acl -acl|setuser", "acl", "setuser", CatAdmin, false},
		{"+acl -acl|setuser", "acl", "list", CatAdmin, true},
	} {
		u := apply(t, &User{Name: "u"}, tc.rules)
		if got := u.CanRun(tc.cmd, tc.sub, tc.cats); got != tc.want {
			t.Errorf("%q: CanRun(%s %s) = %v, want %v", tc.rules, tc.cmd, tc.sub, got, tc.want)
		}
	}
}

func TestCanKey(t *testing.T) {
	for _, tc := range []struct {
		rules, key string
		need       Perm
		want       bool
	}{
		{"", "a", 0, false},
		{"allkeys", "a", PermRW, true},
		{"~orders:*", "orders:1", PermRW, true},
		{"~orders:*", "users:1", PermRead, false},
		{"%R~*", "a", PermRead, true},
		{"%R~*", "a", PermWrite, false},
		{"%R~*", "a", PermRW, false},
		{"%R~* %W~a*", "ab", PermRW, false}, // one pattern must grant both, as in Redis
		{"%R~* %W~a*", "ab", PermWrite, true},
		{"%W~a", "a", 0, true}, // EXISTS, TYPE, WATCH: any pattern
	} {
		u := apply(t, &User{Name: "u"}, tc.rules)
		if got := u.CanKey(tc.key, tc.need); got != tc.want {
			t.Errorf("%q: CanKey(%s, %d) = %v, want %v", tc.rules, tc.key, tc.need, got, tc.want)
		}
	}
}

func TestPasswords(t *testing.T) {
	if HashPassword("foobar") != "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2" {
		t.Fatal("HashPassword is not SHA-256 in hex")
	}
	u := NewDefault("secret")
	if !u.CheckPassword([]byte("secret")) || u.CheckPassword([]byte("other")) {
		t.Fatal("CheckPassword of requirepass")
	}
	if !NewDefault("").CheckPassword([]byte("anything")) {
		t.Fatal("a nopass user takes any password")
	}
	if got := HashRules([]string{">pw", "<pw", "~a"}); got[0] != "#"+HashPassword("pw") || got[1] != "!"+HashPassword("pw") || got[2] != "~a" {
		t.Fatalf("HashRules = %q", got)
	}
}

func TestUsers(t *testing.T) {
	var s *Users
	a, b := &User{Name: "a"}, &User{Name: "b"}
	s2 := s.With(b).With(a)
	if got := strings.Join(s2.Names(), ","); got != "a,b" {
		t.Fatalf("Names = %s", got)
	}
	s3 := s2.Without("a")
	if _, ok := s3.Get("a"); ok || s2.Len() != 2 || s3.Len() != 1 {
		t.Fatal("Without changed the set it was called on, or kept the user")
	}
}

func TestChannelPermissions(t *testing.T) {
	svc := apply(t, &User{Name: "svc"}, "&orders:* &jobs")
	all := apply(t, &User{Name: "all"}, "allchannels")
	none := apply(t, &User{Name: "none"}, "")
	for _, tc := range []struct {
		user    *User
		channel string
		want    bool
	}{
		{svc, "orders:1", true},
		{svc, "jobs", true},
		{svc, "jobs:1", false},
		{svc, "__keyspace@0__:orders:1", false},
		{all, "anything", true},
		{none, "jobs", false},
	} {
		if got := tc.user.CanChannel(tc.channel); got != tc.want {
			t.Errorf("%s CanChannel(%q) = %v, want %v", tc.user.Name, tc.channel, got, tc.want)
		}
	}
	// A pattern subscription needs the pattern itself, as in Redis: a
	// narrower pattern is refused too.
	for _, tc := range []struct {
		user    *User
		pattern string
		want    bool
	}{
		{svc, "orders:*", true},
		{svc, "orders:1*", false},
		{svc, "*", false},
		{all, "*", true},
		{none, "orders:*", false},
	} {
		if got := tc.user.CanPattern(tc.pattern); got != tc.want {
			t.Errorf("%s CanPattern(%q) = %v, want %v", tc.user.Name, tc.pattern, got, tc.want)
		}
	}
	if svc.Unrestricted() || !apply(t, &User{Name: "root"}, "allkeys allcommands allchannels").Unrestricted() {
		t.Error("Unrestricted must need all channels too")
	}
}
