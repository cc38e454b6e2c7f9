package ledger

import (
	"errors"

	"github.com/dgraph-io/badger/v4"
)

// The writer builds the next group while the previous one commits.
//
// A group's commit (Badger's value-log and write-ahead-log writes, the
// memtable inserts and both fsyncs) runs in a goroutine of its own; the
// writer meanwhile checks the requests queued since and adds their writes
// to the next group's transaction, and hands that group to Badger once
// the previous one is durable. So the writer's checks, tree hashes and
// Sets are off the critical path, and at most one group is ever in
// Badger's hands: a group is committed only after the one before it, so a
// failed commit fails the ledger (ErrFailed) before any later group is
// written, as with one group at a time.
//
// The next group's transaction is opened just before the previous group's
// commit begins (opened later, Badger would make it wait for that commit:
// a transaction's read timestamp waits for every commit begun before
// it), so its snapshot lacks the writes of the group in flight, and those
// of other writers committed while it is built. Every check of the next
// group reads through a guard that refuses the keys the group in flight
// sets or deletes (errStale): an identity, version name or entry record
// it wrote, the epochs its retirements and closings advance, the kind
// index an AppendUnless precondition scans. A build that reads such a key
// is dropped, unanswered and unwritten, and its requests are built again
// in a fresh transaction once the group in flight is durable. Of the
// other writers only Shred writes what the checks read (payloads
// re-sealed or deleted, then their old keys destroyed): existing reads
// an entry found under a destroyed key again in fresh snapshots
// (settled). The log states the next group starts
// from (sizes, frontiers, last leaves) are those the group in flight
// reached; if Badger refuses its commit before writing anything
// (ErrTxnTooBig, ErrBlockedWrites), land puts them back and the next
// group is dropped and built again on them.

// getter is what the writer's checks read through: a transaction's Get,
// or a guarded one.
type getter interface {
	Get(key []byte) (*badger.Item, error)
}

// errStale: a group built while another commits read a key that one
// writes. Nothing is written; the group is built again after the commit.
var errStale = errors.New("read a key the committing group writes")

// guarded reads txn except the keys the committing group writes.
type guarded struct {
	txn     *badger.Txn
	written map[string]struct{}
	kinds   map[string]struct{} // the kind index prefixes of written (groupTxn.wrote)
}

func (g guarded) Get(key []byte) (*badger.Item, error) {
	if _, ok := g.written[string(key)]; ok {
		return nil, errStale
	}
	return g.txn.Get(key)
}

// kindGuard returns errStale if rd is guarded and the committing group
// writes a key of the kind index under prefix (kindIndexPrefix): a scan
// of prefix in rd's transaction would miss it. One map lookup.
func kindGuard(rd getter, prefix []byte) error {
	if g, ok := rd.(guarded); ok {
		if _, ok := g.kinds[string(prefix)]; ok {
			return errStale
		}
	}
	return nil
}

// flight is a group handed to Badger, committing in its own goroutine.
type flight struct {
	g    *groupTxn
	done chan struct{} // closed once the commit returned
	err  error
	// prev holds the writer's log states of the tenants g advances, as
	// they were before launch: restored if Badger refuses the commit.
	prev map[uint32]*logState
}

// launch makes g's log states the writer's, so that the next group is
// built on them, and commits g in a goroutine. It returns the transaction
// the next group is to be built in, opened before the commit begins.
func (l *Ledger) launch(states map[uint32]*logState, g *groupTxn) (*flight, *badger.Txn) {
	f := &flight{g: g, done: make(chan struct{}), prev: make(map[uint32]*logState, len(g.touched))}
	for tenant := range g.touched {
		f.prev[tenant] = states[tenant]
	}
	g.advance(states)
	spare := l.db.NewTransaction(true)
	go func() {
		defer close(f.done)
		if g.writes {
			f.err = l.commit("commit", g.txn)
		}
	}()
	return f, spare
}

// land waits for f's commit and, if it succeeded, publishes what it made
// durable. answer then answers its requests (after the next group is
// handed over, so that the callers woken do not delay it). If Badger
// refused the commit before writing anything (ErrBlockedWrites,
// ErrTxnTooBig: the ledger has not failed), land puts the writer's log
// states back as they were before launch and reports it: the group built
// on f must be dropped, and f's requests answered by refused.
func (l *Ledger) land(states map[uint32]*logState, f *flight) (refused bool) {
	<-f.done
	f.g.txn.Discard()
	if f.err == nil {
		f.g.committed()
		return false
	}
	if l.failure() != nil {
		return false // every later group is refused with ErrFailed
	}
	for tenant, s := range f.prev {
		states[tenant] = s
	}
	return true
}

// refused answers the requests of f, a group Badger refused before
// writing anything, once the log states are back (land): a group too big
// is committed again, in parts if need be (commitGroup, as a group found
// too big before its commit); any other refusal is their answer. It
// returns the requests commitGroup set aside.
func (l *Ledger) refused(states map[uint32]*logState, f *flight) []*appendReq {
	if errors.Is(f.err, badger.ErrTxnTooBig) {
		return l.commitGroup(states, f.g.reqs)
	}
	l.answer(f)
	return nil
}

// answer answers f's requests, once it landed: their receipts, or its
// commit's error (ErrFailed: the ledger has failed).
func (l *Ledger) answer(f *flight) {
	for i, r := range f.g.reqs {
		res := f.g.out[i]
		if f.err != nil {
			res = appendResult{err: f.err}
		}
		r.done <- res // buffered, and sent to exactly once
	}
}

// admit answers the requests refused below the disk space reserve and
// returns the others.
func (l *Ledger) admit(reqs []*appendReq) []*appendReq {
	var admitted []*appendReq
	now := l.now()
	for _, r := range reqs {
		if r.recs != nil {
			if err := l.space.check(now, critical(r.recs)); err != nil {
				r.done <- appendResult{err: err}
				continue
			}
		}
		admitted = append(admitted, r)
	}
	return admitted
}

// take takes the requests of the backlog, then those waiting in the
// queue, in order, while they fit in a transaction that holds cost
// already. With more false (the group has requests), a control request
// is not taken: it binds the records of its whole group. full reports
// that the head of rest cannot join the group.
func (l *Ledger) take(backlog []*appendReq, cost txnCost, first bool) (group, rest []*appendReq, full bool) {
	for {
		var r *appendReq
		if len(backlog) > 0 {
			r = backlog[0]
		} else {
			select {
			case r = <-l.reqs:
			default:
				return group, nil, false
			}
			backlog = append(backlog, r)
		}
		next := cost
		next.add(r.cost)
		control := r.retire != nil || r.closing != nil
		if (len(group) > 0 || !first) && (!next.fits(l.txnLimit) || control) {
			return group, backlog, true
		}
		group = append(group, r)
		cost = next
		backlog = backlog[1:]
	}
}

// startGroup builds a group of the backlog's head in a new transaction
// and launches it. Whatever goes wrong before the commit (a storage
// error, a group too big, keys blocked by a DropPrefix), the group is
// committed as before, one transaction at a time (commitGroup); it
// returns the requests that sets aside.
func (l *Ledger) startGroup(states map[uint32]*logState, backlog []*appendReq) (fl *flight, spare *badger.Txn, rest, deferred []*appendReq) {
	if l.hooks.beforeGroup != nil {
		l.hooks.beforeGroup()
	}
	var group []*appendReq
	group, rest, _ = l.take(backlog, txnCost{}, true)
	if err := l.failure(); err != nil {
		return nil, nil, rest, l.commitGroup(states, group) // answers every request with err
	}
	group = l.admit(group)
	if len(group) == 0 {
		return nil, nil, rest, nil
	}
	txn := l.db.NewTransaction(true)
	g, err := l.openGroup(states, txn, txn)
	if err == nil {
		g.written, g.kinds = make(map[string]struct{}), make(map[string]struct{})
		if err = g.add(group); err == nil {
			err = g.finish()
		}
	}
	if err != nil {
		txn.Discard()
		return nil, nil, rest, l.commitGroup(states, group)
	}
	fl, spare = l.launch(states, g)
	return fl, spare, rest, nil
}

// extend adds the backlog's head to next, the group built while fl
// commits (a new one in spare if next is nil). It returns the group
// (nil if it was dropped: its requests are back at the head of the
// backlog, to be built again once fl is durable), the rest of the
// backlog, and whether the group takes no more requests.
func (l *Ledger) extend(states map[uint32]*logState, fl *flight, spare *badger.Txn, next *groupTxn, backlog []*appendReq) (*groupTxn, []*appendReq, bool) {
	if next == nil {
		if l.hooks.beforeGroup != nil {
			l.hooks.beforeGroup()
		}
		g, err := l.openGroup(states, spare, guarded{spare, fl.g.written, fl.g.kinds})
		if err != nil {
			l.dropped(err)
			spare.Discard()
			return nil, backlog, true
		}
		g.written, g.kinds = make(map[string]struct{}), make(map[string]struct{})
		next = g
	}
	batch, rest, full := l.take(backlog, next.cost, len(next.reqs) == 0)
	batch = l.admit(batch)
	if len(batch) == 0 {
		return next, rest, full
	}
	if err := next.add(batch); err != nil {
		// Nothing of next is written: build it again after fl.
		l.dropped(err)
		next.txn.Discard()
		return nil, append(append(next.reqs, batch...), rest...), true
	}
	return next, rest, full
}

func (l *Ledger) dropped(err error) {
	if l.hooks.dropped != nil {
		l.hooks.dropped(err)
	}
}
