package retention

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// HoldScope says what a hold covers: exactly one of Tenant, Subject,
// Session, TraceID and the time range is set when a hold is placed.
//
// A subject or session id is never stored in the clear: the hold's state
// record keeps it sealed under the id's pseudonym key (Sealed), with its
// index term (Term) while the hold is in force, and the hold's log entries
// name it by its pseudonym only (docs/RETENTION.md). Once an erasure has
// destroyed the pseudonym key, nothing links the hold to the id.
type HoldScope struct {
	Tenant bool `json:"tenant,omitempty"`
	// Subject and Session: the id the hold is placed with, and what Holds
	// shows while the pseudonym key exists. Never written by this version
	// (forState clears them); holds stored by earlier builds have them, and
	// held and holdCovers read them from such records as they are.
	Subject string `json:"subject,omitempty"`
	Session string `json:"session,omitempty"`
	// Pseudonym names the subject or session as the access log does.
	Pseudonym string    `json:"pseudonym,omitempty"`
	TraceID   string    `json:"trace_id,omitempty"` // 32 hex digits
	From      time.Time `json:"from,omitzero"`      // appended_at in [From, To)
	To        time.Time `json:"to,omitzero"`
	// Kind says which id Pseudonym names: "subject" or "session".
	Kind string `json:"kind,omitempty"`
	// Sealed is the id sealed under its pseudonym key (state only).
	Sealed []byte `json:"sealed,omitempty"`
	// Term is the id's index term (ledger.TermRef's text), kept in the
	// state so that erasures and sweeps find what the hold covers and Holds
	// finds the pseudonym key; the erasure that destroys that key removes
	// it (scrubHolds).
	Term string `json:"term,omitempty"`
	// Erased: the id's pseudonym key is gone (the subject or session was
	// erased); only the pseudonym remains. Set by Holds, never stored.
	Erased bool `json:"-"`
}

// forLog is the scope as a hold entry records it: the pseudonym, never
// the id, its sealed form or its index term.
func (h HoldScope) forLog() HoldScope {
	h.Subject, h.Session, h.Sealed, h.Term = "", "", nil, ""
	return h
}

// forState is the scope as the hold's state record keeps it.
func (h HoldScope) forState() HoldScope {
	h.Subject, h.Session = "", ""
	return h
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
	ID string `json:"id"`
	// RequestID is the request id the hold was placed with, if any.
	RequestID     string    `json:"request_id,omitempty"`
	Scope         HoldScope `json:"scope"`
	CaseRef       string    `json:"case_ref"`
	Reason        string    `json:"reason"`
	PlacedBy      string    `json:"placed_by"`
	PlacedAt      time.Time `json:"placed_at"`
	ReleasedBy    string    `json:"released_by,omitempty"`
	ReleasedAt    time.Time `json:"released_at,omitzero"`
	ReleaseReason string    `json:"release_reason,omitempty"`
	// Pending (state only): the record claims its request id for a hold on
	// a subject or session whose pseudonym key is not made yet (Scope has
	// Kind and Term, no Pseudonym or Sealed). A pending hold is not in
	// force, not listed and cannot be released; the request that claimed
	// it, or the same request asked again, makes the key and completes it
	// (PlaceHoldRequest).
	Pending bool `json:"pending,omitempty"`
}

// Active reports whether the hold is in force.
func (h *Hold) Active() bool { return h.ReleasedAt.IsZero() }

// HoldRequest is a request to place a legal hold.
type HoldRequest struct {
	// ID, if set, makes the request idempotent (1 to 64 of A-Z a-z 0-9 -
	// _ .): the hold it places is named by it (HoldIDOf), so asking again
	// with the same ID and the same Scope, CaseRef and Reason answers with
	// that hold, and with anything else differing is refused
	// (ErrHoldRequestReused). Clients SHOULD set it; without it every
	// request places a new hold.
	ID      string
	Scope   HoldScope
	CaseRef string
	Reason  string
	By      string
}

// ErrHoldRequestReused: the request id placed a hold that differs from
// the one asked for.
var ErrHoldRequestReused = errors.New("request_id already placed a different hold")

// holdNamespace is the UUID namespace of the ids of holds placed with a
// request id (HoldIDOf).
var holdNamespace = uuid.MustParse("6a0b4c1e-3f51-4d8a-9a57-0e9a3c2b7d14")

// HoldIDOf is the id of the hold a tenant's request with request id id
// places: the name-based (version 5) UUID, in holdNamespace, of
// "veritrace hold request v1" 0x00 tenant 0x00 id. Holds placed without a
// request id have random (version 4) ids.
func HoldIDOf(tenant, id string) string {
	return uuid.NewSHA1(holdNamespace, []byte("veritrace hold request v1\x00"+tenant+"\x00"+id)).String()
}

// testHookHold, set by tests, runs at each step of placing a hold with a
// request id: "looked up" after the hold was found absent, before it is
// stored; "stored" after its state record is stored, before its entry is
// appended. An error stops PlaceHoldRequest there, as a crash would.
var testHookHold func(step string) error

func holdStep(step string) error {
	if testHookHold != nil {
		return testHookHold(step)
	}
	return nil
}

// PlaceHold places a hold without a request id (PlaceHoldRequest).
func (s *Service) PlaceHold(ctx context.Context, tenant string, scope HoldScope, caseRef, reason, by string) (*Hold, uint64, error) {
	return s.PlaceHoldRequest(ctx, tenant, HoldRequest{Scope: scope, CaseRef: caseRef, Reason: reason, By: by})
}

// PlaceHoldRequest places a hold. Its state is stored first, so that a
// crash leaves data held, never unprotected; the hold is acknowledged
// once its hold entry is appended (fsynced) to the tenant's log. It
// returns the hold and the index of its entry. Every erasure or sweep
// whose tombstone is appended after that entry honours it: each commits
// only if no hold entry was appended since it read the holds
// (ledger.AppendOptions.NoKindSince), else it plans again.
//
// With a request id, the hold's id is HoldIDOf(tenant, req.ID) and its
// state record is written only if absent, in one transaction (the
// claim): of any number of requests with one id, on any nodes, one stores
// the hold, and every one (the first too) appends the same hold entry,
// which the log stores once (an entry's identity is the hold's id). So a
// request asked again (its answer lost, or interrupted by a crash between
// the two writes) answers with the hold the first one placed, and its
// entry's index, having written nothing new (or only the entry the
// interrupted one did not append). If that hold's scope, case reference
// or reason differ from the request's, it fails with
// ErrHoldRequestReused, naming the field and never the subject or session
// id, and writes nothing: in particular no pseudonym key (docs/ACCESS.md,
// "Stand-ins"). So a hold on a subject or session is claimed pending,
// naming the id by its index term alone, before its pseudonym key is made;
// the request that claimed it, or any that asks the same again, then makes
// the key and completes the record, which puts the hold in force, before
// its entry is appended (completeHold).
func (s *Service) PlaceHoldRequest(ctx context.Context, tenant string, req HoldRequest) (*Hold, uint64, error) {
	scope := req.Scope
	if req.ID != "" && !validRequestID(req.ID) {
		return nil, 0, fmt.Errorf("%w: request_id must be %s", ErrInvalid, RequestIDSyntax)
	}
	if err := scope.validate(); err != nil {
		return nil, 0, err
	}
	if req.CaseRef == "" || req.Reason == "" {
		return nil, 0, fmt.Errorf("%w: a hold needs a case reference and a reason", ErrNoReason)
	}
	scope.Pseudonym, scope.Kind, scope.Sealed, scope.Term, scope.Erased = "", "", nil, "", false
	value, field, kind := s.holdID(scope)
	if kind != "" {
		ref, err := s.L.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)})
		if err != nil {
			return nil, 0, err
		}
		scope.Kind, scope.Term = kind, ref.String()
	}
	h := &Hold{ID: uuid.NewString(), RequestID: req.ID, Scope: scope, CaseRef: req.CaseRef, Reason: req.Reason, PlacedBy: req.By, PlacedAt: s.now()}
	if req.ID == "" {
		if kind != "" {
			if err := s.seal(ctx, tenant, h, value); err != nil {
				return nil, 0, err
			}
		}
		if err := s.putHold(ctx, tenant, h); err != nil {
			return nil, 0, err
		}
		idx, err := s.appendPlaced(ctx, tenant, h)
		return s.view(ctx, tenant, h), idx, err
	}
	h.ID = HoldIDOf(tenant, req.ID)
	if stored, err := s.hold(ctx, tenant, h.ID); err == nil {
		return s.placedAgain(ctx, tenant, req, stored)
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return nil, 0, err
	}
	if err := holdStep("looked up"); err != nil {
		return nil, 0, err
	}
	h.Pending = kind != ""
	stored, err := s.createHold(ctx, tenant, h)
	if err != nil {
		return nil, 0, err
	}
	if stored != nil { // another request with this id stored it first
		return s.placedAgain(ctx, tenant, req, stored)
	}
	if h.Pending {
		if err := holdStep("claimed"); err != nil {
			return nil, 0, err
		}
		if h, err = s.completeHold(ctx, tenant, h, value); err != nil {
			return nil, 0, err
		}
	}
	if err := holdStep("stored"); err != nil {
		return nil, 0, err
	}
	idx, err := s.appendPlaced(ctx, tenant, h)
	return s.view(ctx, tenant, h), idx, err
}

// seal makes (if need be) the pseudonym key of the subject or session id
// value that h's scope names by its index term, and records in the scope
// the id's pseudonym and the id sealed under that key.
func (s *Service) seal(ctx context.Context, tenant string, h *Hold, value string) error {
	ref, err := ledger.ParseTermRef(h.Scope.Term)
	if err != nil {
		return fmt.Errorf("hold %s: %w", h.ID, err)
	}
	k, err := s.L.PseudonymKey(ctx, tenant, ref, true)
	if err != nil {
		return err
	}
	sealWith(h, k, value)
	return nil
}

// sealWith records in h's scope the id value's pseudonym under k and the
// id sealed under k.
func sealWith(h *Hold, k *ledger.PseudonymKey, value string) {
	h.Scope.Pseudonym, h.Scope.Sealed = k.Pseudonym(value), k.Seal([]byte(value))
}

// completeHold puts a pending hold in force: it makes the pseudonym key of
// the id value its scope names, then stores the hold with the id's
// pseudonym and sealed form, unless it is no longer pending (a request
// asked again at once completed it first), in one transaction. It returns
// the hold as stored. Only a request that matches the claim (differs)
// completes it, so the key is made for the id the claim names and for no
// other.
func (s *Service) completeHold(ctx context.Context, tenant string, h *Hold, value string) (*Hold, error) {
	c := *h
	if err := s.seal(ctx, tenant, &c, value); err != nil {
		return nil, err
	}
	c.Pending = false
	b, err := holdState(&c)
	if err != nil {
		return nil, err
	}
	out := &c
	err = s.L.UpdateState(ctx, tenant, stateHold+h.ID, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("hold %s: %w", h.ID, ledger.ErrNotFound) // holds are never deleted
		}
		stored := &Hold{}
		if err := json.Unmarshal(old, stored); err != nil {
			return nil, fmt.Errorf("hold %s: %w", h.ID, err)
		}
		if !stored.Pending {
			out = stored
			return old, nil
		}
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// placedAgain answers a request whose id names hold h, stored already:
// with h and its entry's index, completing h if it is pending and
// appending its entry if the request that stored h was interrupted before
// it did; or ErrHoldRequestReused, having written nothing, if h is not
// what req asks for.
func (s *Service) placedAgain(ctx context.Context, tenant string, req HoldRequest, h *Hold) (*Hold, uint64, error) {
	field, err := s.differs(ctx, tenant, req, h)
	if err != nil {
		return nil, 0, err
	}
	if field != "" {
		return nil, 0, fmt.Errorf("%w: request_id %q placed hold %s at %s with a different %s; use a new request id", ErrHoldRequestReused, req.ID, h.ID, h.PlacedAt.Format(time.RFC3339), field)
	}
	if h.Pending {
		value, _, _ := s.holdID(req.Scope)
		if h, err = s.completeHold(ctx, tenant, h, value); err != nil {
			return nil, 0, err
		}
	}
	// A hold an earlier build stored (its id in the clear) is upgraded
	// first, as before its release, so that its entry, if this request
	// appends it, names it by its pseudonym (legacyhold.go). One in force
	// always is; a released one may stay as it is (upgraded): its entries
	// are in the log already, appended by its release.
	for tries := 0; legacyScope(h.Scope) && h.Active(); tries++ {
		if tries == maxReplans {
			return nil, 0, fmt.Errorf("hold %s: %w", h.ID, errHoldChanged)
		}
		if err := s.upgradeHold(ctx, tenant, h.ID); err != nil {
			return nil, 0, err
		}
		if h, err = s.hold(ctx, tenant, h.ID); err != nil {
			return nil, 0, err
		}
	}
	if legacyScope(h.Scope) {
		idx, err := s.legacyEntry(ctx, tenant, h)
		if err != nil {
			return nil, 0, err
		}
		return s.view(ctx, tenant, h), idx, nil
	}
	idx, err := s.appendPlaced(ctx, tenant, h)
	if err != nil {
		return nil, 0, err
	}
	return s.view(ctx, tenant, h), idx, nil
}

// differs names the first of "scope", "case_ref" and "reason" in which
// hold h, placed with req's id, differs from req ("" if none). It makes
// no pseudonym key. A subject or session is
// compared by its index term while h is pending, by the id in the clear
// in a hold an earlier build stored (legacyScope), and else by the id
// sealed in h's state while its pseudonym key exists; once it is gone
// (the subject or session was erased), nothing kept can be compared with
// the id, and req's id matches if nothing names it either (unnamed), as
// an erasure request's does.
func (s *Service) differs(ctx context.Context, tenant string, req HoldRequest, h *Hold) (string, error) {
	a, b := req.Scope, s.view(ctx, tenant, h).Scope
	if legacyScope(h.Scope) {
		// Stored by an earlier build, not upgraded yet: its id in the
		// clear, compared as it is.
		_, _, b.Kind = s.holdID(b)
	}
	same := a.Tenant == b.Tenant && strings.EqualFold(a.TraceID, b.TraceID) && a.From.Equal(b.From) && a.To.Equal(b.To)
	value, field, kind := s.holdID(a)
	switch {
	case !same || kind != b.Kind:
		same = false
	case kind != "" && h.Pending:
		ref, err := s.L.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)})
		if err != nil {
			return "", err
		}
		same = ref.String() == h.Scope.Term
	case kind != "" && b.Erased:
		var err error
		if same, err = s.unnamed(ctx, tenant, field, value); err != nil {
			return "", err
		}
	case kind != "":
		same = value == b.Subject+b.Session
	}
	switch {
	case !same:
		return "scope", nil
	case req.CaseRef != h.CaseRef:
		return "case_ref", nil
	case req.Reason != h.Reason:
		return "reason", nil
	}
	return "", nil
}

// unnamed reports whether a subject or session id has neither entries nor
// a pseudonym key: what an erased one has, or one never seen.
func (s *Service) unnamed(ctx context.Context, tenant string, field uint8, value string) (bool, error) {
	ref, err := s.L.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)})
	if err != nil {
		return false, err
	}
	if idxs, err := s.L.EntriesWith(ctx, tenant, ref); err != nil || len(idxs) > 0 {
		return false, err
	}
	_, err = s.L.PseudonymKey(ctx, tenant, ref, false)
	if errors.Is(err, ledger.ErrNotFound) {
		return true, nil
	}
	return false, err
}

// createHold stores a new hold's state record unless one with its id
// exists; it returns the one that exists (nil if h was stored).
func (s *Service) createHold(ctx context.Context, tenant string, h *Hold) (*Hold, error) {
	b, err := holdState(h)
	if err != nil {
		return nil, err
	}
	var stored []byte
	err = s.L.UpdateState(ctx, tenant, stateHold+h.ID, func(old []byte) ([]byte, error) {
		stored = old
		if old != nil {
			return old, nil
		}
		return b, nil
	})
	if err != nil || stored == nil {
		return nil, err
	}
	c := &Hold{}
	if err := json.Unmarshal(stored, c); err != nil {
		return nil, fmt.Errorf("hold %s: %w", h.ID, err)
	}
	return c, nil
}

// appendPlaced appends a hold's placed entry, the hold as it was placed
// (not released), unless the log holds it, and returns its index. Its
// identity is the hold's id and its payload is made from what the state
// keeps, so requests that append it at once append the same record, which
// the log stores once.
func (s *Service) appendPlaced(ctx context.Context, tenant string, h *Hold) (uint64, error) {
	id := recordID("hold", h.ID, "placed")
	if idx, found, err := s.L.IdentityIndex(ctx, tenant, format.KindHold, id); err != nil || found {
		return idx, err
	}
	c := h.forLog()
	c.ReleasedBy, c.ReleasedAt, c.ReleaseReason = "", time.Time{}, ""
	return s.appendRecord(ctx, tenant, format.KindHold, format.HoldPlaced, id, c)
}

// holdID returns the subject or session id a scope names, its index
// field, and "subject" or "session"; kind "" if it names neither.
func (s *Service) holdID(sc HoldScope) (value string, field uint8, kind string) {
	switch {
	case sc.Subject != "":
		return sc.Subject, ledger.SubjectField, "subject"
	case sc.Session != "":
		return sc.Session, s.SessionField, "session"
	}
	return "", 0, ""
}

// pseudonymKey returns the pseudonym key of a tenant's subject or session
// id, made first if create and there is none.
func (s *Service) pseudonymKey(ctx context.Context, tenant string, field uint8, value string, create bool) (*ledger.PseudonymKey, error) {
	ref, err := s.L.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)})
	if err != nil {
		return nil, err
	}
	return s.L.PseudonymKey(ctx, tenant, ref, create)
}

// forLog is the hold as its log entries record it.
func (h *Hold) forLog() *Hold {
	c := *h
	c.Scope = h.Scope.forLog()
	c.Pending = false // never appended while pending; state only
	return &c
}

// ReleaseHold releases a hold, with a reason.
func (s *Service) ReleaseHold(ctx context.Context, tenant, id, reason, by string) (*Hold, uint64, error) {
	if reason == "" {
		return nil, 0, fmt.Errorf("%w: releasing a hold", ErrNoReason)
	}
	s.work.Lock() // not while an erasure or sweep is deciding what is held
	defer s.work.Unlock()
	// A hold an earlier build stored names its id in the clear: upgraded
	// first, its entries name it by its pseudonym (legacyhold.go).
	if err := s.upgradeHold(ctx, tenant, id); err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return nil, 0, err
	}
	h, err := s.hold(ctx, tenant, id)
	if err != nil {
		return nil, 0, err
	}
	if h.Pending { // not placed yet: nothing to release
		return nil, 0, fmt.Errorf("hold %s: %w", id, ledger.ErrNotFound)
	}
	if !h.Active() {
		return s.view(ctx, tenant, h), 0, ErrHoldReleased
	}
	// A hold whose placing was interrupted before its entry was appended
	// (a crash) is placed first, so that the log never records a release
	// before the placing it releases, nor a placing after its release
	// when the request that placed it is asked again.
	if _, err := s.appendPlaced(ctx, tenant, h); err != nil {
		return nil, 0, err
	}
	h.ReleasedBy, h.ReleasedAt, h.ReleaseReason = by, s.now(), reason
	// The entry first, which acknowledges the release, then the record:
	// a crash between the two leaves a release that the next read of the
	// record finishes (settle, release.go).
	idx, err := s.appendRecord(ctx, tenant, format.KindHold, format.HoldReleased, recordID("hold", h.ID, "released"), h.forLog())
	if err != nil {
		return nil, 0, err
	}
	if h, _, err = s.finishRelease(ctx, tenant, h.ID, h); err != nil {
		return nil, 0, err
	}
	return s.view(ctx, tenant, h), idx, nil
}

// hold reads a hold's state record, as the log decides it (settle).
func (s *Service) hold(ctx context.Context, tenant, id string) (*Hold, error) {
	b, err := s.L.GetState(ctx, tenant, stateHold+id)
	if err != nil {
		return nil, err
	}
	h, _, err := s.settle(ctx, tenant, b)
	return h, err
}

func (s *Service) putHold(ctx context.Context, tenant string, h *Hold) error {
	b, err := holdState(h)
	if err != nil {
		return err
	}
	return s.L.PutState(ctx, tenant, stateHold+h.ID, b)
}

// holdState is a hold's state record.
func holdState(h *Hold) ([]byte, error) {
	c := *h
	c.Scope = h.Scope.forState()
	return json.Marshal(&c)
}

// view returns the hold as callers see it: the subject or session id
// opened from its sealed form while its pseudonym key exists, Erased once
// it is gone; never the index term or the sealed form.
func (s *Service) view(ctx context.Context, tenant string, h *Hold) *Hold {
	c := *h
	sc := &c.Scope
	if sc.Kind != "" && sc.Subject == "" && sc.Session == "" {
		var value string
		if ref, err := ledger.ParseTermRef(sc.Term); sc.Term != "" && err == nil {
			if k, err := s.L.PseudonymKey(ctx, tenant, ref, false); err == nil {
				if b, err := k.Open(sc.Sealed); err == nil {
					value = string(b)
				}
			}
		}
		if value == "" {
			sc.Erased = true
		} else if sc.Kind == "subject" {
			sc.Subject = value
		} else {
			sc.Session = value
		}
	}
	sc.Sealed, sc.Term = nil, ""
	return &c
}

// Holds lists a tenant's holds, released ones too if all.
func (s *Service) Holds(ctx context.Context, tenant string, all bool) ([]*Hold, error) {
	hs, err := s.stored(ctx, tenant, all)
	if err != nil {
		return nil, err
	}
	out := make([]*Hold, len(hs))
	for i, h := range hs {
		out[i] = s.view(ctx, tenant, h)
	}
	return out, nil
}

// stored lists a tenant's holds as stored, released ones too if all, in
// the order they were placed; not pending records, which are no holds
// yet (Hold.Pending).
func (s *Service) stored(ctx context.Context, tenant string, all bool) ([]*Hold, error) {
	hs, err := s.records(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := hs[:0]
	for _, h := range hs {
		if !h.Pending && (all || h.Active()) {
			out = append(out, h)
		}
	}
	return out, nil
}

// records lists a tenant's hold records, pending ones too, as the log
// decides them (settle), in the order they were placed.
func (s *Service) records(ctx context.Context, tenant string) ([]*Hold, error) {
	_, values, err := s.L.ListState(ctx, tenant, stateHold)
	if err != nil {
		return nil, err
	}
	out := make([]*Hold, 0, len(values))
	for _, v := range values {
		h, _, err := s.settle(ctx, tenant, v)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PlacedAt.Before(out[j].PlacedAt) })
	return out, nil
}

// held returns, for the candidates, the active hold covering each one that
// is held, and the size of the tenant's log read before the holds were: a
// hold entry at that index or later is a hold this answer may not know
// (ledger.AppendOptions.NoKindSince).
func (s *Service) held(ctx context.Context, tenant string, cands []uint64) (map[uint64]*Hold, uint64, error) {
	size, err := s.L.Size(ctx, tenant)
	if err != nil {
		return nil, 0, err
	}
	holds, err := s.stored(ctx, tenant, false)
	if err != nil || len(holds) == 0 {
		return nil, size, err
	}
	out := map[uint64]*Hold{}
	for _, h := range holds { // in force by the log (settle)
		var covered func(uint64) bool
		sc := h.Scope
		switch {
		case sc.Tenant:
			covered = func(uint64) bool { return true }
		case sc.Kind != "" || sc.Subject != "" || sc.Session != "" || sc.TraceID != "":
			var idxs []uint64
			if sc.Kind != "" {
				ref, perr := ledger.ParseTermRef(sc.Term)
				if perr != nil {
					return nil, 0, fmt.Errorf("hold %s: %w", h.ID, perr)
				}
				idxs, _, err = s.L.ClosureOf(ctx, tenant, ref) // whole traces (closure.go)
			} else {
				// A trace, or a subject or session stored by an earlier build.
				idxs, err = s.holdCovers(ctx, tenant, sc, size)
			}
			if err != nil {
				return nil, 0, err
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
					return nil, 0, err
				}
			}
			if !sc.To.IsZero() {
				if hi, err = s.L.IndexAt(ctx, tenant, sc.To); err != nil {
					return nil, 0, err
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
	return out, size, nil
}
