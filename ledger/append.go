package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// Limits of Append.
const (
	// MaxBatch is the most records one Append call may hold.
	MaxBatch = 1000
	// maxGroup is the most records the writer gathers before it stops
	// adding requests to a transaction, which so holds fewer than
	// maxGroup+MaxBatch records. At about eight keys per record this stays
	// below Badger's transaction limits (ErrTxnTooBig), which 4096 did not
	// under 64 concurrent appends of 100 spans (TestAppendManyConcurrentBatches).
	maxGroup = 1024
)

// DefaultRetentionClass is the retention class of records that name none.
const DefaultRetentionClass = "default"

// Record is one entry to append.
type Record struct {
	Kind format.Kind
	// SubKind is the span kind (1-8) of a span, the version kind of a version.
	SubKind      uint8
	TraceID      [16]byte
	SpanID       [8]byte
	ParentSpanID [8]byte
	// Refs are the versions the record references. A version record sets
	// the reference of its own kind to its id.
	Refs format.Refs
	// Subject is the data subject (end user) the payload is about. It
	// selects the payload's data key and is never stored in the clear.
	Subject string
	// RetentionClass is recorded in the header; empty means "default".
	RetentionClass string
	// Version names a version record; nil for other kinds.
	Version *VersionName
	// ID, for tombstone, retention and hold records, makes appending the
	// same record again idempotent (the original receipt is returned).
	ID [32]byte
	// Terms are the record's secondary index terms (Postings, HasTerm).
	Terms []Term
	// Payload is stored encrypted; the header commits to it.
	Payload []byte
}

// VersionName is the name and label of a version record. A (tenant, kind,
// name, label) names exactly one version id.
type VersionName struct {
	Name, Label string
}

// identity returns what makes a record unique in its tenant's log: the
// trace and span id of a span, the id of a version, the ID of other
// records. Access records and records with a zero ID have none.
func (r *Record) identity() ([32]byte, bool) {
	var id [32]byte
	switch r.Kind {
	case format.KindSpan:
		copy(id[:16], r.TraceID[:])
		copy(id[16:24], r.SpanID[:])
		return id, true
	case format.KindVersion:
		return r.Refs.Ref(format.VersionKind(r.SubKind)), true
	case format.KindAccess:
		return id, false
	}
	return r.ID, r.ID != id
}

// Receipt acknowledges a durable record.
type Receipt struct {
	Index      uint64
	LeafHash   tlog.Hash
	AppendedAt time.Time
	// Duplicate is true when the record had been appended before with an
	// identical payload; Index and LeafHash are the original's.
	Duplicate bool
}

type prepared struct {
	commitment tlog.Hash
	envelope   []byte
	terms      [][termRefSize]byte // the record's index terms
}

type appendReq struct {
	tenant     uint32
	tenantName string
	recs       []Record
	prep       []prepared
	done       chan appendResult
}

type appendResult struct {
	receipts []Receipt
	err      error
}

func (r *Record) validate() error {
	switch r.Kind {
	case format.KindSpan:
		if r.SubKind == 0 || r.SubKind > 8 {
			return fmt.Errorf("unknown span kind %d", r.SubKind)
		}
		if r.TraceID == ([16]byte{}) || r.SpanID == ([8]byte{}) {
			return errors.New("trace id and span id must not be zero")
		}
		if r.Version != nil {
			return errors.New("a span record has no version name")
		}
	case format.KindVersion:
		vk := format.VersionKind(r.SubKind)
		if vk < format.VersionPrompt || vk > format.VersionPipeline {
			return fmt.Errorf("unknown version kind %d", r.SubKind)
		}
		if r.Version == nil || r.Version.Name == "" || r.Version.Label == "" {
			return errors.New("a version record needs a name and a label")
		}
		if bytes.IndexByte([]byte(r.Version.Name), 0) >= 0 {
			return errors.New("version name must not contain NUL")
		}
		if r.Refs.Ref(vk) == ([32]byte{}) {
			return errors.New("a version record must carry its id in the reference of its kind")
		}
	case format.KindAccess, format.KindTombstone, format.KindRetention, format.KindHold:
		if !format.ValidSubKind(r.Kind, r.SubKind) {
			return fmt.Errorf("unknown sub-kind %d of a %s record", r.SubKind, r.Kind)
		}
		if r.Version != nil || r.Refs != (format.Refs{}) {
			return fmt.Errorf("a %s record has no version name or references", r.Kind)
		}
	default:
		return fmt.Errorf("unknown entry kind %d", r.Kind)
	}
	if r.RetentionClass != "" {
		if err := format.ValidateRetentionClass(r.RetentionClass); err != nil {
			return err
		}
	}
	if len(r.Terms) > MaxTerms {
		return fmt.Errorf("%d index terms, at most %d", len(r.Terms), MaxTerms)
	}
	for _, t := range r.Terms {
		if t.Field == SubjectField {
			return errors.New("the subject index term is the ledger's: set Subject instead")
		}
	}
	return nil
}

// Append appends records to a tenant's log (ErrNotFound if the tenant does
// not exist). It returns one receipt per record, in order, only after all of them
// are durable; or an error and nothing is written. A record whose identity
// exists with an identical payload gets the original receipt (Duplicate);
// with a different payload the call fails with a *RecordError wrapping a
// *ConflictError (errors.Is ErrAlreadyExists). A reference to an
// unregistered version fails with a *RecordError wrapping a
// *MissingVersionError.
//
// If ctx ends before the writer answers, Append returns ctx.Err() and the
// records may or may not have been appended; appending them again is safe.
func (l *Ledger) Append(ctx context.Context, tenant string, recs []Record) ([]Receipt, error) {
	if len(recs) == 0 || len(recs) > MaxBatch {
		return nil, fmt.Errorf("%w: a batch holds 1 to %d records, got %d", ErrInvalid, MaxBatch, len(recs))
	}
	for i := range recs {
		if err := recs[i].validate(); err != nil {
			return nil, &RecordError{Record: i, Err: fmt.Errorf("%w: %v", ErrInvalid, err)}
		}
	}
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	day := uint32(l.now().Unix() / 86400)
	req := &appendReq{tenant: tid, tenantName: tenant, recs: recs, prep: make([]prepared, len(recs)), done: make(chan appendResult, 1)}
	for i := range recs {
		r := &recs[i]
		class := r.RetentionClass
		if class == "" {
			class = DefaultRetentionClass
		}
		pseudonym := l.keys.pseudonym(tid, r.Subject)
		dk, err := l.keys.forScope(keyScope{tenant: tid, pseudonym: pseudonym, day: day, class: class})
		if err != nil {
			return nil, err
		}
		defer dk.users.Done() // the key may be retired once this append is answered
		// Index term MACs are computed here, in parallel, not in the writer.
		// The subject's term MAC is its pseudonym.
		terms := make([][termRefSize]byte, 0, len(r.Terms)+1)
		if r.Subject != "" {
			var ref [termRefSize]byte
			ref[0] = SubjectField
			copy(ref[1:], pseudonym[:])
			terms = append(terms, ref)
		}
		for _, t := range r.Terms {
			terms = append(terms, l.termRef(tid, t))
		}
		salt := make([]byte, format.SaltSize)
		rand.Read(salt)
		c := format.Commitment(salt, r.Payload)
		req.prep[i] = prepared{commitment: c, envelope: seal(dk, tid, c, salt, r.Payload, terms), terms: terms}
	}
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case res := <-req.done:
		return res.receipts, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// logState is the writer's view of one tenant's log.
type logState struct {
	size uint64
	last tlog.Hash // leaf hash of entry size-1
	time time.Time // appended_at of entry size-1
}

// writer owns every mutation of the logs. It gathers the appends waiting
// in l.reqs into one transaction, commits it with fsync, and answers each.
func (l *Ledger) writer() {
	defer l.wg.Done()
	states := make(map[uint32]*logState)
	for {
		var first *appendReq
		select {
		case first = <-l.reqs:
		case <-l.stop:
			// Close holds closeMu, so no Append is sending: drain and exit.
			for {
				select {
				case r := <-l.reqs:
					l.commitGroup(states, l.gather(r))
				default:
					return
				}
			}
		}
		l.commitGroup(states, l.gather(first))
	}
}

func (l *Ledger) gather(first *appendReq) []*appendReq {
	group := []*appendReq{first}
	n := len(first.recs)
	for n < maxGroup {
		select {
		case r := <-l.reqs:
			group = append(group, r)
			n += len(r.recs)
		default:
			return group
		}
	}
	return group
}

func (l *Ledger) state(txn *badger.Txn, states map[uint32]*logState, tenant uint32) (*logState, error) {
	if s := states[tenant]; s != nil {
		return s, nil
	}
	s := &logState{size: l.committedSize(tenant)}
	if s.size > 0 {
		item, err := txn.Get(headerKey(tenant, s.size-1))
		if err != nil {
			return nil, fmt.Errorf("read last header: %w", err)
		}
		hb, err := item.ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		h, err := format.ParseHeader(hb)
		if err != nil {
			return nil, fmt.Errorf("last header of tenant %d: %w", tenant, err)
		}
		s.last = format.LeafHash(hb)
		s.time = h.AppendedAt
	}
	states[tenant] = s
	return s, nil
}

// commitGroup appends a group of requests in one transaction. A request
// that fails validation is answered with its error and leaves no write; a
// storage failure fails the whole group and resets the writer's state.
func (l *Ledger) commitGroup(states map[uint32]*logState, group []*appendReq) {
	fail := func(err error, reqs []*appendReq) {
		for _, r := range reqs {
			r.done <- appendResult{err: err}
		}
	}
	if err := l.keys.flush(); err != nil {
		l.log.Error("store data keys", "err", err)
		fail(err, group)
		return
	}
	txn := l.db.NewTransaction(true)
	defer txn.Discard()

	now := l.now().UTC()
	touched := make(map[uint32]*logState)
	var ok []*appendReq
	var results [][]Receipt
	for _, req := range group {
		st, err := l.state(txn, states, req.tenant)
		if err != nil {
			fail(err, group)
			clear(states)
			return
		}
		// Work on a copy so that a failing request leaves the state as it was.
		next := *st
		receipts, err := l.appendOne(txn, &next, req, now)
		if err != nil {
			var re *RecordError
			if errors.As(err, &re) {
				req.done <- appendResult{err: err}
				continue
			}
			l.log.Error("append", "err", err)
			fail(err, group)
			clear(states)
			return
		}
		*st = next
		touched[req.tenant] = st
		ok = append(ok, req)
		results = append(results, receipts)
	}
	for tenant, st := range touched {
		if err := txn.Set(treeSizeKey(tenant), binary.BigEndian.AppendUint64(nil, st.size)); err != nil {
			l.log.Error("append", "err", err)
			fail(err, ok)
			clear(states)
			return
		}
	}
	if len(touched) > 0 {
		if err := txn.Commit(); err != nil {
			l.log.Error("commit appends", "err", err)
			fail(fmt.Errorf("commit: %w", err), ok)
			clear(states)
			return
		}
	}
	l.stateMu.Lock()
	for tenant, st := range touched {
		l.committed[tenant] = st.size
	}
	l.stateMu.Unlock()
	for i, req := range ok {
		req.done <- appendResult{receipts: results[i]}
	}
}

// appendOne checks one request against the log and, if it is valid, adds
// its writes to txn and advances st. Validation failures are returned as
// *RecordError before anything is written.
func (l *Ledger) appendOne(txn *badger.Txn, st *logState, req *appendReq, now time.Time) ([]Receipt, error) {
	receipts := make([]Receipt, len(req.recs))
	fresh := make([]bool, len(req.recs))
	type ident struct {
		kind format.Kind
		id   [32]byte
	}
	seen := make(map[ident]int) // identity -> first position in the request
	dupOf := make(map[int]int)  // position -> first position with the same identity
	for i := range req.recs {
		r := &req.recs[i]
		id, ok := r.identity()
		if !ok {
			fresh[i] = true // no identity: each such record is new
			continue
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
		if err := l.checkRefs(txn, req, i); err != nil {
			return nil, err
		}
		fresh[i] = true
	}

	if st.time.After(now) {
		now = st.time // appended_at never goes back, whatever the clock does
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
		hb := h.Marshal()
		leaf := format.LeafHash(hb)
		hashes, err := tlog.StoredHashesForRecordHash(int64(st.size), leaf, hashReader(txn, req.tenant))
		if err != nil {
			return nil, fmt.Errorf("tree hashes: %w", err)
		}
		base := tlog.StoredHashIndex(0, int64(st.size))
		for k, hv := range hashes {
			if err := txn.Set(hashKey(req.tenant, base+int64(k)), hv[:]); err != nil {
				return nil, err
			}
		}
		idx := binary.BigEndian.AppendUint64(nil, st.size)
		if err := txn.Set(headerKey(req.tenant, st.size), hb); err != nil {
			return nil, err
		}
		if err := txn.Set(payloadKey(req.tenant, st.size), req.prep[i].envelope); err != nil {
			return nil, err
		}
		if id, ok := r.identity(); ok {
			if err := txn.Set(identityKey(req.tenant, r.Kind, id), append(idx, r.SubKind)); err != nil {
				return nil, err
			}
		}
		if r.Kind != format.KindSpan {
			if err := txn.Set(kindIndexKey(req.tenant, r.Kind, st.size), nil); err != nil {
				return nil, err
			}
		}
		for _, t := range req.prep[i].terms {
			if err := txn.Set(termRefKey(req.tenant, t, st.size), nil); err != nil {
				return nil, err
			}
		}
		if r.Kind == format.KindVersion {
			vid, _ := r.identity()
			if err := txn.Set(versionNameKey(req.tenant, format.VersionKind(r.SubKind), r.Version.Name, r.Version.Label), append(vid[:], idx...)); err != nil {
				return nil, err
			}
		}
		receipts[i] = Receipt{Index: st.size, LeafHash: leaf, AppendedAt: now}
		st.size++
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

// existing looks for a record with r's identity (and, for a version, its
// name and label). It returns the original receipt when the payload is
// identical and a *ConflictError when it differs.
func (l *Ledger) existing(txn *badger.Txn, tenant uint32, r *Record, id [32]byte) (Receipt, bool, error) {
	idx, _, found, err := lookupIdentity(txn, tenant, r.Kind, id)
	if err != nil || !found {
		if err == nil && r.Kind == format.KindVersion {
			err = l.checkVersionName(txn, tenant, r)
		}
		return Receipt{}, false, err
	}
	e, err := l.readEntry(txn, tenant, idx)
	if err != nil {
		return Receipt{}, false, err
	}
	if e.Erased || !bytes.Equal(e.Payload, r.Payload) {
		return Receipt{}, false, &ConflictError{Kind: r.Kind, Index: idx}
	}
	return Receipt{Index: idx, LeafHash: e.LeafHash, AppendedAt: e.Header.AppendedAt, Duplicate: true}, true, nil
}

// checkVersionName refuses a new version whose (kind, name, label) names
// another version already.
func (l *Ledger) checkVersionName(txn *badger.Txn, tenant uint32, r *Record) error {
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
func (l *Ledger) checkRefs(txn *badger.Txn, req *appendReq, i int) error {
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

func lookupIdentity(txn *badger.Txn, tenant uint32, kind format.Kind, id [32]byte) (index uint64, subKind uint8, found bool, err error) {
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
