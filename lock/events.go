package lock

// Events: what the table did, for the keyspace notifications and PUBLISH
// that each node delivers to its own subscribers from its own apply. A
// table records them only when asked (SetNotify): a scratch table, on which
// a script runs before its effects are logged, never does. Recording
// changes no outcome; every node that applies the same entries records the
// same events in the same order.

// EventKind says what happened to a key, or that a message was published.
type EventKind uint8

// The kinds. Their names (Redis's event names where Redis has the event)
// are what keyspace notifications carry.
const (
	EventPublish EventKind = iota + 1 // PUBLISH: Name is the channel, Payload the message
	EventSet                          // SET set the key
	EventDel                          // UNLOCK, DEL, DELEX, DELIFEQ, or a deadline already past, ended its hold
	EventExpired                      // its lease ran out
	EventExpire                       // PEXPIRE (EXPIRE, ...) or RENEW gave it a new lease
	EventPersist                      // PERSIST took its lease away
	EventGrant                        // LOCK granted it, or it was handed to the first waiter
	// EventUserDeleted is ACL DELUSER of the user Name: not a keyspace
	// notification; a node closes that user's connections when it applies
	// it (so a user deleted and made again at once does not keep the old
	// connections, authenticated with the old password).
	EventUserDeleted
)

var eventNames = [...]string{
	EventPublish:     "publish",
	EventSet:         "set",
	EventDel:         "del",
	EventExpired:     "expired",
	EventExpire:      "expire",
	EventPersist:     "persist",
	EventGrant:       "grant",
	EventUserDeleted: "acl-deluser",
}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && eventNames[k] != "" {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one thing the table did: Kind to the key Name (for EventPublish,
// the message Payload on the channel Name).
type Event struct {
	Kind    EventKind
	Name    string
	Payload string
}

// SetNotify turns the recording of events on or off.
func (t *Table) SetNotify(on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.notify = on
	if !on {
		t.events = nil
	}
}

// TakeEvents appends the events recorded since the last call to dst, in
// the order they happened, and forgets them.
func (t *Table) TakeEvents(dst []Event) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	dst = append(dst, t.events...)
	clear(t.events)
	t.events = t.events[:0]
	return dst
}

// note records an event when the table records them.
func (t *Table) note(k EventKind, name string) {
	if t.notify {
		t.events = append(t.events, Event{Kind: k, Name: name})
	}
}
