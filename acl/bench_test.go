package acl

import (
	"strings"
	"testing"
)

// BenchmarkCheck is the check of one command for the users of the recipes
// (docs/security.md): an unrestricted user, a service limited to orders:*
// and @lock, a monitor with %R~* and a few rules.
func BenchmarkCheck(b *testing.B) {
	for _, tc := range []struct{ name, rules string }{
		{"unrestricted", "on nopass allkeys allcommands"},
		{"service", "on >pw ~orders:* -@all +@lock +ping"},
		{"monitor", "on >pw %R~* -@all +@read +ping +info -keys -scan +acl|whoami"},
		{"ten patterns", "on >pw ~a:* ~b:* ~c:* ~d:* ~e:* ~f:* ~g:* ~h:* ~i:* ~orders:* +@all"},
	} {
		u, err := Apply(&User{Name: "u"}, strings.Fields(tc.rules), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if !u.Unrestricted() {
					u.CanRun("lock", "orders:123456", CatWrite|CatSlow|CatLock)
					u.CanKey("orders:123456", PermWrite)
				}
			}
		})
	}
}

// BenchmarkApply is one ACL SETUSER of the service recipe.
func BenchmarkApply(b *testing.B) {
	rules := strings.Fields("on #" + HashPassword("pw") + " ~orders:* -@all +@lock +ping")
	u := &User{Name: "u"}
	for b.Loop() {
		if _, err := Apply(u, rules, nil); err != nil {
			b.Fatal(err)
		}
	}
}
