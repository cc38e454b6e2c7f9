package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/veritrace/veritrace/ledger/format"
)

// Trace closure: erasure and holds by subject (or session) cover the
// subject's whole traces, pieces that name no subject included, however
// late or out of order they arrive (docs/RETENTION.md, "Traces").
//
// A span record that names no subject is sealed under a data key of its own
// trace: the scope's pseudonym is the MAC of the record's TraceField index
// term (its trace id), which the ledger adds itself, as it adds the subject
// term of a record with a subject. Such a key holds the unattributed pieces
// of one trace, day and class only, so an erasure that takes them destroys
// it whole and re-seals nothing of another trace.
//
// An erasure closes the traces it erases (CloseTraces): a durable mark per
// trace in the log database, written through the writer and checked by it
// in every later group, so that no span of an erased trace is committed
// after it, whichever node or process appends it.

// TraceField is the index field of a span record that names no subject:
// its value is the trace id (16 bytes) and its MAC is the pseudonym of the
// record's key scope. The ledger adds it; a Record may not carry it.
const TraceField uint8 = 7

// ErrTraceClosed: a span of a trace that an erasure closed; see
// TraceClosedError.
var ErrTraceClosed = errors.New("trace erased")

// TraceClosedError is the cause of a RecordError for a span of a trace an
// erasure closed: the trace's data was erased and later pieces of it are
// refused, never stored. It does not name the erasure request: the
// ingesting app learns only that the trace was erased (a compliance
// officer finds the request by ClosedBy, or by the erasure's receipt).
type TraceClosedError struct {
	Trace [16]byte
}

func (e *TraceClosedError) Error() string {
	return fmt.Sprintf("trace %x was erased; later spans of an erased trace are not accepted", e.Trace)
}

func (e *TraceClosedError) Unwrap() error { return ErrTraceClosed }

// traceScope returns the key scope pseudonym of a span record that names
// no subject, and its TraceField term reference.
func (l *Ledger) traceScope(tid uint32, trace [16]byte) ([termMACSize]byte, [termRefSize]byte) {
	mac := l.keys.termMAC(tid, TraceField, trace[:])
	var ref [termRefSize]byte
	ref[0] = TraceField
	copy(ref[1:], mac[:])
	return mac, ref
}

// closureChunk is the most reads of one read transaction of Closure.
const closureChunk = 1024

// Closure returns what an erasure or a hold selecting by term t (a subject
// or a session) covers: every entry carrying t and, for every trace one of
// them is a span of, each span entry of the trace that carries no term of
// t's field (a piece that names no subject, or no session: an OTLP log
// event, a child span, a trace's resource entry). A span of the trace
// naming another value of the field is that subject's (or session's) and
// is left out, and so, in a closure by session, is a span naming a
// subject (takes). Entries already erased are left out. It returns the indexes
// in order, and the trace of every span among them.
//
// Its work is one header read per entry carrying t, one scan of the span
// identity index per trace and one envelope read per other span of those
// traces, in read transactions of at most 1024 entries or traces, checking
// ctx between them.
func (l *Ledger) Closure(ctx context.Context, tenant string, t Term) ([]uint64, map[uint64][16]byte, error) {
	r, err := l.TermRefOf(ctx, tenant, t)
	if err != nil {
		return nil, nil, err
	}
	return l.ClosureOf(ctx, tenant, r)
}

// ClosureOf is Closure of a term given by its ref (field and MAC): what a
// hold that keeps only its subject's index term covers.
func (l *Ledger) ClosureOf(ctx context.Context, tenant string, r TermRef) ([]uint64, map[uint64][16]byte, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, nil, err
	}
	direct, err := l.EntriesWith(ctx, tenant, r)
	if err != nil {
		return nil, nil, err
	}
	traceOf := make(map[uint64][16]byte, len(direct))
	var traces [][16]byte
	seen := map[[16]byte]bool{}
	for chunk := range slices.Chunk(direct, closureChunk) {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if err := l.db.View(func(txn *badger.Txn) error {
			for _, i := range chunk {
				h, err := readHeader(txn, tid, i)
				if err != nil {
					return err
				}
				if h.Kind != format.KindSpan {
					continue
				}
				traceOf[i] = h.TraceID
				if !seen[h.TraceID] {
					seen[h.TraceID] = true
					traces = append(traces, h.TraceID)
				}
			}
			return nil
		}); err != nil {
			return nil, nil, err
		}
	}
	var want [termRefSize]byte
	want[0] = r.Field
	copy(want[1:], r.MAC[:])
	out := slices.Clone(direct)
	size := l.committedSize(tid)
	// The traces' other spans (the span identity index), then their
	// envelopes.
	type piece struct {
		index uint64
		trace [16]byte
	}
	var pieces []piece
	for chunk := range slices.Chunk(traces, closureChunk) {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if err := l.db.View(func(txn *badger.Txn) error {
			for _, tr := range chunk {
				var id [32]byte
				copy(id[:], tr[:])
				prefix := identityKey(tid, format.KindSpan, id)[:len(tenantKey(nsIdentity, tid))+1+16]
				// A prefix iterator reads only the tables that may hold it.
				it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
				for it.Rewind(); it.Valid(); it.Next() {
					v, err := it.Item().ValueCopy(nil)
					if err == nil && len(v) != 9 {
						err = fmt.Errorf("identity entry of %d bytes", len(v))
					}
					if err != nil {
						it.Close()
						return err
					}
					if i := binary.BigEndian.Uint64(v); i < size {
						if _, ok := traceOf[i]; !ok {
							pieces = append(pieces, piece{i, tr})
						}
					}
				}
				it.Close()
			}
			return nil
		}); err != nil {
			return nil, nil, err
		}
	}
	for chunk := range slices.Chunk(pieces, closureChunk) {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if err := l.db.View(func(txn *badger.Txn) error {
			for _, p := range chunk {
				terms, live, err := envelopeTerms(txn, tid, p.index)
				if err != nil {
					return err
				}
				if !live || !takes(terms, want) {
					continue
				}
				out = append(out, p.index)
				traceOf[p.index] = p.trace
			}
			return nil
		}); err != nil {
			return nil, nil, err
		}
	}
	slices.Sort(out)
	return slices.Compact(out), traceOf, nil
}

// takes reports whether a closure by the term want takes a piece of one of
// its traces that carries terms: a piece naming another value of want's
// field is that subject's (session's), and a closure by session takes no
// piece naming a subject, which is that subject's record (erased with the
// subject, not on a request about a session).
func takes(terms [][termRefSize]byte, want [termRefSize]byte) bool {
	return !slices.ContainsFunc(terms, func(r [termRefSize]byte) bool {
		return r[0] == want[0] && r != want || want[0] != SubjectField && r[0] == SubjectField
	})
}

// NotTaken returns those of idxs that are live and that a closure by the
// term ref r does not take (takes): spans naming another subject (or
// session, or, for a session, a subject). An erasure keeps open a trace
// that holds one. One envelope read per entry.
func (l *Ledger) NotTaken(ctx context.Context, tenant string, r TermRef, idxs []uint64) ([]uint64, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	var want [termRefSize]byte
	want[0] = r.Field
	copy(want[1:], r.MAC[:])
	var out []uint64
	err = l.viewChunks(ctx, idxs, func(txn *badger.Txn, i uint64) error {
		terms, live, err := envelopeTerms(txn, tid, i)
		if err == nil && live && !takes(terms, want) {
			out = append(out, i)
		}
		return err
	})
	return out, err
}

// closing is a control request: close traces of a tenant (CloseTraces),
// or, with open, reopen those that by closed (OpenTraces).
type closing struct {
	tenant uint32
	traces [][16]byte
	by     string
	open   bool
}

func (c *closing) cost() txnCost {
	var t txnCost
	for _, tr := range c.traces {
		t.set(len(closedTraceKey(c.tenant, tr)), len(c.by))
	}
	t.set(len(metaClosedEpoch), 8)
	return t
}

// CloseTraces closes traces of a tenant for the erasure request by (its
// id): from the commit of the marks on, Append refuses every new span of
// them with a *RecordError wrapping a *TraceClosedError. The marks go
// through the writer, so that they are ordered with every commit: a span
// of a closed trace was either committed before its mark, and a selection
// made after CloseTraces returns finds it, or it is refused. The marks are
// durable when it returns. Closing a trace again is harmless.
func (l *Ledger) CloseTraces(ctx context.Context, tenant string, traces [][16]byte, by string) error {
	return l.closeTraces(ctx, tenant, traces, by, false)
}

func (l *Ledger) closeTraces(ctx context.Context, tenant string, traces [][16]byte, by string, open bool) error {
	if by == "" {
		return fmt.Errorf("%w: closing traces needs the erasure request's id", ErrInvalid)
	}
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return err
	}
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	for part := range slices.Chunk(traces, retireChunk) {
		if err := l.failure(); err != nil {
			return err
		}
		c := &closing{tenant: tid, traces: part, by: by, open: open}
		req := &appendReq{closing: c, cost: c.cost(), done: make(chan appendResult, 1)}
		if _, err := l.submit(ctx, req); err != nil {
			return err
		}
	}
	return nil
}

// OpenTraces reopens the traces of a tenant that the erasure request by
// closed and has not committed: an erasure that a hold stopped (it plans
// again and keeps the traces' entries) reopens the traces it closed, so
// that their later pieces are stored again (and held if the hold covers
// them). A trace closed by another request, or not closed, is left as it
// is. Like CloseTraces it goes through the writer and is durable when it
// returns.
func (l *Ledger) OpenTraces(ctx context.Context, tenant string, traces [][16]byte, by string) error {
	return l.closeTraces(ctx, tenant, traces, by, true)
}

// ClosedBy returns the id of the erasure request that closed a trace, and
// whether one did.
func (l *Ledger) ClosedBy(ctx context.Context, tenant string, trace [16]byte) (string, bool, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return "", false, err
	}
	var by string
	var found bool
	err = l.db.View(func(txn *badger.Txn) error {
		by, found, err = closedMark(txn, tid, trace)
		return err
	})
	return by, found, err
}

func closedMark(txn getter, tid uint32, trace [16]byte) (string, bool, error) {
	item, err := txn.Get(closedTraceKey(tid, trace))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read the closed mark of trace %x: %w", trace, err)
	}
	v, err := item.ValueCopy(nil)
	return string(v), true, err
}

// maxClosedCached bounds the closed marks the writer mirrors in memory
// (closedCache); past it, it reads the mark of each trace instead. A
// variable so that tests can take that path.
var maxClosedCached = 1 << 16

// closedCache mirrors every closed mark of the log database, of every
// tenant, as of one closure epoch (metaClosedEpoch). Every transaction
// that writes or deletes marks also advances the epoch, so the mirror is
// exact exactly as long as the epoch read in a group's own transaction is
// the mirror's: each group reads that one key, and the writer reads all
// marks again when it moved. So a span's trace is checked against the
// durable marks, in the commit transaction, without a Get per trace; with
// more than maxClosedCached marks the writer reads each trace's mark
// instead. Owned by the writer goroutine.
type closedCache struct {
	epoch  uint64
	filled bool                // marks (or over) hold what the database held at epoch
	over   bool                // more than maxClosedCached marks: read each trace's
	marks  map[closedID]string // trace -> the erasure request that closed it
}

// fill reads every closed mark in txn, which must not have written any,
// at epoch.
func (c *closedCache) fill(txn *badger.Txn, epoch uint64) error {
	c.epoch, c.filled, c.over, c.marks = epoch, true, false, make(map[closedID]string)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsClosed}, PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != 1+4+16 {
			continue // no trace's mark: closedMark never reads it either
		}
		if len(c.marks) == maxClosedCached {
			c.over, c.marks = true, nil
			return nil
		}
		var id closedID
		id.tenant = binary.BigEndian.Uint32(k[1:])
		copy(id.trace[:], k[5:])
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("read the closed mark of trace %x: %w", id.trace, err)
		}
		c.marks[id] = string(v)
	}
	return nil
}

// closedSet answers, within one group transaction, whether a trace is
// closed: from the marks the transaction writes, then the writer's
// mirror of every mark (valid at the transaction's closure epoch), or,
// past its bound, one Get per distinct trace of the group's spans.
type closedSet struct {
	txn   getter
	cache *closedCache
	epoch uint64 // read in txn
	marks map[closedID]closedState
	// changed: the marks this transaction wrote or deleted, in order.
	changed []closedID
}

type closedID struct {
	tenant uint32
	trace  [16]byte
}

type closedState struct {
	closed bool
	by     string
}

// newClosedSet reads the closure epoch through rd (txn's reads, guarded
// while another group commits: pipeline.go) and reads every mark again in
// txn if it moved since the cache was filled. Call it before txn writes.
func newClosedSet(txn *badger.Txn, rd getter, cache *closedCache) (closedSet, error) {
	epoch, err := readEpoch(rd, metaClosedEpoch)
	if err != nil {
		return closedSet{}, err
	}
	if !cache.filled || cache.epoch != epoch {
		if err := cache.fill(txn, epoch); err != nil {
			cache.filled = false
			return closedSet{}, err
		}
	}
	return closedSet{txn: rd, cache: cache, epoch: epoch}, nil
}

// lookup returns the state of a trace's mark in the transaction.
func (s *closedSet) lookup(id closedID) (closedState, error) {
	if st, ok := s.marks[id]; ok {
		return st, nil
	}
	var st closedState
	if s.cache.over {
		by, closed, err := closedMark(s.txn, id.tenant, id.trace)
		if err != nil {
			return closedState{}, err
		}
		st = closedState{closed, by}
	} else {
		st.by, st.closed = s.cache.marks[id]
	}
	if s.marks == nil {
		s.marks = map[closedID]closedState{}
	}
	s.marks[id] = st
	return st, nil
}

// apply writes or deletes the marks of a closing in the group's
// transaction (set, or the transaction's Delete) and records them: a
// closing leaves a mark that exists (another request's stays its own);
// a reopening deletes only the marks its request wrote.
func (s *closedSet) apply(c *closing, set, del func(key []byte, value []byte) error) error {
	for _, tr := range c.traces {
		id := closedID{c.tenant, tr}
		st, err := s.lookup(id)
		if err != nil {
			return err
		}
		switch {
		case !c.open && st.closed:
			// Closed already, by this request or another: a mark is
			// the first closing request's and stays so, so that a later
			// request's reopening cannot remove it.
			continue
		case !c.open:
			if err := set(closedTraceKey(c.tenant, tr), []byte(c.by)); err != nil {
				return err
			}
			st = closedState{true, c.by}
		case st.closed && st.by == c.by:
			if err := del(closedTraceKey(c.tenant, tr), nil); err != nil {
				return err
			}
			st = closedState{}
		default:
			continue
		}
		s.marks[id] = st
		s.changed = append(s.changed, id)
	}
	return nil
}

// wrote reports whether the transaction writes or deletes marks;
// nextEpoch is the value it must store then.
func (s *closedSet) wrote() bool { return len(s.changed) > 0 }

func (s *closedSet) nextEpoch() []byte { return binary.BigEndian.AppendUint64(nil, s.epoch+1) }

// committed moves the transaction's marks into the cache, at the epoch
// the transaction stored. Call it only once the transaction committed.
func (s *closedSet) committed() {
	if !s.wrote() {
		return
	}
	c := s.cache
	c.epoch = s.epoch + 1
	if c.over {
		return
	}
	for _, id := range s.changed {
		if st := s.marks[id]; st.closed {
			c.marks[id] = st.by
		} else {
			delete(c.marks, id)
		}
	}
	if len(c.marks) > maxClosedCached {
		c.over, c.marks = true, nil
	}
}

// check returns a *TraceClosedError if the trace is closed.
func (s *closedSet) check(tenant uint32, trace [16]byte) error {
	st, err := s.lookup(closedID{tenant, trace})
	if err != nil {
		return err
	}
	if st.closed {
		return &TraceClosedError{Trace: trace}
	}
	return nil
}
