package acl

import (
	"maps"
	"slices"
)

// Users is a set of users by name. A nil *Users is the empty set. A set is
// never changed: With and Without return new ones (copying the map, at most
// MaxUsers entries).
type Users struct {
	byName map[string]*User
	names  []string // sorted
}

// Get returns the user name.
func (s *Users) Get(name string) (*User, bool) {
	if s == nil {
		return nil, false
	}
	u, ok := s.byName[name]
	return u, ok
}

// Has reports whether the set holds the user name.
func (s *Users) Has(name string) bool {
	_, ok := s.Get(name)
	return ok
}

// Len is the number of users.
func (s *Users) Len() int {
	if s == nil {
		return 0
	}
	return len(s.names)
}

// Names returns the users' names in byte order.
func (s *Users) Names() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.names)
}

// With returns the set with u in place of the user of its name, if any.
func (s *Users) With(u *User) *Users {
	n := &Users{byName: map[string]*User{u.Name: u}}
	if s != nil {
		n.byName = maps.Clone(s.byName)
		n.byName[u.Name] = u
	}
	n.names = slices.Sorted(maps.Keys(n.byName))
	return n
}

// Without returns the set without the user name.
func (s *Users) Without(name string) *Users {
	if _, ok := s.Get(name); !ok {
		return s
	}
	n := &Users{byName: maps.Clone(s.byName)}
	delete(n.byName, name)
	n.names = slices.Sorted(maps.Keys(n.byName))
	return n
}
