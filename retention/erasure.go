package retention

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// ErasureRequest asks to erase a data subject's, a session's or some
// traces' payloads.
type ErasureRequest struct {
	// ID makes the request idempotent: a request with the ID of an earlier
	// one returns that one's outcome.
	ID       string
	Subject  string
	Session  string
	TraceIDs [][16]byte
	// LegalBasis, e.g. "GDPR Art. 17(1)(a)"; Ticket, an external reference;
	// Reason, free text. LegalBasis and Reason are required.
	LegalBasis, Ticket, Reason string
	RequestedBy                string
	DryRun                     bool
}

// Erasure is an erasure request's, or a sweep's, plan and outcome. Both
// are persisted before any key is destroyed and finished by Resume after a
// crash, so that no payload is ever gone without its tombstone.
type Erasure struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind,omitempty"` // "" (erasure) or "expiry"
	Tenant      string    `json:"tenant"`
	State       string    `json:"state"`    // "dry-run", "executing", "done"
	Selector    string    `json:"selector"` // "subject", "session" or "traces"; never the id itself
	LegalBasis  string    `json:"legal_basis"`
	Ticket      string    `json:"ticket,omitempty"`
	Reason      string    `json:"reason"`
	RequestedBy string    `json:"requested_by,omitempty"`
	RequestedAt time.Time `json:"requested_at"`
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// Erase lists the entries erased (or, in a dry run, to be erased).
	Erase []uint64 `json:"erase"`
	// Held lists the entries selected but kept by a hold.
	Held []format.HeldEntry `json:"held,omitempty"`
	Keys []string           `json:"keys"` // data key ids (hex) to destroy
	// KeyRefs are the same keys with their scopes (ledger.KeyRef's text
	// form), kept while the plan executes so that an interrupted plan can
	// finish destroying them after their index records are gone; cleared
	// once done, since they hold the subject's pseudonym.
	KeyRefs []*ledger.KeyRef `json:"key_refs,omitempty"`
	// Buckets are the expiry buckets a sweep destroys whole, as "day/class"
	// (day: days since 1970-01-01 UTC).
	Buckets []string `json:"buckets,omitempty"`
	// Tombstone is the first tombstone written, Tombstones all of them
	// (format.MaxTombstoneNames entries each at most).
	Tombstone  *uint64  `json:"tombstone,omitempty"`
	Tombstones []uint64 `json:"tombstones,omitempty"`
	// Receipt and ReceiptSig are set once done.
	Receipt    json.RawMessage `json:"receipt,omitempty"`
	ReceiptSig string          `json:"receipt_sig,omitempty"`
	// RequestDigest is a keyed digest of what the request asked (see
	// requestDigest), under DigestKey, random per plan: a request id reused
	// for a different request is refused. Empty for sweeps and for plans
	// stored before digests were kept.
	RequestDigest string `json:"request_digest,omitempty"`
	DigestKey     string `json:"digest_key,omitempty"`
}

// Receipt is what an erasure receipt says; the log key signs its JSON
// (format.ReceiptSignatureBody).
type Receipt struct {
	Format      string                  `json:"format"` // "veritrace-erasure-receipt/v1"
	RequestID   string                  `json:"request_id"`
	Origin      string                  `json:"origin"`
	Tenant      string                  `json:"tenant"`
	Selector    string                  `json:"selector"`
	LegalBasis  string                  `json:"legal_basis"`
	Ticket      string                  `json:"ticket,omitempty"`
	RequestedBy string                  `json:"requested_by,omitempty"`
	RequestedAt time.Time               `json:"requested_at"`
	CompletedAt time.Time               `json:"completed_at"`
	Erased      []format.TombstoneEntry `json:"erased"`
	Held        []format.HeldEntry      `json:"held,omitempty"`
	// Tombstone is the first tombstone's index, Tombstones every one's: a
	// request naming more than format.MaxTombstoneNames entries has several.
	Tombstone  uint64   `json:"tombstone_index"`
	Tombstones []uint64 `json:"tombstone_indexes"`
	// Checkpoint is the signed checkpoint after the tombstone was appended.
	Checkpoint string `json:"checkpoint"`
}

// ErrRequestIDReused: the request id names an earlier, different request.
var ErrRequestIDReused = errors.New("request_id already names a different erasure request")

// requestDigest is HMAC-SHA256, under key, of everything an erasure request
// asks: the selector and its value (trace ids as a set), the legal basis,
// the ticket and the reason; not who asks, nor whether it is a dry run.
// Two requests with the same id are the same request exactly when their
// digests are equal. The plan keeps the digest instead of the subject or
// session id it was computed from.
func requestDigest(key []byte, req ErasureRequest) []byte {
	m := hmac.New(sha256.New, key)
	field := func(b []byte) {
		m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		m.Write(b)
	}
	field([]byte("veritrace erasure request v1"))
	field([]byte(req.Subject))
	field([]byte(req.Session))
	traces := slices.Clone(req.TraceIDs)
	slices.SortFunc(traces, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	traces = slices.Compact(traces)
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(traces))))
	for _, t := range traces {
		m.Write(t[:])
	}
	field([]byte(req.LegalBasis))
	field([]byte(req.Ticket))
	field([]byte(req.Reason))
	return m.Sum(nil)
}

// sameRequest reports whether req is the request the plan was made for.
// Plans stored before digests were kept match any request with their id.
func (er *Erasure) sameRequest(req ErasureRequest) bool {
	if er.RequestDigest == "" {
		return true
	}
	key, err1 := hex.DecodeString(er.DigestKey)
	want, err2 := hex.DecodeString(er.RequestDigest)
	return err1 == nil && err2 == nil && hmac.Equal(requestDigest(key, req), want)
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Erase carries out (or, with DryRun, plans) an erasure request. Entries
// covered by a legal hold are not erased; the outcome lists them with the
// hold. A request with the ID of an earlier one returns its outcome if it
// asks the same (requestDigest), else ErrRequestIDReused; one interrupted
// by a crash is finished by Resume or by asking again.
func (s *Service) Erase(ctx context.Context, tenant string, req ErasureRequest) (*Erasure, error) {
	if !validRequestID(req.ID) {
		return nil, fmt.Errorf("%w: request id must be 1 to 64 of A-Z a-z 0-9 - _ .", ErrInvalid)
	}
	n := 0
	for _, set := range []bool{req.Subject != "", req.Session != "", len(req.TraceIDs) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%w: name exactly one of a subject, a session or trace ids", ErrInvalid)
	}
	if req.LegalBasis == "" || req.Reason == "" {
		return nil, fmt.Errorf("%w: an erasure needs a legal basis and a reason", ErrNoReason)
	}
	s.work.Lock()
	defer s.work.Unlock()
	if b, err := s.L.GetState(ctx, tenant, stateErasure+req.ID); err == nil {
		er := &Erasure{}
		if err := json.Unmarshal(b, er); err != nil {
			return nil, err
		}
		if !er.sameRequest(req) {
			return nil, fmt.Errorf("%w: %q was used for an erasure requested at %s; use a new request id", ErrRequestIDReused, req.ID, er.RequestedAt.Format(time.RFC3339))
		}
		if er.State == "executing" {
			return er, s.complete(ctx, er)
		}
		return er, nil
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return nil, err
	}

	er := &Erasure{ID: req.ID, Tenant: tenant, LegalBasis: req.LegalBasis, Ticket: req.Ticket, Reason: req.Reason,
		RequestedBy: req.RequestedBy, RequestedAt: s.now(), State: "executing"}
	digestKey := make([]byte, 32)
	rand.Read(digestKey)
	er.DigestKey, er.RequestDigest = hex.EncodeToString(digestKey), hex.EncodeToString(requestDigest(digestKey, req))
	switch {
	case req.Subject != "":
		er.Selector = "subject"
	case req.Session != "":
		er.Selector = "session"
	default:
		er.Selector = "traces"
	}
	// The subject's (session's) whole traces; closed first, so that no
	// piece of them arriving meanwhile escapes the plan (closure.go).
	if !req.DryRun {
		if err := s.closeTraces(ctx, tenant, req); err != nil {
			return nil, err
		}
	}
	targets, _, err := s.selectEntries(ctx, tenant, req)
	if err != nil {
		return nil, err
	}
	keys, live, err := s.L.KeysOf(ctx, tenant, targets)
	if err != nil {
		return nil, err
	}
	if len(live) == 0 {
		return nil, fmt.Errorf("%s: %w", er.Selector, ErrNothingToErase)
	}
	held, err := s.held(ctx, tenant, live)
	if err != nil {
		return nil, err
	}
	needed := map[[16]byte]bool{}
	for _, i := range live {
		if h := held[i]; h != nil {
			er.Held = append(er.Held, format.HeldEntry{Index: i, HoldID: h.ID, CaseRef: h.CaseRef})
			continue
		}
		er.Erase = append(er.Erase, i)
	}
	if len(er.Erase) > 0 {
		k2, _, err := s.L.KeysOf(ctx, tenant, er.Erase)
		if err != nil {
			return nil, err
		}
		for id := range k2 {
			needed[id] = true
		}
	}
	for id, k := range keys {
		if needed[id] {
			er.Keys = append(er.Keys, hex.EncodeToString(id[:]))
			er.KeyRefs = append(er.KeyRefs, k)
		}
	}
	sort.Strings(er.Keys)
	sort.Slice(er.KeyRefs, func(i, j int) bool { return bytes.Compare(er.KeyRefs[i].ID[:], er.KeyRefs[j].ID[:]) < 0 })
	if req.DryRun {
		er.State = "dry-run"
		return er, nil
	}
	if err := s.putErasure(ctx, er); err != nil {
		return nil, err
	}
	return er, s.complete(ctx, er)
}

func (s *Service) putErasure(ctx context.Context, er *Erasure) error {
	b, err := json.Marshal(er)
	if err != nil {
		return err
	}
	if err := s.L.PutState(ctx, er.Tenant, stateErasure+er.ID, b); err != nil {
		return err
	}
	return s.indexErasure(ctx, er) // after the plan; Resume repairs a crash between
}

// testHookAfterShred, when set by tests, runs after the keys of an erasure
// are destroyed and before its tombstone is appended.
var testHookAfterShred func() error

// testHookAfterTombstonePart, when set by tests, runs after each part of a
// tombstone is appended.
var testHookAfterTombstonePart func(part int) error

// complete carries out a persisted erasure or sweep plan. Every step is
// idempotent, so that an interrupted one can be completed by running it
// again. It is not cancelled by ctx: once keys may be destroyed, it runs to
// its tombstone.
func (s *Service) complete(ctx context.Context, er *Erasure) error {
	ctx = context.WithoutCancel(ctx)
	// Every key and bucket of the plan goes to Shred, those destroyed
	// before an interruption too: destroying again removes what a crash
	// left of them (index records, or material).
	keys := er.KeyRefs
	if len(keys) == 0 && len(er.Keys) > 0 {
		// A plan of an earlier build names keys by id only: find them by
		// their location records (gone only once fully destroyed).
		for _, h := range er.Keys {
			var id [16]byte
			if _, err := hex.Decode(id[:], []byte(h)); err != nil {
				return fmt.Errorf("erasure %s: key id %q: %w", er.ID, h, err)
			}
			k, err := s.L.KeyLocation(id)
			if errors.Is(err, ledger.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
	}
	erase := map[uint64]bool{}
	for _, i := range er.Erase {
		erase[i] = true
	}
	var buckets []ledger.Bucket
	for _, name := range er.Buckets {
		day, class, ok := parseBucketName(name)
		if !ok {
			return fmt.Errorf("erasure %s: malformed bucket %q", er.ID, name)
		}
		b, err := s.L.ExpiryBucket(ctx, er.Tenant, day, class)
		if err != nil {
			return err
		}
		buckets = append(buckets, b)
	}
	if _, err := s.L.Shred(ctx, er.Tenant, keys, buckets, erase); err != nil {
		return fmt.Errorf("erasure %s: %w", er.ID, err)
	}
	if testHookAfterShred != nil {
		if err := testHookAfterShred(); err != nil {
			return err
		}
	}
	ts, idxs, err := s.writeTombstones(ctx, er)
	if err != nil {
		return err
	}
	idx := idxs[0]
	er.Tombstones = idxs
	er.KeyRefs = nil // the keys are destroyed: keep no pseudonym
	if er.Kind == "expiry" {
		er.Tombstone, er.State, er.CompletedAt = &idx, "done", s.now()
		s.log().InfoContext(ctx, "sweep", "tenant", er.Tenant, "expired", len(er.Erase), "held", len(er.Held), "tombstone", idx)
		return s.putErasure(ctx, er)
	}
	cp, err := s.L.Checkpoint(ctx, er.Tenant, true)
	if err != nil {
		return err
	}
	er.Tombstone, er.State, er.CompletedAt = &idx, "done", s.now()
	rc := Receipt{Format: "veritrace-erasure-receipt/v1", RequestID: er.ID, Origin: cp.Origin, Tenant: er.Tenant, Selector: er.Selector,
		LegalBasis: er.LegalBasis, Ticket: er.Ticket, RequestedBy: er.RequestedBy, RequestedAt: er.RequestedAt,
		CompletedAt: er.CompletedAt, Erased: ts.Erased, Held: er.Held, Tombstone: idx, Tombstones: idxs, Checkpoint: string(cp.Note)}
	if rc.Erased == nil {
		rc.Erased = []format.TombstoneEntry{}
	}
	if er.Receipt, err = json.Marshal(&rc); err != nil {
		return err
	}
	sig, err := s.L.SignReceipt(ctx, er.Tenant, sha256.Sum256(er.Receipt))
	if err != nil {
		return err
	}
	er.ReceiptSig = string(sig)
	if err := s.putErasure(ctx, er); err != nil {
		return err
	}
	s.log().InfoContext(ctx, "erasure done", "tenant", er.Tenant, "request_id", er.ID, "erased", len(er.Erase), "held", len(er.Held), "tombstone", idx)
	s.L.RequestValueLogGC()
	return nil
}

// writeTombstones appends the tombstones of a carried-out plan, parts of at
// most format.MaxTombstoneNames entries each, and marks each erased entry
// with the part that names it. It returns the whole tombstone (every part's
// lists together) and the parts' indexes. Each part has an identity of its
// own and the same content every time, so that writing them again after an
// interruption appends nothing twice.
func (s *Service) writeTombstones(ctx context.Context, er *Erasure) (*format.Tombstone, []uint64, error) {
	all := &format.Tombstone{Reason: "erasure", RequestID: er.ID, LegalBasis: er.LegalBasis, Ticket: er.Ticket,
		Why: er.Reason, RequestedBy: er.RequestedBy, Held: er.Held}
	sub := format.TombstoneErasure
	if er.Kind == "expiry" {
		all.Reason, sub = "expiry", format.TombstoneExpiry
	}
	leaves, err := s.L.LeafHashes(ctx, er.Tenant, er.Erase)
	if err != nil {
		return nil, nil, err
	}
	for j, i := range er.Erase {
		all.Erased = append(all.Erased, format.TombstoneEntry{Index: i, LeafHash: hex.EncodeToString(leaves[j][:])})
	}
	names := len(all.Erased) + len(all.Held)
	parts := max(1, (names+format.MaxTombstoneNames-1)/format.MaxTombstoneNames)
	var idxs []uint64
	erased, held := all.Erased, all.Held
	for part := 1; part <= parts; part++ {
		ts := *all
		ts.Part, ts.Parts = part, parts
		n := min(len(erased), format.MaxTombstoneNames)
		ts.Erased, erased = erased[:n], erased[n:]
		m := min(len(held), format.MaxTombstoneNames-n)
		ts.Held, held = held[:m], held[m:]
		if ts.Erased == nil {
			ts.Erased = []format.TombstoneEntry{}
		}
		idx, err := s.appendRecord(ctx, er.Tenant, format.KindTombstone, sub, recordID(ts.Reason, er.Tenant, er.ID, "part", strconv.Itoa(part)), &ts)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s: tombstone %d of %d: %w", ts.Reason, er.ID, part, parts, err)
		}
		marked := make([]uint64, len(ts.Erased))
		for j, te := range ts.Erased {
			marked[j] = te.Index
		}
		if err := s.L.MarkErased(ctx, er.Tenant, marked, idx); err != nil {
			return nil, nil, err
		}
		idxs = append(idxs, idx)
		if testHookAfterTombstonePart != nil {
			if err := testHookAfterTombstonePart(part); err != nil {
				return nil, nil, err
			}
		}
	}
	return all, idxs, nil
}

// ErasureStatus returns an erasure request's state and, once done, its
// signed receipt.
func (s *Service) ErasureStatus(ctx context.Context, tenant, id string) (*Erasure, error) {
	b, err := s.L.GetState(ctx, tenant, stateErasure+id)
	if err != nil {
		return nil, err
	}
	er := &Erasure{}
	return er, json.Unmarshal(b, er)
}

// Resume finishes every erasure a crash interrupted. Call it after opening
// the ledger, before serving.
func (s *Service) Resume(ctx context.Context) error {
	for _, tenant := range s.L.Tenants() {
		_, values, err := s.L.ListState(ctx, tenant, stateErasure)
		if err != nil {
			return err
		}
		for _, v := range values {
			er := &Erasure{}
			if err := json.Unmarshal(v, er); err != nil {
				return err
			}
			if er.State != "executing" {
				// The list's summary of a finished request: written after
				// the plan, so a crash between them leaves it missing or
				// stale (list.go).
				if err := s.indexErasure(ctx, er); err != nil {
					return err
				}
				continue
			}
			s.log().WarnContext(ctx, "resuming an interrupted erasure or sweep", "tenant", tenant, "id", er.ID, "kind", er.Kind)
			s.work.Lock()
			err := s.complete(ctx, er)
			s.work.Unlock()
			if err != nil {
				return err
			}
		}
	}
	return nil
}
