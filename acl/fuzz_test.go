package acl

import (
	"strings"
	"testing"
)

// FuzzApply: any rules either are refused or make a user within the limits
// whose rendering parses back into the same user; nothing panics.
func FuzzApply(f *testing.F) {
	for _, seed := range []string{
		"on >secret ~orders:* -@all +@lock",
		"on nopass %R~* +@read -@write",
		"%R~* %W~* resetkeys %RW~a ~a",
		"+acl|whoami -@all +@all -get +get reset",
		"#c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2 !c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2",
		"%rw~x %wr~y %rr~z",
		"on ~orders:\u00a0~* -@all +@lock", // spaces strings.Fields splits on
		"-@all +get|x\u2028+@all",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Apply(&User{Name: "fuzz"}, strings.Split(s, " "), nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ERR Error in ACL SETUSER modifier '") {
				t.Fatalf("error %q is not Redis's", err)
			}
			return
		}
		if len(u.Rules) > MaxRules || len(u.Keys) > MaxPatterns || len(u.Passwords) > MaxPasswords {
			t.Fatalf("past a limit: %d rules, %d patterns, %d passwords", len(u.Rules), len(u.Keys), len(u.Passwords))
		}
		if u.NoPass && len(u.Passwords) > 0 || u.AllKeys && len(u.Keys) > 0 {
			t.Fatalf("inconsistent user %+v", u)
		}
		again, err := Apply(&User{Name: "fuzz"}, RuleStrings(u), nil)
		if err != nil {
			t.Fatalf("the rendering %q does not parse: %v", Describe(u), err)
		}
		if !again.Equal(u) {
			t.Fatalf("parse(render(u)) = %+v\nwant %+v\nrendered %q", again, u, Describe(u))
		}
	})
}
