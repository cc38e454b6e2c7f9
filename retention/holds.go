package retention

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/veritrace/veritrace/ledger/format"
)

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
			idxs, err := s.holdCovers(ctx, tenant, sc, size) // whole traces (closure.go)
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
