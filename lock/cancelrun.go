package lock

// cancelsTogether is false only in a test that compares cancelRun with
// cancelling one by one.
var cancelsTogether = true

// cancelRun applies the run of cancels at the start of cmds, the n commands
// with IDs that cancel requests queued for the same lock, as Apply would
// one by one, and returns dst with their results and ok; or, when the lock
// is not held, the run is shorter than two or a request is queued twice in
// the lock's queue, ok false and nothing changed, with n, so that Apply
// applies those n one by one without asking again. One by one, each cancel
// searched the queue and copied it around the request it took out: 10,000
// waiters of one name cancelled in one entry (their clients gone together)
// took 3.5 s of every node's apply. Here the queue is indexed once and
// filtered once, when the run ends; the answers, the request IDs
// remembered, the statistics and the read/write lock namespace's cancels
// happen in the commands' order as before. A cancelled multi-lock is
// dropped by drop itself, at its turn (settle, which drop calls, does
// nothing to a held lock).
func (t *Table) cancelRun(cmds []Command, dst []Result) (_ []Result, ok bool, n int) {
	name := cmds[0].Name
	for n < len(cmds) && cmds[n].Op == OpCancel && cmds[n].ID != 0 && cmds[n].Name == name {
		n++
	}
	h, held := t.byName[name]
	if n < 2 || !held {
		return dst, false, n
	}
	var index map[uint64]waiter // the requests queued, by ID
	indexQueue := func() bool {
		index = make(map[uint64]waiter, len(h.waiters))
		for _, w := range h.waiters {
			if _, twice := index[w.id]; twice {
				return false
			}
			index[w.id] = w
		}
		return true
	}
	if !indexQueue() {
		return dst, false, n
	}
	gone := map[uint64]bool{}
	for k := range n {
		c := &cmds[k]
		fp := t.fingerprint(c)
		r, ok := t.recall(c.ID, fp)
		if !ok {
			if w, queued := index[c.Target]; queued && !gone[c.Target] {
				if w.multi != nil {
					before := len(h.waiters)
					t.drop(name, w)
					h = t.byName[name]
					if len(h.waiters) == before-1 {
						delete(index, w.id) // the queue lost it, and only it
					} else {
						h = t.filter(name, gone)
						clear(gone)
						indexQueue() // its requests are a subset of what it held: none twice
					}
				} else {
					gone[w.id] = true
					t.waiting--
					t.waits.Delete(waitRec{at: w.deadline, name: name, id: w.id})
					t.stats.WaitTimeouts++
					t.answer(w.id, 0)
				}
			}
			t.dropSharedWaiter(name, c.Target)
			t.remember(c.ID, fp, r)
		}
		r.ID = c.ID
		dst = append(dst, r)
	}
	t.filter(name, gone)
	return dst, true, n
}

// filter takes the requests whose IDs gone holds out of the queue of the
// held lock name, in one pass, keeping the others in their order, and
// returns the lock.
func (t *Table) filter(name string, gone map[uint64]bool) *held {
	h := t.byName[name]
	if len(gone) == 0 {
		return h
	}
	keep := make([]waiter, 0, len(h.waiters))
	for _, w := range h.waiters {
		if !gone[w.id] {
			keep = append(keep, w)
		}
	}
	h = t.own(name, h)
	h.waiters = nil
	if len(keep) > 0 {
		h.waiters = keep // a new array: a snapshot may still read the old one
	}
	return h
}
