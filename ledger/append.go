package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// Limits of Append.
const (
	// MaxBatch is the most records one Append call may hold.
	MaxBatch = 1000
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

// prepared is a record sealed by its caller, ready for the writer.
type prepared struct {
	commitment tlog.Hash
	envelope   []byte
	terms      [][termRefSize]byte // the record's index terms
	// The writer re-seals the payload under a live key when the key it was
	// sealed under has been retired meanwhile.
	salt  []byte
	key   *dataKey
	scope keyScope
}

// appendReq is a request to the writer: records to append, or a
// retirement of data keys (a control request). Its done channel holds one
// answer and the writer sends exactly one.
type appendReq struct {
	tenant     uint32
	tenantName string
	recs       []Record
	prep       []prepared
	retire     *retirement
	closing    *closing // a control request: close traces (closure.go)
	cost       txnCost  // what the request adds to a group's transaction
	done       chan appendResult
	// waitKeys: the writer must look its scope's key up in the key
	// database, which waits while a DropPrefix runs (sealForCommit).
	waitKeys bool
	unless   *Unless // a precondition checked in the commit transaction
}

// Unless is a durable precondition of an append (AppendUnless): the
// records are committed only if no entry of any of Kinds has been
// appended to the tenant's log at index From or later, and no entry with
// any of the identities Absent is in the log. The writer checks it inside
// the transaction that would commit the records (one seek in the kind
// index per kind, one point read per identity), so it holds whatever
// process appended that entry.
type Unless struct {
	Kinds []format.Kind // not KindSpan: spans are not in the kind index
	From  uint64
	// Absent: identities of tombstone, retention or hold entries
	// (Record.ID). A point read each, where a kind's seek costs a sort of
	// the transaction's writes so far: the cheap check for appends that
	// are many and small.
	Absent []Identity
}

// Identity names an entry of a kind with an identity of its own
// (tombstone, retention, hold: Record.ID).
type Identity struct {
	Kind format.Kind
	ID   [32]byte
}

type appendResult struct {
	receipts []Receipt
	err      error
	deferred bool // set aside unanswered: it needs a new key while a DropPrefix runs
}

// needsNewKey reports whether a request's records are sealed under a data
// key that is not stored yet, or need a key looked up in the key database.
func (r *appendReq) needsNewKey() bool {
	if r.waitKeys {
		return true
	}
	for i := range r.prep {
		if r.prep[i].key.pending() {
			return true
		}
	}
	return false
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
		if t.Field == TraceField {
			return errors.New("the trace index term is the ledger's")
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
// *MissingVersionError. A batch too large for one storage transaction
// fails with ErrInvalid; below the disk space reserve appends fail with a
// *SpaceError (ErrNoSpace); once a write to storage has failed, with
// ErrFailed.
//
// If ctx ends before the writer answers, Append returns ctx.Err() and the
// records may or may not have been appended; appending them again is safe.
func (l *Ledger) Append(ctx context.Context, tenant string, recs []Record) ([]Receipt, error) {
	return l.appendRecords(ctx, tenant, recs, nil)
}

// AppendUnless is Append with a precondition: if an entry of one of u.Kinds was
// appended at index u.From or later, or an entry with one of the
// identities u.Absent is in the log, nothing is written and it fails with
// a *RecordError wrapping ErrPrecondition. Records whose identity exists
// already (Duplicate receipts) are not new and do not check it: an append
// that committed before stays committed. Erasures and sweeps commit their
// first tombstone with it, so that a hold entry appended after they read
// the holds makes them plan again.
func (l *Ledger) AppendUnless(ctx context.Context, tenant string, recs []Record, u Unless) ([]Receipt, error) {
	if len(u.Kinds) == 0 && len(u.Absent) == 0 || slices.Contains(u.Kinds, format.KindSpan) {
		return nil, fmt.Errorf("%w: a precondition names kinds other than span (spans are not in the kind index), or identities", ErrInvalid)
	}
	for _, a := range u.Absent {
		switch a.Kind {
		case format.KindTombstone, format.KindRetention, format.KindHold:
		default:
			return nil, fmt.Errorf("%w: a precondition names identities of tombstone, retention or hold entries, not of %s entries", ErrInvalid, a.Kind)
		}
	}
	return l.appendRecords(ctx, tenant, recs, &u)
}

func (l *Ledger) appendRecords(ctx context.Context, tenant string, recs []Record, unless *Unless) ([]Receipt, error) {
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
	if err := l.failure(); err != nil {
		return nil, err
	}
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	if err := l.space.check(l.now(), critical(recs)); err != nil {
		return nil, err
	}
	day := l.appendDay(tid)
	req := &appendReq{tenant: tid, tenantName: tenant, recs: recs, prep: make([]prepared, len(recs)), done: make(chan appendResult, 1), unless: unless}
	for i := range recs {
		r := &recs[i]
		class := r.RetentionClass
		if class == "" {
			class = DefaultRetentionClass
		}
		// Index term MACs are computed here, in parallel, not in the writer.
		// The subject's term MAC is its pseudonym; a span that names no
		// subject is sealed under a key of its trace (closure.go).
		terms := make([][termRefSize]byte, 0, len(r.Terms)+1)
		pseudonym := l.keys.pseudonym(tid, r.Subject)
		if r.Subject != "" {
			var ref [termRefSize]byte
			ref[0] = SubjectField
			copy(ref[1:], pseudonym[:])
			terms = append(terms, ref)
		} else if r.Kind == format.KindSpan {
			var ref [termRefSize]byte
			pseudonym, ref = l.traceScope(tid, r.TraceID)
			terms = append(terms, ref)
		}
		scope := keyScope{tenant: tid, pseudonym: pseudonym, day: day, class: class}
		dk, err := l.keys.forScope(scope)
		if err != nil {
			return nil, err
		}
		for _, t := range r.Terms {
			terms = append(terms, l.termRef(tid, t))
		}
		salt := make([]byte, format.SaltSize)
		rand.Read(salt)
		c := format.Commitment(salt, r.Payload)
		req.prep[i] = prepared{commitment: c, envelope: seal(dk, tid, c, salt, r.Payload, terms), terms: terms, salt: salt, key: dk, scope: scope}
		req.cost.record(tenant, r, &req.prep[i])
	}
	// New data keys are stored by the writer before it commits the group.
	var newKeys map[*dataKey]bool
	for i := range req.prep {
		if k := req.prep[i].key; k.pending() && !newKeys[k] {
			if newKeys == nil {
				newKeys = make(map[*dataKey]bool)
			}
			newKeys[k] = true
			req.cost.dataKey(k.sc)
		}
	}
	req.cost.treeSize()
	if err := req.cost.within(l.txnLimit); err != nil {
		return nil, fmt.Errorf("%w: a batch of %d records %v; split it", ErrInvalid, len(recs), err)
	}
	return l.submit(ctx, req)
}

// submit queues a request for the writer and waits for its answer.
func (l *Ledger) submit(ctx context.Context, req *appendReq) ([]Receipt, error) {
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

// critical reports whether a batch holds records that may use the lower
// half of the disk space reserve: access records, tombstones, holds and
// retention changes, so that refusals and reads can still be recorded and
// erasures finished while trace data is refused.
func critical(recs []Record) bool {
	for i := range recs {
		if recs[i].Kind == format.KindSpan || recs[i].Kind == format.KindVersion {
			return false
		}
	}
	return true
}
