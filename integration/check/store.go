package check

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Sentinels of the fenced store.
var (
	// ErrStaleToken: a read or write carried a token smaller than one the resource has seen.
	ErrStaleToken = errors.New("check: stale fencing token")
	// ErrLostWrite: a resource's final value does not account for every accepted write.
	ErrLostWrite = errors.New("check: acknowledged write lost")
)

// StaleTokenError is the rejection of a fenced access; it matches ErrStaleToken.
type StaleTokenError struct {
	Resource string
	Token    int64 // the token the access carried
	Highest  int64 // the highest token the resource had seen
}

func (e *StaleTokenError) Unwrap() error { return ErrStaleToken }

func (e *StaleTokenError) Error() string {
	return fmt.Sprintf("check: resource %q rejected token %d (has seen %d)", e.Resource, e.Token, e.Highest)
}

// ResourceState is a snapshot of one resource of a Store.
type ResourceState struct {
	Value    int64 // current value (starts at 0)
	Highest  int64 // highest token seen by an accepted read or write
	Accepted int64 // writes accepted
	Rejected int64 // writes rejected as stale
	// RejectedReads counts reads rejected as stale.
	RejectedReads int64
}

// Store is the resource a lock protects in the end-to-end lease test: an in-memory map of
// int64 values, one per resource name, each fenced by the highest token it has seen.
// Every access carries the caller's fencing token; one smaller than the highest seen is
// rejected and changes nothing; an equal or larger one is accepted and raises the highest.
// Safe for concurrent use. The zero value is not usable; use NewStore.
//
// The suite's read-modify-write is a fenced Read, then a fenced Write of the value it
// computed from that read (its fn ignores the current value):
//
//	v, err := st.Read(res, token)           // also fences out older holders from now on
//	...                                      // a zombie may be paused here
//	err = st.Write(res, token, func(int64) int64 { return v + 1 })
//
// The read must be fenced too: otherwise a zombie that read before the new holder's first
// access could still write after it, and the increment it overwrites would be lost even
// with a correct lock service. With correct locks and fencing, every accepted write is one
// increment of the value it replaces, and CheckIncrements holds at the end.
type Store struct {
	mu  sync.Mutex
	res map[string]*ResourceState
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{res: make(map[string]*ResourceState)}
}

func (s *Store) get(resource string) *ResourceState {
	r, ok := s.res[resource]
	if !ok {
		r = &ResourceState{}
		s.res[resource] = r
	}
	return r
}

// Read returns the resource's value if token is not smaller than the highest token seen,
// raising the highest to token; otherwise a *StaleTokenError and no change.
func (s *Store) Read(resource string, token int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.get(resource)
	if token < r.Highest {
		r.RejectedReads++
		return 0, &StaleTokenError{Resource: resource, Token: token, Highest: r.Highest}
	}
	r.Highest = token
	return r.Value, nil
}

// Write sets the resource's value to fn(current value) if token is not smaller than the
// highest token seen, raising the highest to token; otherwise it returns a
// *StaleTokenError, does not call fn, and changes nothing but the rejected counter. fn runs
// under the store's lock: it must be quick and must not call the Store.
func (s *Store) Write(resource string, token int64, fn func(value int64) int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.get(resource)
	if token < r.Highest {
		r.Rejected++
		return &StaleTokenError{Resource: resource, Token: token, Highest: r.Highest}
	}
	r.Highest = token
	r.Value = fn(r.Value)
	r.Accepted++
	return nil
}

// Resource returns a snapshot of one resource (the zero state if never accessed).
func (s *Store) Resource(resource string) ResourceState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.res[resource]; ok {
		return *r
	}
	return ResourceState{}
}

// Totals returns the accepted and rejected write counts over all resources.
func (s *Store) Totals() (accepted, rejected int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.res {
		accepted += r.Accepted
		rejected += r.Rejected
	}
	return accepted, rejected
}

// CheckIncrements checks, for every resource, that its value equals its number of
// accepted writes: valid when every write is meant as an increment by one from 0, as in
// the lease test, so a lower value means an acknowledged increment was lost (two holders
// overwrote each other). It returns nil or an error matching ErrLostWrite that names
// each resource, its value and its accepted writes.
func (s *Store) CheckIncrements() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var bad []string
	for name, r := range s.res {
		if r.Value != r.Accepted {
			bad = append(bad, fmt.Sprintf("%q: value %d after %d accepted increments", name, r.Value, r.Accepted))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("%w: %s", ErrLostWrite, strings.Join(bad, "; "))
}
