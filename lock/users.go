package lock

import (
	"slices"
	"strings"

	"github.com/lockd/lockd/acl"
	"github.com/lockd/lockd/resp"
)

// ACL users are cluster state: OpACLSetUser and OpACLDelUser go through the
// log like any write, and the table applies them (acl.Apply is pure, so
// every node makes the same users), keeps them in snapshots and hands the
// current set to the nodes' servers (Users), which enforce it. Only users
// an ACL SETUSER made are here: the default user, until one is set, is
// each node's own (its --requirepass; see OpACLSetUser).

var (
	errDefaultUndeletable = resp.ErrorValue("ERR The 'default' user cannot be removed")
	errClearPassword      = resp.ErrorValue("ERR a clear password may not enter the log")
)

// setUser applies ACL SETUSER c.Name with the rules c.X.Args. A user not
// there yet starts as a new user (off, no password, no keys, no commands)
// with the channel rule c.Owner gives (the proposing node's
// --acl-pubsub-default); the default user, until one is set, starts from
// the rules c.Owner lists (the proposing node's default user), or,
// without them, on, nopass, all keys, channels and commands. Rules with a
// clear password (>, <) are refused: nodes hash them first
// (acl.HashRules).
//
// Channel permissions came after users: an entry or snapshot written
// before them names no channel rule, and its users had every channel. So
// a user is built from oldUser, which has all channels, and every node
// that knows channels names one (RuleStrings always does; nodes send the
// new user's channel rule in c.Owner).
func (t *Table) setUser(c *Command) resp.Value {
	if err := acl.ValidName(c.Name); err != nil {
		return resp.ErrorValue(err.Error())
	}
	var rules []string
	if c.X != nil {
		rules = c.X.Args
	}
	base := strings.Fields(c.Owner)
	if slices.ContainsFunc(rules, acl.ClearPassword) || slices.ContainsFunc(base, acl.ClearPassword) {
		return errClearPassword
	}
	users := t.users.Load()
	u, ok := users.Get(c.Name)
	switch {
	case ok:
	case c.Name != acl.DefaultName:
		total := users.Len() // and the default user, set or not
		if !users.Has(acl.DefaultName) {
			total++
		}
		if total >= acl.MaxUsers {
			return resp.ErrorValue(acl.ErrTooManyUser.Error())
		}
		n, err := acl.Apply(oldUser(c.Name), base, nil)
		if err != nil {
			return resp.ErrorValue(err.Error())
		}
		u = n
	case c.Owner == "":
		u = acl.NewDefault("")
	default:
		d, err := acl.Apply(oldUser(c.Name), base, nil)
		if err != nil {
			return resp.ErrorValue(err.Error())
		}
		u = d
	}
	n, err := acl.Apply(u, rules, nil)
	if err != nil {
		return resp.ErrorValue(err.Error())
	}
	t.putUsers(users.With(n))
	return resp.OK()
}

// oldUser is a new user as it was before channel permissions: off, no
// password, no keys, no commands, all channels (see setUser).
func oldUser(name string) *acl.User { return &acl.User{Name: name, AllChannels: true} }

// delUsers applies ACL DELUSER c.Name and c.X.Args: it deletes those that
// exist and answers how many; the default user cannot be deleted (nothing
// is, then).
func (t *Table) delUsers(c *Command) resp.Value {
	names := []string{c.Name}
	if c.X != nil {
		names = append(names, c.X.Args...)
	}
	for _, name := range names {
		if name == acl.DefaultName {
			return errDefaultUndeletable
		}
	}
	users := t.users.Load()
	n := int64(0)
	for _, name := range names {
		if users.Has(name) {
			users = users.Without(name)
			t.note(EventUserDeleted, name)
			n++
		}
	}
	if n > 0 {
		t.putUsers(users)
	}
	return resp.IntValue(n)
}

// putUsers makes users the table's and wakes whoever waits for a change.
// The caller holds the write lock.
func (t *Table) putUsers(users *acl.Users) {
	t.users.Store(users)
	close(t.usersChanged)
	t.usersChanged = make(chan struct{})
}

// Users returns the users ACL SETUSER made (the default user among them
// once one set it). It takes no lock: the set is replaced, never changed.
func (t *Table) Users() *acl.Users { return t.users.Load() }

// UsersChanged returns a channel closed at the next change to the users
// (an ACL SETUSER, an ACL DELUSER, a Restore).
func (t *Table) UsersChanged() <-chan struct{} {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.usersChanged
}
