package retention

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/veritrace/veritrace/ledger"
)

// attack28: a released hold an earlier build stored names its subject in
// the clear. The subject is then erased by this build. The erasure must
// leave no trace of the id in the hold's record, and the upgrade at the
// next start must not make a pseudonym key again for a subject whose key
// was crypto-shredded (its hold would then list the erased id again).
func TestAttack28LegacyHoldOfErasedSubject(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	legacy := `{"id":"legacy-released","scope":{"subject":"alice"},"case_ref":"CASE-0","reason":"litigation","placed_by":"co-key","placed_at":"2026-01-01T00:00:00Z","released_by":"co-key","released_at":"2026-01-02T00:00:00Z","release_reason":"closed"}`
	if err := e.l.PutState(ctx, "default", stateHold+"legacy-released", []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	ref, err := e.l.TermRefOf(ctx, "default", ledger.Term{Field: ledger.SubjectField, Value: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	// Her pseudonym key exists, as once any hold or access record has
	// named her.
	if _, err := e.l.PseudonymKey(ctx, "default", ref, true); err != nil {
		t.Fatal(err)
	}
	er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "r1", Subject: "alice", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})
	if err != nil || er.State != "done" {
		t.Fatalf("Erase = %+v, %v", er, err)
	}
	if _, err := e.l.PseudonymKey(ctx, "default", ref, false); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("after the erasure alice's pseudonym key: %v; want ErrNotFound", err)
	}
	b, err := e.l.GetState(ctx, "default", stateHold+"legacy-released")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "alice") {
		t.Errorf("after alice's erasure the legacy hold's state record still names her in the clear: %s", b)
	}
	// The next start upgrades holds of earlier builds.
	if err := e.s.UpgradeHolds(ctx); err != nil {
		t.Fatal(err)
	}
	if k, err := e.l.PseudonymKey(ctx, "default", ref, false); err == nil {
		t.Errorf("UpgradeHolds made a new pseudonym key (pseudonym %s) for alice, whose key her erasure destroyed", k.Pseudonym("alice"))
	}
	hs, err := e.s.Holds(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.Scope.Subject == "alice" || !h.Scope.Erased {
			t.Errorf("after alice's erasure and the upgrade, hold %s lists as %+v; want an erased subject, not her id", h.ID, h.Scope)
		}
	}
}

// attack28: builds between request ids (a3f88f6) and pseudonymous holds
// stored holds placed with a request id and their subject in the clear.
// The same request asked again (its answer lost) must return that hold, as
// for any hold placed with a request id; it must not be refused as a reuse
// of the id with another scope because the stored hold is not upgraded yet
// (the upgrade runs while the server serves, and a node of the earlier
// build may store such a hold at any time).
func TestAttack28LegacyHoldRequestAskedAgain(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	id := HoldIDOf("default", "h-1")
	legacy := `{"id":"` + id + `","request_id":"h-1","scope":{"subject":"alice"},"case_ref":"CASE-0","reason":"litigation","placed_by":"co-key","placed_at":"2026-01-01T00:00:00Z"}`
	if err := e.l.PutState(ctx, "default", stateHold+id, []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	h, _, err := e.s.PlaceHoldRequest(ctx, "default", HoldRequest{ID: "h-1", Scope: HoldScope{Subject: "alice"}, CaseRef: "CASE-0", Reason: "litigation", By: "co-key"})
	if err != nil {
		t.Fatalf("the same hold request asked again: %v; want hold %s", err, id)
	}
	if h.ID != id {
		t.Errorf("the same hold request asked again placed hold %s, want %s", h.ID, id)
	}
}
