package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// The writer goroutine owns every mutation of the logs. It takes the
// requests waiting in l.reqs, as many as fit in one Badger transaction,
// commits them with fsync, and answers each request exactly once.

// logState is the writer's view of one tenant's log: its size, the last
// link of its hash chain, and the right frontier of its Merkle tree (the
// hashes of the complete subtrees the next leaf will be combined with).
type logState struct {
	size uint64
	last tlog.Hash // leaf hash of entry size-1
	time time.Time // appended_at of entry size-1
	// frontier[level] is the hash of the complete subtree of 2^level
	// leaves ending at the largest multiple of 2^level not above size, for
	// each level whose bit is set in size. At most log2(size) are in use.
	frontier [64]tlog.Hash
}

// push appends a leaf: it returns the stored hashes the leaf adds (the
// leaf's, then one per subtree it completes), as
// tlog.StoredHashesForRecordHash does, computed from the frontier alone.
func (s *logState) push(leaf tlog.Hash, out []tlog.Hash) []tlog.Hash {
	out = append(out, leaf)
	h := leaf
	level := 0
	for ; s.size>>level&1 == 1; level++ {
		h = tlog.NodeHash(s.frontier[level], h)
		out = append(out, h)
	}
	s.frontier[level] = h
	s.size++
	return out
}

// loadState reads a tenant's log state at its committed size.
func (l *Ledger) loadState(txn getter, tenant uint32) (*logState, error) {
	s := &logState{size: l.committedSize(tenant)}
	if s.size == 0 {
		return s, nil
	}
	hb, _, err := readRecord(txn, tenant, s.size-1)
	if err != nil {
		return nil, fmt.Errorf("read last header: %w", err)
	}
	h, err := format.ParseHeader(hb)
	if err != nil {
		return nil, fmt.Errorf("last header of tenant %d: %w", tenant, err)
	}
	s.last = format.LeafHash(hb)
	s.time = h.AppendedAt
	var idx []int64
	var levels []int
	for level := 0; level < 64; level++ {
		if s.size>>level&1 == 1 {
			idx = append(idx, tlog.StoredHashIndex(level, int64(s.size>>level)-1))
			levels = append(levels, level)
		}
	}
	hs, err := hashReader(txn, tenant).ReadHashes(idx)
	if err != nil {
		return nil, fmt.Errorf("tree frontier of tenant %d: %w", tenant, err)
	}
	for i, level := range levels {
		s.frontier[level] = hs[i]
	}
	return s, nil
}

func (l *Ledger) writer() {
	defer l.wg.Done()
	states := make(map[uint32]*logState)
	// backlog: requests taken from the queue and not yet committed, in
	// order. deferred: requests that need a new data key, set aside while a
	// DropPrefix blocks the key store's writes (keyStore.tryFlush); they
	// go first once it ends, and no other request waits for it.
	var backlog, deferred []*appendReq
	// fl: the group committing (pipeline.go); spare: the transaction
	// opened for the next group before fl's commit began; next: the group
	// built in it while fl commits; full: next takes no more requests (or
	// a build against fl failed): the backlog waits for fl.
	var fl *flight
	var spare *badger.Txn
	var next *groupTxn
	full := false
	for {
		var landed <-chan struct{}
		if fl != nil {
			landed = fl.done
		}
		switch {
		case fl != nil && full && len(backlog) > 0:
			<-landed
		case len(backlog) == 0:
			var dropEnded <-chan struct{}
			if len(deferred) > 0 {
				dropEnded = l.keys.dropMu.ended()
			}
			select {
			case r := <-l.reqs:
				backlog = append(backlog, r)
			case <-dropEnded:
				backlog, deferred = deferred, nil
			case <-landed:
			case <-l.stop:
				if fl != nil {
					<-landed
					break
				}
				// Close holds closeMu, so no Append is sending: drain and exit.
				select {
				case r := <-l.reqs:
					backlog = append(backlog, r)
				default:
					if len(deferred) == 0 {
						return
					}
					<-l.keys.dropMu.ended()
					backlog, deferred = deferred, nil
				}
			}
		}
		if fl != nil && closed(fl.done) {
			prev := fl
			fl, full = nil, false
			if l.land(states, prev) {
				// Nothing of prev was written: drop the group built on it,
				// and answer prev's requests before building it again.
				if next != nil {
					l.dropped(prev.err)
					next.txn.Discard()
					backlog = append(next.reqs, backlog...)
					next = nil
				} else if spare != nil {
					spare.Discard()
				}
				spare = nil
				deferred = append(deferred, l.refused(states, prev)...)
				continue
			}
			if next != nil {
				g := next
				next = nil
				err := l.failure()
				if err == nil {
					err = g.finish()
				}
				switch {
				case err == nil:
					fl, spare = l.launch(states, g)
					l.answer(prev)
					continue
				case l.failure() != nil:
					g.txn.Discard()
					for _, r := range g.reqs {
						r.done <- appendResult{err: l.failure()}
					}
				default:
					// Built again in a fresh transaction, one at a time if need be.
					l.dropped(err)
					g.txn.Discard()
					backlog = append(g.reqs, backlog...)
				}
			} else if spare != nil {
				spare.Discard()
			}
			spare = nil
			l.answer(prev)
		}
		if len(backlog) == 0 {
			continue
		}
		if fl == nil {
			var set []*appendReq
			fl, spare, backlog, set = l.startGroup(states, backlog)
			deferred = append(deferred, set...)
			continue
		}
		if !full {
			if next == nil {
				if spare == nil {
					full = true
					continue
				}
				next, backlog, full = l.extend(states, fl, spare, nil, backlog)
				spare = nil
			} else {
				next, backlog, full = l.extend(states, fl, nil, next, backlog)
			}
		}
	}
}

// closed reports whether c is closed, without waiting.
func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// commitGroup commits a group and answers every request in it exactly
// once, whatever fails: a request that fails its checks gets its own
// error; a storage error before the commit fails the requests of that
// transaction and nothing is written; a transaction that turns out too
// big is split and retried; a failed commit fails the ledger (ErrFailed).
// The requests it returns were set aside, unanswered, because they need a
// new data key while a DropPrefix blocks the key store (errKeysBlocked).
func (l *Ledger) commitGroup(states map[uint32]*logState, group []*appendReq) (deferred []*appendReq) {
	res := make([]appendResult, len(group))
	defer func() {
		for i, r := range group {
			if res[i].deferred {
				deferred = append(deferred, r)
				continue
			}
			r.done <- res[i] // buffered, and sent to exactly once
		}
	}()
	if err := l.failure(); err != nil {
		for i := range res {
			res[i].err = err
		}
		return
	}
	// Requests below the disk space reserve are refused before any write.
	var admitted []*appendReq
	var pos []int
	now := l.now()
	for i, r := range group {
		if r.recs != nil {
			if err := l.space.check(now, critical(r.recs)); err != nil {
				res[i].err = err
				continue
			}
		}
		admitted = append(admitted, r)
		pos = append(pos, i)
	}
	out := make([]appendResult, len(admitted))
	l.commitParts(states, admitted, out)
	for j, i := range pos {
		res[i] = out[j]
	}
	return
}

// errKeysBlocked: the group needs new data keys stored while a DropPrefix
// blocks the key store's writes. Nothing was written.
var errKeysBlocked = errors.New("the key store's writes are blocked by a DropPrefix")

// commitParts commits reqs in one transaction, or, if that is too big for
// Badger, in two halves, recursively. A single request too big fails with
// ErrInvalid.
func (l *Ledger) commitParts(states map[uint32]*logState, reqs []*appendReq, res []appendResult) {
	err := l.commitOnce(states, reqs, res)
	if errors.Is(err, errKeysBlocked) {
		// Set aside the requests that need a new key; commit the others now.
		var now []*appendReq
		var pos []int
		for i, r := range reqs {
			if r.needsNewKey() {
				res[i] = appendResult{deferred: true}
				continue
			}
			now = append(now, r)
			pos = append(pos, i)
		}
		out := make([]appendResult, len(now))
		if len(now) > 0 {
			l.commitParts(states, now, out)
		}
		for j, i := range pos {
			res[i] = out[j]
		}
		return
	}
	if !errors.Is(err, badger.ErrTxnTooBig) {
		if err != nil {
			for i := range res {
				res[i] = appendResult{err: err}
			}
		}
		return
	}
	if len(reqs) == 1 {
		res[0] = appendResult{err: fmt.Errorf("%w: the batch does not fit in one storage transaction; split it", ErrInvalid)}
		return
	}
	l.log.Warn("a group exceeded the storage transaction limit; committing it in two parts", "requests", len(reqs))
	h := len(reqs) / 2
	l.commitParts(states, reqs[:h], res[:h])
	l.commitParts(states, reqs[h:], res[h:])
}

// groupTxn is one attempt at committing requests: a write transaction and
// copies of the log states it advances, applied only once it commits.
type groupTxn struct {
	l   *Ledger
	txn *badger.Txn
	// rd is what the group's checks read through: txn, or, for a group
	// built while the previous one commits, txn guarded against the keys
	// that one writes (pipeline.go).
	rd       getter
	base     map[uint32]*logState
	states   map[uint32]*logState
	now      time.Time // appended_at of the batch added last (add)
	retired  retiredSet
	closed   closedSet
	newKeys  []*dataKey // pending keys the new entries are sealed under
	postings postingBlocks
	hashes   []tlog.Hash // scratch
	// The requests added, in order, and their answers once it commits.
	reqs    []*appendReq
	out     []appendResult
	cost    txnCost
	touched map[uint32]bool // tenants whose logs it advances
	writes  bool            // it writes anything
	// written holds every key it sets or deletes while the next group is
	// built against its commit (pipeline.go), and kinds the prefixes
	// (tenant, kind) of its kind index keys; nil otherwise.
	written, kinds map[string]struct{}
}

func (g *groupTxn) state(tenant uint32) (*logState, error) {
	if s := g.states[tenant]; s != nil {
		return s, nil
	}
	b := g.base[tenant]
	if b == nil {
		var err error
		if b, err = g.l.loadState(g.rd, tenant); err != nil {
			return nil, err
		}
		g.base[tenant] = b
	}
	s := *b
	g.states[tenant] = &s
	return &s, nil
}

func (g *groupTxn) set(key, value []byte) error {
	if h := g.l.hooks.set; h != nil {
		if err := h(key, value); err != nil {
			return err
		}
	}
	g.wrote(key)
	return g.txn.Set(key, value)
}

func (g *groupTxn) del(key, _ []byte) error {
	g.wrote(key)
	return g.txn.Delete(key)
}

// wrote records key in written (and its prefix in kinds, for a key of the
// kind index), if the group records what it writes.
func (g *groupTxn) wrote(key []byte) {
	if g.written == nil {
		return
	}
	g.written[string(key)] = struct{}{}
	if key[0] == nsKindIndex {
		g.kinds[string(key[:len(key)-8])] = struct{}{}
	}
}

// commitOnce tries to commit reqs in one transaction and fills res. It
// returns an error, leaving res to the caller, when no request was
// committed: badger.ErrTxnTooBig (retry in parts), a storage error before
// the commit, or ErrFailed.
func (l *Ledger) commitOnce(states map[uint32]*logState, reqs []*appendReq, res []appendResult) error {
	if err := l.failure(); err != nil {
		return err
	}
	txn := l.db.NewTransaction(true)
	defer txn.Discard()
	g, err := l.openGroup(states, txn, txn)
	if err != nil {
		return err
	}
	if err := g.add(reqs); err != nil {
		return err
	}
	if err := g.finish(); err != nil {
		return err
	}
	if g.writes {
		if err := l.commit("commit", txn); err != nil {
			return err
		}
	}
	g.advance(states)
	g.committed()
	copy(res, g.out)
	return nil
}

// openGroup starts a group in txn, its checks reading through rd.
func (l *Ledger) openGroup(states map[uint32]*logState, txn *badger.Txn, rd getter) (*groupTxn, error) {
	retired, err := newRetiredSet(rd, &l.retiredCache)
	if err != nil {
		return nil, err
	}
	closed, err := newClosedSet(txn, rd, &l.closedCache)
	if err != nil {
		return nil, err
	}
	return &groupTxn{l: l, txn: txn, rd: rd, base: states, states: make(map[uint32]*logState),
		retired: retired, closed: closed, postings: make(postingBlocks), touched: make(map[uint32]bool)}, nil
}

// add checks reqs and adds their writes to the group's transaction. A
// request that fails its checks gets its own answer; any other error
// leaves the transaction unusable. The control requests (retirements,
// trace closings) of reqs bind every record of reqs, so a group takes
// control requests only in its first add.
func (g *groupTxn) add(reqs []*appendReq) error {
	l := g.l
	// The clock is read for each batch, once its requests are taken: a
	// group built while another commits takes batches for as long as that
	// commit lasts, and appended_at is never before a request's arrival.
	// It never goes back within the group.
	if now := l.now().UTC(); now.After(g.now) {
		g.now = now
	}
	out := make([]appendResult, len(reqs))
	// Retirements first: they bind every record of the group.
	for _, r := range reqs {
		if r.retire == nil {
			continue
		}
		for _, k := range r.retire.keys {
			if err := g.set(retiredKeyKey(k), nil); err != nil {
				return err
			}
			g.retired.addKey(k)
		}
		for _, b := range r.retire.buckets {
			if err := g.set(retiredBucketKey(b), nil); err != nil {
				return err
			}
			g.retired.addBucket(b)
		}
		g.writes = true
	}
	if g.retired.wrote() {
		if err := g.set(metaRetireEpoch, g.retired.nextEpoch()); err != nil {
			return err
		}
	}
	// So do trace closings (closure.go).
	for _, r := range reqs {
		if c := r.closing; c != nil {
			if err := g.closed.apply(c, g.set, g.del); err != nil {
				return err
			}
			g.writes = true
		}
	}
	if g.closed.wrote() {
		if err := g.set(metaClosedEpoch, g.closed.nextEpoch()); err != nil {
			return err
		}
	}
	for i, req := range reqs {
		if req.recs == nil {
			continue
		}
		st, err := g.state(req.tenant)
		if err != nil {
			return err
		}
		// appended_at never goes back, whatever the clock does; the
		// records are sealed under keys of its day.
		at := g.now
		if st.time.After(at) {
			at = st.time
		}
		if err := l.sealForCommit(g, req, dayOf(at)); err != nil {
			if errors.Is(err, ErrBucketExpired) {
				out[i].err = err
				continue
			}
			return err // errKeysBlocked sets the request aside (commitParts)
		}
		// Work on a copy so that a failing request leaves the state as it was.
		next := *st
		receipts, err := l.appendOne(g, &next, req, at)
		var re *RecordError
		if errors.As(err, &re) {
			out[i].err = err
			continue
		}
		if err != nil {
			return err
		}
		if next.size != st.size {
			g.touched[req.tenant] = true
			g.writes = true
		}
		*st = next
		out[i].receipts = receipts
	}
	g.reqs = append(g.reqs, reqs...)
	g.out = append(g.out, out...)
	for _, r := range reqs {
		g.cost.add(r.cost)
	}
	return nil
}

// finish adds the group's posting blocks and tree sizes to its
// transaction and stores the data keys its entries are sealed under: what
// comes before the commit.
func (g *groupTxn) finish() error {
	// One posting block per term: the group's entries that carry it.
	for k, entries := range g.postings {
		last := entries[len(entries)-1]
		if err := g.set(binary.BigEndian.AppendUint64(termRefPrefix(k.tenant, k.ref), last), encodeBlock(last, entries)); err != nil {
			return err
		}
	}
	for tenant := range g.touched {
		if err := g.set(treeSizeKey(tenant), binary.BigEndian.AppendUint64(nil, g.states[tenant].size)); err != nil {
			return err
		}
	}
	// Data keys are durable before the entries sealed under them: the
	// group stores those of its new entries that are still pending, and
	// never waits for a DropPrefix to do so.
	if g.writes && len(g.newKeys) > 0 {
		ok, err := g.l.keys.tryFlush(g.newKeys)
		if err != nil {
			return err
		}
		if !ok {
			return errKeysBlocked
		}
	}
	return nil
}

// advance makes the log states the group reached the writer's: call it
// once the group is committed, or handed to storage with the next group
// built on it (pipeline.go).
func (g *groupTxn) advance(states map[uint32]*logState) {
	for tenant, s := range g.states {
		if g.touched[tenant] {
			states[tenant] = s
		}
	}
}

// committed publishes what the group made durable: the caches' new
// epochs, the committed tree sizes readers see, the retired keys evicted.
// Call it only once the group is committed.
func (g *groupTxn) committed() {
	l := g.l
	g.retired.committed()
	g.closed.committed()
	l.stateMu.Lock()
	for tenant := range g.touched {
		l.committed[tenant] = g.states[tenant].size
		l.lastDay[tenant] = dayOf(g.states[tenant].time)
	}
	l.stateMu.Unlock()
	for _, r := range g.reqs {
		if r.retire != nil {
			l.keys.evict(r.retire)
		}
	}
}

// appendOne checks one request against the log and, if it is valid, adds
// its writes to the transaction, appended at now, and advances st.
// Validation failures are returned as *RecordError before anything is
// written.
func (l *Ledger) appendOne(g *groupTxn, st *logState, req *appendReq, now time.Time) ([]Receipt, error) {
	txn := g.rd
	receipts := make([]Receipt, len(req.recs))
	fresh := make([]bool, len(req.recs))
	type ident struct {
		kind format.Kind
		id   [32]byte
	}
	var seen map[ident]int // identity -> first position in the request
	var dupOf map[int]int  // position -> first position with the same identity
	for i := range req.recs {
		r := &req.recs[i]
		id, ok := r.identity()
		if !ok {
			fresh[i] = true // no identity: each such record is new
			continue
		}
		if seen == nil {
			seen, dupOf = make(map[ident]int), make(map[int]int)
		}
		if j, dup := seen[ident{r.Kind, id}]; dup {
			if !bytes.Equal(req.recs[j].Payload, r.Payload) {
				return nil, &RecordError{Record: i, Err: fmt.Errorf("%w: record %d has the same identity and different content", ErrInvalid, j)}
			}
			dupOf[i] = j
			continue
		}
		seen[ident{r.Kind, id}] = i
		rec, found, err := l.existing(txn, req.tenant, r, id)
		if err != nil {
			if errors.Is(err, ErrAlreadyExists) {
				return nil, &RecordError{Record: i, Err: err}
			}
			return nil, err
		}
		if found {
			receipts[i] = rec
			continue
		}
		if r.Kind == format.KindSpan {
			if err := g.closed.check(req.tenant, r.TraceID); err != nil {
				var tc *TraceClosedError
				if errors.As(err, &tc) {
					return nil, &RecordError{Record: i, Err: err}
				}
				return nil, err
			}
		}
		if err := l.checkRefs(txn, req, i); err != nil {
			return nil, err
		}
		fresh[i] = true
	}

	if req.unless != nil && slices.Contains(fresh, true) {
		if err := checkUnless(g.txn, g.rd, req.tenant, req.unless); err != nil {
			return nil, err
		}
	}
	for i := range req.recs {
		if !fresh[i] {
			continue
		}
		r := &req.recs[i]
		class := r.RetentionClass
		if class == "" {
			class = DefaultRetentionClass
		}
		h := format.Header{
			Kind: r.Kind, SubKind: r.SubKind, Tenant: req.tenantName, Index: st.size,
			AppendedAt: now, TraceID: r.TraceID, SpanID: r.SpanID, ParentSpanID: r.ParentSpanID,
			Refs: r.Refs, RetentionClass: class, PrevLeafHash: st.last, Commitment: req.prep[i].commitment,
		}
		rec := entryRecord(&h)
		leaf := format.LeafHash(rec)
		index := st.size
		g.hashes = st.push(leaf, g.hashes[:0])
		if err := g.set(entryKey(req.tenant, index), addHashes(rec, g.hashes)); err != nil {
			return nil, err
		}
		if err := g.set(payloadKey(req.tenant, index), req.prep[i].envelope); err != nil {
			return nil, err
		}
		if k := req.prep[i].key; k.pending() {
			g.newKeys = append(g.newKeys, k)
		}
		if id, ok := r.identity(); ok {
			if err := g.set(identityKey(req.tenant, r.Kind, id), identityValue(index, r.SubKind)); err != nil {
				return nil, err
			}
		}
		if r.Kind != format.KindSpan {
			if err := g.set(kindIndexKey(req.tenant, r.Kind, index), nil); err != nil {
				return nil, err
			}
		}
		for _, t := range req.prep[i].terms {
			g.postings.add(req.tenant, t, index)
		}
		if r.Kind == format.KindVersion {
			vid, _ := r.identity()
			if err := g.set(versionNameKey(req.tenant, format.VersionKind(r.SubKind), r.Version.Name, r.Version.Label), binary.BigEndian.AppendUint64(vid[:], index)); err != nil {
				return nil, err
			}
		}
		receipts[i] = Receipt{Index: index, LeafHash: leaf, AppendedAt: now}
		st.last = leaf
		st.time = now
	}
	// In-request duplicates take the receipt of their first occurrence.
	for i, j := range dupOf {
		receipts[i] = receipts[j]
		receipts[i].Duplicate = true
	}
	return receipts, nil
}

// checkUnless fails with a *RecordError wrapping ErrPrecondition if an
// entry of u.Kind is at index u.From or later in the tenant's log, or an
// entry of an identity of u.Absent is in it, the entries of this
// transaction so far included (a read-write transaction's iterator and
// reads see its own writes). rd is the group's reader: while it is
// guarded (pipeline.go), a kind the committing group writes fails with
// errStale.
func checkUnless(txn *badger.Txn, rd getter, tenant uint32, u *Unless) error {
	for _, a := range u.Absent {
		at, _, found, err := lookupIdentity(rd, tenant, a.Kind, a.ID)
		if err != nil {
			return err
		}
		if found {
			return &RecordError{Record: 0, Err: fmt.Errorf("%w: a %s entry with the identity the precondition names was appended at %d", ErrPrecondition, a.Kind, at)}
		}
	}
	for _, kind := range u.Kinds {
		prefix := kindIndexPrefix(tenant, kind)
		if err := kindGuard(rd, prefix); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		it.Seek(kindIndexKey(tenant, kind, u.From))
		valid := it.Valid()
		var at uint64
		if valid {
			at = binary.BigEndian.Uint64(it.Item().Key()[len(prefix):])
		}
		it.Close()
		if valid {
			return &RecordError{Record: 0, Err: fmt.Errorf("%w: a %s entry was appended at %d, not before %d", ErrPrecondition, kind, at, u.From)}
		}
	}
	return nil
}

// txnCost is what a request adds to a Badger write transaction, counted as
// Badger counts it (txn.checkSize): one per key set, and per key its
// length, the value's length (or a 12-byte value-log pointer from
// valueThreshold up), 2 bytes of metadata and 10 of version.
type txnCost struct {
	keys, bytes int64
	values      int64 // bytes of values, whatever their place: bounds a group's memory
}

func (c *txnCost) set(key, value int) {
	v := value
	if v >= valueThreshold {
		v = 12
	}
	c.keys++
	c.bytes += int64(key + v + 2 + 10)
	c.values += int64(value)
}

func (c *txnCost) add(o txnCost) {
	c.keys += o.keys
	c.bytes += o.bytes
	c.values += o.values
}

func (c txnCost) fits(limit txnCost) bool {
	return c.keys <= limit.keys && c.bytes <= limit.bytes && c.values <= limit.values
}

// within says which limit of one storage transaction c exceeds, if any.
func (c txnCost) within(limit txnCost) error {
	switch {
	case c.keys > limit.keys:
		return fmt.Errorf("needs %d keys of one storage transaction, more than its limit of %d", c.keys, limit.keys)
	case c.bytes > limit.bytes:
		return fmt.Errorf("needs %d bytes of one storage transaction, more than its limit of %d", c.bytes, limit.bytes)
	case c.values > limit.values:
		return fmt.Errorf("holds %d bytes of payloads, more than the limit of %d for one storage transaction", c.values, limit.values)
	}
	return nil
}

// Key sizes of the layout (keys.go).
const (
	tenantIndexKeySize = 1 + 4 + 8
	identityKeySize    = 1 + 4 + 1 + 32
	kindIndexKeySize   = 1 + 4 + 1 + 8
	termKeySize        = 1 + 4 + 1 + termMACSize + 8
)

// record adds what the writer sets for a new record: its entry record
// (header and the tree hashes it completes, one on average), envelope,
// identity, kind index, index terms and version name. The tree hashes a
// request's records complete are at most one per record plus one per
// level of the tree, which treeSize adds once per request.
func (c *txnCost) record(tenant string, r *Record, p *prepared) {
	class := r.RetentionClass
	if class == "" {
		class = DefaultRetentionClass
	}
	c.set(tenantIndexKeySize, format.HeaderSize(len(tenant), len(class))+tlog.HashSize)
	c.set(tenantIndexKeySize, len(p.envelope))
	if _, ok := r.identity(); ok {
		c.set(identityKeySize, 9)
	}
	if r.Kind != format.KindSpan {
		c.set(kindIndexKeySize, 0)
	}
	for range p.terms {
		// At most a posting block of its own, or one gap in another's.
		c.set(termKeySize, binary.MaxVarintLen64)
	}
	if r.Version != nil {
		c.set(1+4+1+len(r.Version.Name)+1+len(r.Version.Label), 40)
	}
}

// dataKey adds what storing a new data key writes to the key database
// (keyStore.storeBatch): its material, location and scope records. The
// writer stores a group's new keys before it commits the group, so a
// request counts its new keys in its cost: a group's keys then fit in one
// key-database transaction (both databases have the same limits).
func (c *txnCost) dataKey(s keyScope) {
	material := 1 + 4 + 4 + 1 + len(s.class) + termMACSize + 16
	c.set(material, wrappedKeySize)
	c.set(1+16, material)
	c.set(material-16, 16)
}

// treeSize adds, once per request, the tree size key and the tree hashes
// its records complete beyond one each (at most one per level).
func (c *txnCost) treeSize() {
	c.set(1+4, 8)
	c.bytes += 64 * tlog.HashSize
	c.values += 64 * tlog.HashSize
}

// txnLimit is the budget of a group's transaction: 90% of Badger's limits
// on keys and bytes (db.MaxBatchCount, db.MaxBatchSize), and 64 MiB of
// values so that a group's memory stays bounded.
func txnLimitOf(db *badger.DB) txnCost {
	return txnCost{keys: db.MaxBatchCount() * 9 / 10, bytes: db.MaxBatchSize() * 9 / 10, values: 64 << 20}
}

// retirement is a control request: mark data keys, or whole expiry
// buckets, retired in the log database.
type retirement struct {
	keys    [][16]byte
	buckets []Bucket
}

func (r *retirement) cost() txnCost {
	var c txnCost
	for range r.keys {
		c.set(1+1+16, 0)
	}
	for _, b := range r.buckets {
		c.set(len(retiredBucketKey(b)), 0)
	}
	c.set(len(metaRetireEpoch), 8)
	return c
}

// retiredCache holds the writer's answers to "is there a retirement marker
// for this data key (or bucket)?", as read from the log database at one
// retirement epoch (metaRetireEpoch). Every transaction that writes
// markers also advances the epoch, so the answers stay true exactly as
// long as the epoch read in a group's own transaction is the cache's: each
// group reads that one key and drops the cache when it moved. The safety
// property stays in the database, checked in the commit transaction; the
// cache only saves a Get per distinct key and group. Owned by the writer
// goroutine.
type retiredCache struct {
	epoch   uint64
	keys    map[[16]byte]bool
	buckets map[string]bool
}

func (c *retiredCache) reset(epoch uint64) {
	c.epoch = epoch
	c.keys = make(map[[16]byte]bool)
	c.buckets = make(map[string]bool)
}

// retiredSet answers, within one group transaction, whether a data key or
// a bucket is retired: from the markers the transaction writes, then the
// writer's cache (valid at the transaction's epoch), then one Get per key
// or bucket not cached.
type retiredSet struct {
	txn   getter
	cache *retiredCache
	epoch uint64 // read in txn
	// Markers written by this transaction; the cache takes them once it
	// commits.
	keys    map[[16]byte]bool
	buckets map[string]bool
}

// newRetiredSet reads the retirement epoch in txn and drops the cache if
// the epoch moved since the cache was filled.
func newRetiredSet(txn getter, cache *retiredCache) (retiredSet, error) {
	epoch, err := readEpoch(txn, metaRetireEpoch)
	if err != nil {
		return retiredSet{}, err
	}
	if cache.keys == nil || cache.epoch != epoch || len(cache.keys)+len(cache.buckets) > maxCachedKeys {
		cache.reset(epoch)
	}
	return retiredSet{txn: txn, cache: cache, epoch: epoch}, nil
}

// readEpoch reads an epoch meta key (a u64, 0 while absent) in txn.
func readEpoch(txn getter, key []byte) (uint64, error) {
	var epoch uint64
	item, err := txn.Get(key)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return 0, fmt.Errorf("read %s: %w", key[1:], err)
	default:
		if err := item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%s of %d bytes", key[1:], len(v))
			}
			epoch = binary.BigEndian.Uint64(v)
			return nil
		}); err != nil {
			return 0, err
		}
	}
	return epoch, nil
}

func (s *retiredSet) addKey(id [16]byte) {
	if s.keys == nil {
		s.keys = make(map[[16]byte]bool)
	}
	s.keys[id] = true
}

func (s *retiredSet) addBucket(b Bucket) {
	if s.buckets == nil {
		s.buckets = make(map[string]bool)
	}
	s.buckets[string(retiredBucketKey(b))] = true
}

// wrote reports whether the transaction writes markers; nextEpoch is the
// value it must store then.
func (s *retiredSet) wrote() bool { return len(s.keys)+len(s.buckets) > 0 }

func (s *retiredSet) nextEpoch() []byte { return binary.BigEndian.AppendUint64(nil, s.epoch+1) }

// committed moves the transaction's markers into the cache, at the epoch
// the transaction stored. Call it only once the transaction committed.
func (s *retiredSet) committed() {
	if !s.wrote() {
		return
	}
	s.cache.epoch = s.epoch + 1
	for id := range s.keys {
		s.cache.keys[id] = true
	}
	for b := range s.buckets {
		s.cache.buckets[b] = true
	}
}

func (s *retiredSet) marked(key []byte) (bool, error) {
	_, err := s.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// key reports whether dk, or its expiry bucket, is retired. A pending key
// (not stored yet, so no entry is sealed under it and no erasure can name
// it) has no marker of its own, but its bucket may be retired.
func (s *retiredSet) key(dk *dataKey, scope keyScope) (bool, error) {
	if dk.pending() {
		return s.bucket(scope.bucket())
	}
	if s.keys[dk.id] {
		return true, nil
	}
	r, ok := s.cache.keys[dk.id]
	if !ok {
		var err error
		if r, err = s.marked(retiredKeyKey(dk.id)); err != nil {
			return false, err
		}
		s.cache.keys[dk.id] = r
	}
	if r {
		return true, nil
	}
	return s.bucket(scope.bucket())
}

func (s *retiredSet) bucket(b Bucket) (bool, error) {
	k := string(retiredBucketKey(b))
	if s.buckets[k] {
		return true, nil
	}
	r, ok := s.cache.buckets[k]
	if !ok {
		var err error
		if r, err = s.marked([]byte(k)); err != nil {
			return false, err
		}
		s.cache.buckets[k] = r
	}
	return r, nil
}

// sealForCommit makes sure every record of req is sealed under a live
// data key of its scope on day, the day of the request's appended_at: a
// record sealed under a retired key (or a key of a retired bucket), or
// under a key of another day (the request crossed midnight in the queue,
// or the clock is behind the log's appended_at), is re-sealed under the
// scope's key of that day (a new key if need be). So no entry is ever
// committed under a retired key, and every entry is sealed under a key of
// its appended_at day, which is what lets a sweep find a bucket's entries
// by day. If the bucket of that day is retired (a sweep expired it under a
// clock that was ahead), the request fails alone with *BucketExpiredError.
// If the scope's key is not cached while a DropPrefix runs, it returns
// errKeysBlocked, the request marked to be set aside until the drop ends.
func (l *Ledger) sealForCommit(g *groupTxn, req *appendReq, day uint32) error {
	req.waitKeys = false
	for i := range req.prep {
		p := &req.prep[i]
		if p.scope.day == day {
			retired, err := g.retired.key(p.key, p.scope)
			if err != nil {
				return err
			}
			if !retired {
				continue
			}
		}
		scope := p.scope
		scope.day = day
		if r, err := g.retired.bucket(scope.bucket()); err != nil {
			return err
		} else if r {
			return &BucketExpiredError{Day: day, Class: scope.class}
		}
		// While a DropPrefix runs, a lookup in the key database waits for
		// it: the request is set aside like one that needs a new key.
		dk, ok, err := l.keys.forScopeNoWait(scope)
		if err != nil {
			return err
		}
		if !ok {
			req.waitKeys = true
			return errKeysBlocked
		}
		if r, err := g.retired.key(dk, scope); err != nil {
			return err
		} else if r {
			if dk, err = l.keys.fresh(scope); err != nil {
				return err
			}
		}
		p.key, p.scope = dk, scope
		p.envelope = seal(dk, req.tenant, p.commitment, p.salt, req.recs[i].Payload, p.terms)
	}
	return nil
}

// dayOf is the day (since 1970-01-01 UTC) of t: the day of a data key.
func dayOf(t time.Time) uint32 { return uint32(t.Unix() / 86400) }

// existing looks for a record with r's identity (and, for a version, its
// name and label). It returns the original receipt when the payload is
// identical and a *ConflictError when it differs.
func (l *Ledger) existing(txn getter, tenant uint32, r *Record, id [32]byte) (Receipt, bool, error) {
	idx, _, found, err := lookupIdentity(txn, tenant, r.Kind, id)
	if err != nil || !found {
		if err == nil && r.Kind == format.KindVersion {
			err = l.checkVersionName(txn, tenant, r)
		}
		return Receipt{}, false, err
	}
	e, err := l.readEntry(txn, tenant, idx)
	if err == nil && e.Erased {
		e, err = l.settled(txn, tenant, idx, e)
	}
	if err != nil {
		return Receipt{}, false, err
	}
	if e.Erased || !bytes.Equal(e.Payload, r.Payload) {
		return Receipt{}, false, &ConflictError{Kind: r.Kind, Index: idx}
	}
	return Receipt{Index: idx, LeafHash: e.LeafHash, AppendedAt: e.Header.AppendedAt, Duplicate: true}, true, nil
}

// maxRereads bounds settled's fresh reads of one entry.
const maxRereads = 4

// settled reads entry idx again, in fresh snapshots, when txn's shows it
// erased while its payload is still there: sealed under a key that is
// destroyed now. Shred commits a re-seal (outside the writer) before it
// destroys the old key, so a snapshot older than the re-seal takes a kept
// entry for erased; the writer's are as old as the commit in flight
// (pipeline.go), and its key reads are not in any snapshot. A snapshot
// opened after the destruction was seen holds the re-seal if there was
// one: reading stops when one shows the payload under a live key, or the
// payload gone, or under the same key as the snapshot before (the entry
// is erased). Each further read needs another Shred of the entry to have
// run meanwhile.
func (l *Ledger) settled(txn getter, tenant uint32, idx uint64, e *Entry) (*Entry, error) {
	key, sealed, err := envelopeKeyOf(txn, tenant, idx)
	if err != nil || !sealed {
		return e, err
	}
	for range maxRereads {
		var next [16]byte
		err := l.db.View(func(txn *badger.Txn) error {
			var err error
			if e, err = l.readEntry(txn, tenant, idx); err != nil || !e.Erased {
				return err
			}
			next, sealed, err = envelopeKeyOf(txn, tenant, idx)
			return err
		})
		if err != nil || !e.Erased || !sealed || next == key {
			return e, err
		}
		key = next
	}
	return nil, fmt.Errorf("entry %d was re-sealed %d times while read", idx, maxRereads)
}

// checkVersionName refuses a new version whose (kind, name, label) names
// another version already.
func (l *Ledger) checkVersionName(txn getter, tenant uint32, r *Record) error {
	item, err := txn.Get(versionNameKey(tenant, format.VersionKind(r.SubKind), r.Version.Name, r.Version.Label))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var idx uint64
	if err := item.Value(func(v []byte) error {
		if len(v) != 40 {
			return fmt.Errorf("version name entry of %d bytes", len(v))
		}
		idx = binary.BigEndian.Uint64(v[32:])
		return nil
	}); err != nil {
		return err
	}
	return &ConflictError{Kind: format.KindVersion, Index: idx}
}

// checkRefs checks that every version a record references is registered
// with the right kind, in the log or earlier in the same request.
func (l *Ledger) checkRefs(txn getter, req *appendReq, i int) error {
	r := &req.recs[i]
	for k := format.VersionPrompt; k <= format.VersionPipeline; k++ {
		ref := r.Refs.Ref(k)
		if ref == ([32]byte{}) || (r.Kind == format.KindVersion && format.VersionKind(r.SubKind) == k) {
			continue
		}
		found := false
		for j := 0; j < i && !found; j++ {
			o := &req.recs[j]
			oid, _ := o.identity()
			found = o.Kind == format.KindVersion && format.VersionKind(o.SubKind) == k && oid == ref
		}
		if !found {
			_, sub, ok, err := lookupIdentity(txn, req.tenant, format.KindVersion, ref)
			if err != nil {
				return err
			}
			found = ok && format.VersionKind(sub) == k
		}
		if !found {
			return &RecordError{Record: i, Err: &MissingVersionError{Kind: k, ID: ref}}
		}
	}
	return nil
}

// identityValue is an identity record's value: the entry's index and its
// sub-kind.
func identityValue(index uint64, subKind uint8) []byte {
	v := make([]byte, 9)
	binary.BigEndian.PutUint64(v, index)
	v[8] = subKind
	return v
}

func lookupIdentity(txn getter, tenant uint32, kind format.Kind, id [32]byte) (index uint64, subKind uint8, found bool, err error) {
	item, err := txn.Get(identityKey(tenant, kind, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	err = item.Value(func(v []byte) error {
		if len(v) != 9 {
			return fmt.Errorf("identity entry of %d bytes", len(v))
		}
		index, subKind = binary.BigEndian.Uint64(v), v[8]
		return nil
	})
	return index, subKind, err == nil, err
}
