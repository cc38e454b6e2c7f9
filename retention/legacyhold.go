package retention

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
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
// stored it (legacyScope), in this build's form (upgraded); the id in the
// clear is dropped. The record is written only if it is still what was
// read (errHoldChanged otherwise, which it reports as nil).
func (s *Service) upgradeHold(ctx context.Context, tenant, id string) error {
	name := stateHold + id
	old, err := s.L.GetState(ctx, tenant, name)
	if err != nil {
		return err
	}
	h, old, err := s.settle(ctx, tenant, old) // in force or released, by the log
	if err != nil || !legacyScope(h.Scope) {
		return err
	}
	ok, err := s.upgraded(ctx, tenant, h)
	if err != nil || !ok {
		return err
	}
	return s.replaceHold(ctx, tenant, h, old)
}

// upgraded turns h, which an earlier build stored (legacyScope), into this
// build's form, and reports whether it did:
//
//   - a hold in force: the id's kind and index term, its pseudonym key
//     (made if there is none, as placing the hold today makes it: the hold
//     keeps the id's entries, and an erasure keeps the key of a held id),
//     its pseudonym and the id sealed under that key;
//   - a released hold whose id has a pseudonym key: the same, with that key;
//   - a released hold whose id has neither a key nor entries (erased, or
//     never seen): an erased hold, its kind and the id's stand-in
//     (ledger.StandInPseudonym), with no index term and nothing sealed;
//     no key is made for an id whose key an erasure destroyed.
//
// A released hold whose id has entries but no key is left as it is (false):
// it is not erased, and making its key here could leave one for a subject
// an erasure interrupted by a crash is about to shred (the plan lists the
// keys that existed when it was made). Its id in the clear goes once the
// id's key is made (the next upgrade) or its data erased (scrubHolds).
func (s *Service) upgraded(ctx context.Context, tenant string, h *Hold) (bool, error) {
	value, field, kind := s.holdID(h.Scope)
	ref, err := s.L.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)})
	if err != nil {
		return false, err
	}
	k, err := s.L.PseudonymKey(ctx, tenant, ref, h.Active())
	if errors.Is(err, ledger.ErrNotFound) { // released
		if idxs, err := s.L.EntriesWith(ctx, tenant, ref); err != nil || len(idxs) > 0 {
			return false, err
		}
		return true, s.erasedScope(ctx, tenant, h, ref, kind)
	}
	if err != nil {
		return false, err
	}
	h.Scope.Kind, h.Scope.Term = kind, ref.String()
	sealWith(h, k, value)
	return true, nil
}

// erasedScope makes h's scope that of a hold on an erased subject or
// session: its kind and stand-in pseudonym (ref names the id), nothing else.
func (s *Service) erasedScope(ctx context.Context, tenant string, h *Hold, ref ledger.TermRef, kind string) error {
	standIn, err := s.L.StandInPseudonym(ctx, tenant, ref)
	if err != nil {
		return err
	}
	h.Scope = HoldScope{Kind: kind, Pseudonym: standIn}
	return nil
}

// replaceHold writes h's state record if it is still old; if not, it
// changed meanwhile (errHoldChanged), and replaceHold reports nil: its
// writer upgraded, released or scrubbed it.
func (s *Service) replaceHold(ctx context.Context, tenant string, h *Hold, old []byte) error {
	b, err := holdState(h)
	if err != nil {
		return err
	}
	name := stateHold + h.ID
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

// scrubLegacy makes every released hold an earlier build stored (its id in
// the clear) whose id has neither entries nor a pseudonym key left an
// erased hold (upgraded): an erasure or sweep calls it once its keys are
// destroyed and its entries have lost their index terms, so that no state
// record names in the clear an id whose data is gone. A hold in force is
// left as it is: it keeps its entries (held), by its id. Idempotent.
func (s *Service) scrubLegacy(ctx context.Context, tenant string) error {
	_, values, err := s.L.ListState(ctx, tenant, stateHold)
	if err != nil {
		return err
	}
	for _, v := range values {
		h, old, err := s.settle(ctx, tenant, v) // released by the log too
		if err != nil {
			return err
		}
		if h.Active() || !legacyScope(h.Scope) {
			continue
		}
		value, field, kind := s.holdID(h.Scope)
		ref, err := s.L.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)})
		if err != nil {
			return err
		}
		if gone, err := s.unnamed(ctx, tenant, field, value); err != nil || !gone {
			if err != nil {
				return err
			}
			continue
		}
		if err := s.erasedScope(ctx, tenant, h, ref, kind); err != nil {
			return err
		}
		if err := s.replaceHold(ctx, tenant, h, old); err != nil {
			return err
		}
	}
	return nil
}

// legacyEntry returns the index of the entry that answers a request asked
// again for hold h, released and left as an earlier build stored it
// (upgraded): its placed entry, or, if that build released it without one
// (its placing interrupted before the entry was appended), its released
// entry, the hold's one entry in the log. Neither is an error: a released
// hold has its released entry (settle).
func (s *Service) legacyEntry(ctx context.Context, tenant string, h *Hold) (uint64, error) {
	for _, step := range []string{"placed", "released"} {
		idx, found, err := s.L.IdentityIndex(ctx, tenant, format.KindHold, recordID("hold", h.ID, step))
		if err != nil || found {
			return idx, err
		}
	}
	return 0, fmt.Errorf("hold %s: released, yet no entry of it in the log", h.ID)
}
