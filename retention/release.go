package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// A release is recorded in two writes: its released entry is appended to
// the log first (which acknowledges it), then the hold's state record is
// written released (ReleaseHold). A crash between the two leaves a hold
// released in the log and in force by its record. The log decides: every
// read of a hold's record (hold, records, upgradeHold, scrubLegacy) goes
// through settle, which finishes such a release, durably and on whichever
// node meets it first, before anything decides by the record. So no
// decision (what an erasure keeps, which keys it destroys, what is
// scrubbed or upgraded, what a request asked again answers, what Holds
// lists) reads a hold in force that the log has released.

// testHookRelease, set by tests, runs at each step of finishing a release
// that settle found half done: "read" after the released entry was read,
// before the state record is written; "written" after. An error stops
// settle there, as a crash would.
var testHookRelease func(step string) error

func releaseStep(step string) error {
	if testHookRelease != nil {
		return testHookRelease(step)
	}
	return nil
}

// settle returns the hold whose state record is raw, as the log decides
// it, and its record as stored. A hold in force by its record whose
// released entry is in the log is released: its record is finished from
// that entry first (finishRelease). Should the entry be committed but not
// yet readable (its append has not returned), the hold is answered
// released, as of now, and its record is left to its releaser.
func (s *Service) settle(ctx context.Context, tenant string, raw []byte) (*Hold, []byte, error) {
	h := &Hold{}
	if err := json.Unmarshal(raw, h); err != nil {
		return nil, nil, fmt.Errorf("hold record: %w", err)
	}
	if h.Pending || !h.Active() { // a pending record has no entry yet
		return h, raw, nil
	}
	idx, found, err := s.L.IdentityIndex(ctx, tenant, format.KindHold, recordID("hold", h.ID, "released"))
	if err != nil || !found {
		return h, raw, err
	}
	en, err := s.L.GetEntry(ctx, tenant, idx)
	if errors.Is(err, ledger.ErrNotFound) {
		h.ReleasedAt = s.now()
		return h, raw, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("hold %s: %w", h.ID, err)
	}
	rel := &Hold{}
	if en.Erased {
		return nil, nil, fmt.Errorf("hold %s: its released entry %d is erased", h.ID, idx)
	}
	if err := json.Unmarshal(en.Payload, rel); err != nil || rel.ReleasedAt.IsZero() {
		return nil, nil, fmt.Errorf("hold %s: released entry %d: not a release (%v)", h.ID, idx, err)
	}
	if err := releaseStep("read"); err != nil {
		return nil, nil, err
	}
	h, raw, err = s.finishRelease(ctx, tenant, h.ID, rel)
	if err != nil {
		return nil, nil, err
	}
	return h, raw, releaseStep("written")
}

// finishRelease writes hold id's state record released by rel (its
// ReleasedBy, ReleasedAt and ReleaseReason), in one conditional write:
// only if the record is in force, else it is left as it is (released
// already, by its releaser or by another node that finished it). The rest
// of the record is kept as stored (its scope as any writer left it, the
// id in the clear in a hold an earlier build stored). It returns the hold
// and its record as stored. Idempotent.
func (s *Service) finishRelease(ctx context.Context, tenant, id string, rel *Hold) (*Hold, []byte, error) {
	var out *Hold
	var stored []byte
	err := s.L.UpdateState(ctx, tenant, stateHold+id, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("hold %s: %w", id, ledger.ErrNotFound) // holds are never deleted
		}
		cur := &Hold{}
		if err := json.Unmarshal(old, cur); err != nil {
			return nil, fmt.Errorf("hold %s: %w", id, err)
		}
		out, stored = cur, old
		if cur.Pending || !cur.Active() {
			return old, nil
		}
		cur.ReleasedBy, cur.ReleasedAt, cur.ReleaseReason = rel.ReleasedBy, rel.ReleasedAt, rel.ReleaseReason
		b, err := json.Marshal(cur) // as stored: a legacy scope keeps its id
		if err != nil {
			return nil, err
		}
		stored = b
		return b, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return out, stored, nil
}

// HoldName returns how an access record of a call about hold id (its
// release) names the subject or session the hold covers: "subject" or
// "session", and a pseudonym, by the rules the access log names ids by
// (docs/ACCESS.md, "Pseudonyms"); kind "" if the hold is unknown or
// pending, or covers no subject or session. Only the record of an allowed
// call names it: an id with a pseudonym key by its pseudonym, one without
// (a hold an earlier build stored, its id in the clear) by its stand-in
// (ledger.StandInPseudonym), an erased one (its key gone, the id no longer
// known) by the pseudonym the hold keeps, as its entries name it. The
// record of a refused call names no one, and HoldName reads nothing for
// it: the hold's subject is stored data the caller has no right to, and
// a stand-in is a fixed function of the id, which the caller could match
// against the stand-ins its own refused calls naming guessed ids record
// (review attack33). HoldName makes no pseudonym key and writes nothing.
func (s *Service) HoldName(ctx context.Context, tenant, id string, allowed bool) (kind, pseudonym string, err error) {
	if !allowed {
		return "", "", nil
	}
	b, err := s.L.GetState(ctx, tenant, stateHold+id)
	if errors.Is(err, ledger.ErrNotFound) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	h := &Hold{}
	if err := json.Unmarshal(b, h); err != nil {
		return "", "", fmt.Errorf("hold %s: %w", id, err)
	}
	if h.Pending {
		return "", "", nil
	}
	v := s.view(ctx, tenant, h) // the id, opened while its key exists
	value, field, kind := s.holdID(v.Scope)
	if kind == "" {
		if v.Scope.Erased && h.Scope.Pseudonym != "" {
			return h.Scope.Kind, h.Scope.Pseudonym, nil
		}
		return "", "", nil // the tenant, a trace, a time range; or erased
	}
	ref, err := s.L.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)})
	if err != nil {
		return "", "", err
	}
	k, err := s.L.PseudonymKey(ctx, tenant, ref, false)
	if err == nil {
		return kind, k.Pseudonym(value), nil
	}
	if !errors.Is(err, ledger.ErrNotFound) {
		return "", "", err
	}
	standIn, err := s.L.StandInPseudonym(ctx, tenant, ref)
	if err != nil {
		return "", "", err
	}
	return kind, standIn, nil
}
