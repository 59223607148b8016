package check

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// The ops of read/write locks and semaphores. They live in a namespace of their own (a
// read/write lock "x" is not the LOCK key "x"), so a history holds either these or the key
// space's ops, never both (CheckLinearizable refuses a mix). Their kinds number from 16,
// apart from the key space's, so either list can grow without renumbering the other.
const (
	KindRWLock    Kind = iota + 16 // RWLOCK name owner READ|WRITE [WAIT ms] (no lease)
	KindRWUnlock                   // RWUNLOCK name owner
	KindRWInfo                     // RWINFO name
	KindSemLock                    // SEMLOCK name owner limit [WAIT ms] (no lease)
	KindSemUnlock                  // SEMUNLOCK name owner
	KindSemInfo                    // SEMINFO name
)

var sharedKindNames = map[Kind]string{
	KindRWLock: "RWLOCK", KindRWUnlock: "RWUNLOCK", KindRWInfo: "RWINFO",
	KindSemLock: "SEMLOCK", KindSemUnlock: "SEMUNLOCK", KindSemInfo: "SEMINFO",
}

// shared says whether k is an op of the read/write lock and semaphore namespace.
func (k Kind) shared() bool { return k >= KindRWLock && k <= KindSemInfo }

// Holder is one entry of an RWINFO or SEMINFO reply (its ttl is not recorded: the suite
// takes no leases).
type Holder struct {
	Owner string
	Write bool // RWINFO: held for writing (false: reading); always false for SEMINFO
	Token int64
}

// FormatHolders renders holders in reply order, separated by spaces, each as owner:token,
// or owner:token:write for a writer: "a:5 b:7", "c:9:write". Owners must not contain
// white space (Op.Holders could not be read back; CheckLinearizable refuses such a history).
func FormatHolders(holders []Holder) string {
	s := make([]string, len(holders))
	for i, h := range holders {
		s[i] = h.Owner + ":" + strconv.FormatInt(h.Token, 10)
		if h.Write {
			s[i] += ":write"
		}
	}
	return strings.Join(s, " ")
}

// parseHolders reads what FormatHolders wrote.
func parseHolders(s string) ([]Holder, error) {
	var out []Holder
	for _, f := range strings.Fields(s) {
		var h Holder
		f, h.Write = strings.CutSuffix(f, ":write")
		i := strings.LastIndexByte(f, ':')
		if i <= 0 {
			return nil, fmt.Errorf("holder %q is not owner:token", f)
		}
		tok, err := strconv.ParseInt(f[i+1:], 10, 64)
		if err != nil || tok <= 0 {
			return nil, fmt.Errorf("holder %q has no positive token", f)
		}
		h.Owner, h.Token = f[:i], tok
		out = append(out, h)
	}
	return out, nil
}

// Info finishes an RWINFO or SEMINFO with its reply: the holders in reply order (none:
// nobody holds the name).
func (p Pending) Info(holders []Holder) {
	s := FormatHolders(holders)
	p.finish(KindRWInfo, func(o *Op) { o.Status, o.Holders = StatusOK, s })
}

// FinalInfo is FinalReads for read/write locks (kind KindRWInfo) or semaphores
// (KindSemInfo): one final read of each name through info, which returns its holders.
// CheckLinearizable with RequireFinalReads then proves every acknowledged grant and
// release on those names survived.
func (h *History) FinalInfo(client int, kind Kind, names []string, info func(name string) ([]Holder, error)) error {
	if kind != KindRWInfo && kind != KindSemInfo {
		panic(fmt.Sprintf("check: FinalInfo of %v", kind))
	}
	return h.finalReads(client, kind, names, func(name string, p Pending) error {
		holders, err := info(name)
		if err == nil {
			p.Info(holders)
		}
		return err
	})
}

// sharedArgs renders an RWLOCK's or SEMLOCK's arguments after its owner.
func (o Op) sharedArgs() string {
	var s string
	switch {
	case o.Kind == KindSemLock:
		s = fmt.Sprintf("limit=%d", o.Limit)
	case o.Write:
		s = "WRITE"
	default:
		s = "READ"
	}
	return s // WAIT follows, as for every op (Op.String)
}

// validateShared checks the arguments only the shared namespace's ops have.
func validateShared(op Op) error {
	switch {
	case op.Kind == KindSemLock && op.Limit < 1:
		return fmt.Errorf("semaphore limit %d < 1", op.Limit)
	case strings.IndexFunc(op.Owner, unicode.IsSpace) >= 0:
		return fmt.Errorf("owner with white space (INFO replies could not be recorded)")
	}
	if op.Status == StatusOK && op.Kind.reads() {
		if _, err := parseHolders(op.Holders); err != nil {
			return err
		}
	}
	return nil
}
