package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/veritrace/veritrace/ledger"
)

// Holds stored by builds before hold scopes named subjects and sessions by
// pseudonyms keep the id in the clear in their state record (Subject or
// Session), with no kind, index term or pseudonym. Such a hold is upgraded
// to the form this build stores (upgradeHold): at start (UpgradeHolds),
// and before its release is recorded, so that its entries name it by kind
// and pseudonym (never an empty scope, never the id) and it lists as any
// hold does.

// errHoldChanged: the hold's state record changed since it was read.
var errHoldChanged = errors.New("the hold changed meanwhile")

// legacyScope reports whether sc is a scope an earlier build stored: a
// subject or session id in the clear, no kind.
func legacyScope(sc HoldScope) bool {
	return sc.Kind == "" && (sc.Subject != "" || sc.Session != "")
}

// UpgradeHolds upgrades every hold of every tenant that an earlier build
// stored (legacyScope). serve calls it at start; it is idempotent, and a
// hold that another process changes meanwhile is left for the next call
// or its release, which upgrades it first.
func (s *Service) UpgradeHolds(ctx context.Context) error {
	for _, tenant := range s.L.Tenants() {
		hs, err := s.stored(ctx, tenant, true)
		if err != nil {
			return err
		}
		for _, h := range hs {
			if !legacyScope(h.Scope) {
				continue
			}
			if err := s.upgradeHold(ctx, tenant, h.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// upgradeHold rewrites the state record of hold id, if an earlier build
// stored it (legacyScope), in this build's form: the id's kind and index
// term, its pseudonym key (made if there is none, as placing the hold
// today makes it), its pseudonym and the id sealed under that key; the id
// in the clear is dropped. The record is written only if it is still what
// was read (errHoldChanged otherwise, which it reports as nil).
func (s *Service) upgradeHold(ctx context.Context, tenant, id string) error {
	name := stateHold + id
	old, err := s.L.GetState(ctx, tenant, name)
	if err != nil {
		return err
	}
	h := &Hold{}
	if err := json.Unmarshal(old, h); err != nil {
		return fmt.Errorf("hold %s: %w", id, err)
	}
	if !legacyScope(h.Scope) {
		return nil
	}
	value, field, kind := s.holdID(h.Scope)
	ref, err := s.L.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)})
	if err != nil {
		return err
	}
	h.Scope.Kind, h.Scope.Term = kind, ref.String()
	if err := s.seal(ctx, tenant, h, value); err != nil {
		return err
	}
	b, err := holdState(h)
	if err != nil {
		return err
	}
	err = s.L.PutStateIf(ctx, tenant, name, b, name, func(cur []byte) error {
		if !bytes.Equal(cur, old) {
			return errHoldChanged
		}
		return nil
	})
	if errors.Is(err, errHoldChanged) {
		return nil
	}
	return err
}
