package retention

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// Errors callers branch on.
var (
	// ErrNothingToErase: the selector matches no entry with a payload.
	ErrNothingToErase = errors.New("no entry with a payload matches")
	// ErrInvalid: a malformed request (missing fields, bad ids).
	ErrInvalid = errors.New("invalid request")
	// ErrHoldReleased: the hold was released already.
	ErrHoldReleased = errors.New("hold already released")
)

// Names of state records.
const (
	statePolicy  = "retention"
	stateHold    = "hold/"
	stateErasure = "erasure/"
)

// Service applies retention, holds and erasure to a ledger. Its methods are
// safe for concurrent use; erasures and sweeps run one at a time.
type Service struct {
	L *ledger.Ledger
	// SessionField is the index field of span session ids (audit.FieldSession).
	SessionField uint8
	Now          func() time.Time
	Log          *slog.Logger

	mu       sync.Mutex
	policies map[string]*Policy
	work     sync.Mutex // one erasure or sweep at a time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// recordID makes the identity of a tombstone, retention or hold entry.
func recordID(parts ...string) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	var id [32]byte
	h.Sum(id[:0])
	return id
}

func (s *Service) appendRecord(ctx context.Context, tenant string, kind format.Kind, sub uint8, id [32]byte, v any) (uint64, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	rs, err := s.L.Append(ctx, tenant, []ledger.Record{{Kind: kind, SubKind: sub, ID: id, RetentionClass: RecordsClass, Payload: payload}})
	if err != nil {
		return 0, err
	}
	return rs[0].Index, nil
}

// clone deep-copies a policy, so that callers never share its rules.
func (p *Policy) clone() *Policy {
	b, _ := json.Marshal(p)
	c := &Policy{}
	json.Unmarshal(b, c)
	return c
}

// Policy returns a copy of a tenant's retention policy (DefaultPolicy if it
// never set one).
func (s *Service) Policy(ctx context.Context, tenant string) (*Policy, error) {
	s.mu.Lock()
	p := s.policies[tenant]
	s.mu.Unlock()
	if p != nil {
		return p.clone(), nil
	}
	b, err := s.L.GetState(ctx, tenant, statePolicy)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		d := DefaultPolicy()
		p = &d
	case err != nil:
		return nil, err
	default:
		p = &Policy{}
		if err := json.Unmarshal(b, p); err != nil {
			return nil, fmt.Errorf("retention policy of %s: %w", tenant, err)
		}
	}
	s.mu.Lock()
	if s.policies == nil {
		s.policies = map[string]*Policy{}
	}
	s.policies[tenant] = p
	s.mu.Unlock()
	return p.clone(), nil
}

// ClassOf returns the retention class of a span under the tenant's policy.
func (s *Service) ClassOf(ctx context.Context, tenant string, f SpanFacts) (string, error) {
	p, err := s.Policy(ctx, tenant)
	if err != nil {
		return "", err
	}
	return p.Classify(f), nil
}

// SetPolicy replaces a tenant's policy after Check. The change is appended
// to the tenant's log (a retention entry with the whole policy, who and
// why) before it takes effect. It returns the policy and the entry's index.
func (s *Service) SetPolicy(ctx context.Context, tenant string, next Policy, by, reason string) (*Policy, uint64, error) {
	s.work.Lock()
	defer s.work.Unlock()
	old, err := s.Policy(ctx, tenant)
	if err != nil {
		return nil, 0, err
	}
	next = *next.clone() // the caller keeps its slices and maps
	if err := Check(old, &next, reason); err != nil {
		return nil, 0, err
	}
	next.Default.Class = DefaultClass
	next.Revision, next.UpdatedBy, next.UpdatedAt, next.Reason = old.Revision+1, by, s.now(), reason
	idx, err := s.appendRecord(ctx, tenant, format.KindRetention, format.RetentionRules, recordID("retention", tenant, fmt.Sprint(next.Revision)), &next)
	if err != nil {
		return nil, 0, err
	}
	b, _ := json.Marshal(&next)
	if err := s.L.PutState(ctx, tenant, statePolicy, b); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	s.policies[tenant] = &next
	s.mu.Unlock()
	return next.clone(), idx, nil
}

// HoldScope says what a hold covers: exactly one of its fields is set.
type HoldScope struct {
	Tenant  bool      `json:"tenant,omitempty"`
	Subject string    `json:"subject,omitempty"`
	Session string    `json:"session,omitempty"`
	TraceID string    `json:"trace_id,omitempty"` // 32 hex digits
	From    time.Time `json:"from,omitzero"`      // appended_at in [From, To)
	To      time.Time `json:"to,omitzero"`
}

func (h *HoldScope) validate() error {
	n := 0
	for _, set := range []bool{h.Tenant, h.Subject != "", h.Session != "", h.TraceID != "", !h.From.IsZero() || !h.To.IsZero()} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("%w: a hold covers exactly one of: the tenant, a subject, a session, a trace or a time range", ErrInvalid)
	}
	if h.TraceID != "" {
		if b, err := hex.DecodeString(h.TraceID); err != nil || len(b) != 16 {
			return fmt.Errorf("%w: trace_id must be 32 hex digits", ErrInvalid)
		}
	}
	if !h.From.IsZero() && !h.To.IsZero() && !h.From.Before(h.To) {
		return fmt.Errorf("%w: the time range ends before it starts", ErrInvalid)
	}
	return nil
}

// Hold is a legal hold: the entries it covers are neither expired nor
// erased until it is released.
type Hold struct {
	ID            string    `json:"id"`
	Scope         HoldScope `json:"scope"`
	CaseRef       string    `json:"case_ref"`
	Reason        string    `json:"reason"`
	PlacedBy      string    `json:"placed_by"`
	PlacedAt      time.Time `json:"placed_at"`
	ReleasedBy    string    `json:"released_by,omitempty"`
	ReleasedAt    time.Time `json:"released_at,omitzero"`
	ReleaseReason string    `json:"release_reason,omitempty"`
}

// Active reports whether the hold is in force.
func (h *Hold) Active() bool { return h.ReleasedAt.IsZero() }

// PlaceHold places a hold. It is in force as soon as it is stored, before
// its ledger entry is appended: a crash between the two leaves data held,
// never unprotected.
func (s *Service) PlaceHold(ctx context.Context, tenant string, scope HoldScope, caseRef, reason, by string) (*Hold, uint64, error) {
	if err := scope.validate(); err != nil {
		return nil, 0, err
	}
	if caseRef == "" || reason == "" {
		return nil, 0, fmt.Errorf("%w: a hold needs a case reference and a reason", ErrNoReason)
	}
	h := &Hold{ID: uuid.NewString(), Scope: scope, CaseRef: caseRef, Reason: reason, PlacedBy: by, PlacedAt: s.now()}
	if err := s.putHold(ctx, tenant, h); err != nil {
		return nil, 0, err
	}
	idx, err := s.appendRecord(ctx, tenant, format.KindHold, format.HoldPlaced, recordID("hold", h.ID, "placed"), h)
	return h, idx, err
}

// ReleaseHold releases a hold, with a reason.
func (s *Service) ReleaseHold(ctx context.Context, tenant, id, reason, by string) (*Hold, uint64, error) {
	if reason == "" {
		return nil, 0, fmt.Errorf("%w: releasing a hold", ErrNoReason)
	}
	s.work.Lock() // not while an erasure or sweep is deciding what is held
	defer s.work.Unlock()
	b, err := s.L.GetState(ctx, tenant, stateHold+id)
	if err != nil {
		return nil, 0, err
	}
	h := &Hold{}
	if err := json.Unmarshal(b, h); err != nil {
		return nil, 0, err
	}
	if !h.Active() {
		return h, 0, ErrHoldReleased
	}
	h.ReleasedBy, h.ReleasedAt, h.ReleaseReason = by, s.now(), reason
	idx, err := s.appendRecord(ctx, tenant, format.KindHold, format.HoldReleased, recordID("hold", h.ID, "released"), h)
	if err != nil {
		return nil, 0, err
	}
	return h, idx, s.putHold(ctx, tenant, h)
}

func (s *Service) putHold(ctx context.Context, tenant string, h *Hold) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return s.L.PutState(ctx, tenant, stateHold+h.ID, b)
}

// Holds lists a tenant's holds, released ones too if all.
func (s *Service) Holds(ctx context.Context, tenant string, all bool) ([]*Hold, error) {
	_, values, err := s.L.ListState(ctx, tenant, stateHold)
	if err != nil {
		return nil, err
	}
	var out []*Hold
	for _, v := range values {
		h := &Hold{}
		if err := json.Unmarshal(v, h); err != nil {
			return nil, err
		}
		if all || h.Active() {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PlacedAt.Before(out[j].PlacedAt) })
	return out, nil
}

// held returns, for the candidates, the active hold covering each one that
// is held.
func (s *Service) held(ctx context.Context, tenant string, cands []uint64) (map[uint64]*Hold, error) {
	holds, err := s.Holds(ctx, tenant, false)
	if err != nil || len(holds) == 0 {
		return nil, err
	}
	size, err := s.L.Size(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := map[uint64]*Hold{}
	for _, h := range holds {
		var covered func(uint64) bool
		sc := h.Scope
		switch {
		case sc.Tenant:
			covered = func(uint64) bool { return true }
		case sc.Subject != "" || sc.Session != "" || sc.TraceID != "":
			var idxs []uint64
			switch {
			case sc.Subject != "":
				idxs, err = s.L.EntryIndexes(ctx, tenant, ledger.Term{Field: ledger.SubjectField, Value: []byte(sc.Subject)})
			case sc.Session != "":
				idxs, err = s.L.EntryIndexes(ctx, tenant, ledger.Term{Field: s.SessionField, Value: []byte(sc.Session)})
			default:
				var t [16]byte
				hex.Decode(t[:], []byte(sc.TraceID))
				idxs, err = s.L.SpansOfTrace(ctx, tenant, t, size)
			}
			if err != nil {
				return nil, err
			}
			set := map[uint64]bool{}
			for _, i := range idxs {
				set[i] = true
			}
			covered = func(i uint64) bool { return set[i] }
		default:
			lo, hi := uint64(0), size
			if !sc.From.IsZero() {
				if lo, err = s.L.IndexAt(ctx, tenant, sc.From); err != nil {
					return nil, err
				}
			}
			if !sc.To.IsZero() {
				if hi, err = s.L.IndexAt(ctx, tenant, sc.To); err != nil {
					return nil, err
				}
			}
			covered = func(i uint64) bool { return i >= lo && i < hi }
		}
		for _, i := range cands {
			if out[i] == nil && covered(i) {
				out[i] = h
			}
		}
	}
	return out, nil
}

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
	Held      []format.HeldEntry `json:"held,omitempty"`
	Keys      []string           `json:"keys"` // data key ids (hex) to destroy
	Tombstone *uint64            `json:"tombstone,omitempty"`
	// Receipt and ReceiptSig are set once done.
	Receipt    json.RawMessage `json:"receipt,omitempty"`
	ReceiptSig string          `json:"receipt_sig,omitempty"`
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
	Tombstone   uint64                  `json:"tombstone_index"`
	// Checkpoint is the signed checkpoint after the tombstone was appended.
	Checkpoint string `json:"checkpoint"`
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
// hold. A request with the ID of an earlier one returns its outcome, and
// one interrupted by a crash is finished by Resume or by asking again.
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
		if er.State == "executing" {
			return er, s.complete(ctx, er)
		}
		return er, nil
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return nil, err
	}

	er := &Erasure{ID: req.ID, Tenant: tenant, LegalBasis: req.LegalBasis, Ticket: req.Ticket, Reason: req.Reason,
		RequestedBy: req.RequestedBy, RequestedAt: s.now(), State: "executing"}
	var targets []uint64
	var err error
	switch {
	case req.Subject != "":
		er.Selector = "subject"
		targets, err = s.L.EntryIndexes(ctx, tenant, ledger.Term{Field: ledger.SubjectField, Value: []byte(req.Subject)})
	case req.Session != "":
		er.Selector = "session"
		targets, err = s.L.EntryIndexes(ctx, tenant, ledger.Term{Field: s.SessionField, Value: []byte(req.Session)})
	default:
		er.Selector = "traces"
		size, serr := s.L.Size(ctx, tenant)
		if serr != nil {
			return nil, serr
		}
		for _, t := range req.TraceIDs {
			idxs, terr := s.L.SpansOfTrace(ctx, tenant, t, size)
			if terr != nil {
				return nil, terr
			}
			targets = append(targets, idxs...)
		}
	}
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
	for id := range keys {
		if needed[id] {
			er.Keys = append(er.Keys, hex.EncodeToString(id[:]))
		}
	}
	sort.Strings(er.Keys)
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
	return s.L.PutState(ctx, er.Tenant, stateErasure+er.ID, b)
}

// testHookAfterShred, when set by tests, runs after the keys of an erasure
// are destroyed and before its tombstone is appended.
var testHookAfterShred func() error

// complete carries out a persisted erasure or sweep plan. Every step is
// idempotent, so that an interrupted one can be completed by running it
// again. It is not cancelled by ctx: once keys may be destroyed, it runs to
// its tombstone.
func (s *Service) complete(ctx context.Context, er *Erasure) error {
	ctx = context.WithoutCancel(ctx)
	var keys []*ledger.KeyRef
	for _, h := range er.Keys {
		var id [16]byte
		hex.Decode(id[:], []byte(h))
		k, err := s.L.KeyByID(id)
		if errors.Is(err, ledger.ErrKeyDestroyed) {
			continue // destroyed before an interruption
		}
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	erase := map[uint64]bool{}
	for _, i := range er.Erase {
		erase[i] = true
	}
	if _, err := s.L.Shred(ctx, er.Tenant, keys, erase); err != nil {
		return fmt.Errorf("erasure %s: %w", er.ID, err)
	}
	if testHookAfterShred != nil {
		if err := testHookAfterShred(); err != nil {
			return err
		}
	}
	ts := &format.Tombstone{Reason: "erasure", RequestID: er.ID, LegalBasis: er.LegalBasis, Ticket: er.Ticket,
		Why: er.Reason, RequestedBy: er.RequestedBy, Held: er.Held}
	sub := format.TombstoneErasure
	if er.Kind == "expiry" {
		ts.Reason, sub = "expiry", format.TombstoneExpiry
	}
	for _, i := range er.Erase {
		e, err := s.L.GetEntry(ctx, er.Tenant, i)
		if err != nil {
			return err
		}
		ts.Erased = append(ts.Erased, format.TombstoneEntry{Index: i, LeafHash: hex.EncodeToString(e.LeafHash[:])})
	}
	idx, err := s.appendRecord(ctx, er.Tenant, format.KindTombstone, sub, recordID(ts.Reason, er.Tenant, er.ID), ts)
	if err != nil {
		return fmt.Errorf("%s %s: tombstone: %w", ts.Reason, er.ID, err)
	}
	if err := s.L.MarkErased(ctx, er.Tenant, er.Erase, idx); err != nil {
		return err
	}
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
		CompletedAt: er.CompletedAt, Erased: ts.Erased, Held: er.Held, Tombstone: idx, Checkpoint: string(cp.Note)}
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

// SweepResult says what a sweep did in one tenant.
type SweepResult struct {
	Tenant    string
	Erased    int
	Held      int
	Tombstone *uint64
}

// Sweep expires the payloads of a tenant whose retention period has passed:
// every data key of a (class, day) older than the class's period is
// destroyed, after the held entries under it are re-sealed; one tombstone
// lists what was purged and why.
func (s *Service) Sweep(ctx context.Context, tenant string) (*SweepResult, error) {
	s.work.Lock()
	defer s.work.Unlock()
	res := &SweepResult{Tenant: tenant}
	p, err := s.Policy(ctx, tenant)
	if err != nil {
		return nil, err
	}
	keys, err := s.L.Keys(ctx, tenant)
	if err != nil {
		return nil, err
	}
	now := s.now().Unix()
	erase := map[uint64]bool{}
	var shred []*ledger.KeyRef
	var held []format.HeldEntry
	classes := map[string]int{}
	for _, k := range keys {
		days, expires := p.Days(k.Class)
		if !expires || (int64(k.Day)+1+int64(days))*86400 > now {
			continue
		}
		idxs, err := s.L.EntriesUnder(ctx, tenant, k)
		if err != nil {
			return nil, err
		}
		hs, err := s.held(ctx, tenant, idxs)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, i := range idxs {
			if h := hs[i]; h != nil {
				held = append(held, format.HeldEntry{Index: i, HoldID: h.ID, CaseRef: h.CaseRef})
			} else {
				erase[i] = true
				n++
			}
		}
		// A key whose entries are all held stays: destroying it would only
		// re-seal the same entries under a new key of the same expired scope.
		if n > 0 {
			shred = append(shred, k)
			classes[k.Class] = days
		}
	}
	res.Held = len(held)
	if len(shred) == 0 {
		return res, nil
	}
	ids := make([]uint64, 0, len(erase))
	for i := range erase {
		ids = append(ids, i)
	}
	slices.Sort(ids)
	var why []string
	for c, d := range classes {
		why = append(why, fmt.Sprintf("class %s: %d days", c, d))
	}
	slices.Sort(why)
	er := &Erasure{ID: "sweep-" + uuid.NewString(), Kind: "expiry", Tenant: tenant, State: "executing", Selector: "expiry",
		Reason: fmt.Sprintf("retention period ended (%s)", strings.Join(why, "; ")), RequestedAt: s.now(), Erase: ids, Held: held}
	for _, k := range shred {
		er.Keys = append(er.Keys, hex.EncodeToString(k.ID[:]))
	}
	if err := s.putErasure(ctx, er); err != nil {
		return nil, err
	}
	if err := s.complete(ctx, er); err != nil {
		return nil, err
	}
	res.Erased, res.Tombstone = len(ids), er.Tombstone
	s.L.RequestValueLogGC()
	return res, nil
}

// SweepAll sweeps every tenant.
func (s *Service) SweepAll(ctx context.Context) ([]*SweepResult, error) {
	var out []*SweepResult
	for _, t := range s.L.Tenants() {
		r, err := s.Sweep(ctx, t)
		if err != nil {
			return out, fmt.Errorf("sweep %s: %w", t, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Run sweeps every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.SweepAll(ctx); err != nil && ctx.Err() == nil {
				s.log().ErrorContext(ctx, "sweep", "err", err)
			}
		}
	}
}
