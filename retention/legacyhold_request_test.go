package retention

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// Builds between request ids (a3f88f6) and pseudonymous holds
// stored holds placed with a request id and their subject in the clear.
// The same request asked again (its answer lost) must return that hold, as
// for any hold placed with a request id; it must not be refused as a reuse
// of the id with another scope because the stored hold is not upgraded yet
// (the upgrade runs while the server serves, and a node of the earlier
// build may store such a hold at any time).
func TestLegacyHoldRequestAskedAgain(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	id := HoldIDOf("default", "h-1")
	legacy := `{"id":"` + id + `","request_id":"h-1","scope":{"subject":"alice"},"case_ref":"CASE-0","reason":"litigation","placed_by":"co-key","placed_at":"2026-01-01T00:00:00Z"}`
	if err := e.l.PutState(ctx, "default", stateHold+id, []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	h, idx, err := e.s.PlaceHoldRequest(ctx, "default", HoldRequest{ID: "h-1", Scope: HoldScope{Subject: "alice"}, CaseRef: "CASE-0", Reason: "litigation", By: "co-key"})
	if err != nil {
		t.Fatalf("the same hold request asked again: %v; want hold %s", err, id)
	}
	if h.ID != id || h.Scope.Subject != "alice" || h.Scope.Kind != "subject" || h.Scope.Pseudonym == "" {
		t.Errorf("the same hold request asked again answered hold %s %+v, want %s on alice, by kind and pseudonym", h.ID, h.Scope, id)
	}
	// Upgraded first: its entry names alice by her pseudonym.
	en, err := e.l.GetEntry(ctx, "default", idx)
	if err != nil {
		t.Fatal(err)
	}
	if en.Header.Kind != format.KindHold || strings.Contains(string(en.Payload), "alice") || !strings.Contains(string(en.Payload), h.Scope.Pseudonym) {
		t.Errorf("the hold's entry %d = %s; want it by pseudonym %s, not the id", idx, en.Payload, h.Scope.Pseudonym)
	}
}

// The request id of a hold an earlier build stored, asked again for
// another subject, is refused as a reuse, writing nothing: no pseudonym
// key for either subject, and the stored hold as it was.
func TestLegacyHoldRequestReusedWritesNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	e.spans(t, "bob", "", 2, 2, false, "b")
	id := HoldIDOf("default", "h-1")
	legacy := `{"id":"` + id + `","request_id":"h-1","scope":{"subject":"alice"},"case_ref":"CASE-0","reason":"litigation","placed_by":"co-key","placed_at":"2026-01-01T00:00:00Z"}`
	if err := e.l.PutState(ctx, "default", stateHold+id, []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	_, _, err := e.s.PlaceHoldRequest(ctx, "default", HoldRequest{ID: "h-1", Scope: HoldScope{Subject: "bob"}, CaseRef: "CASE-0", Reason: "litigation", By: "co-key"})
	if !errors.Is(err, ErrHoldRequestReused) {
		t.Fatalf("hold request h-1 asked again for another subject: %v, want ErrHoldRequestReused", err)
	}
	for _, s := range []string{"alice", "bob"} {
		if _, err := e.l.PseudonymKey(ctx, "default", mustRef(t, e, s), false); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("the refused request made %s's pseudonym key (%v)", s, err)
		}
	}
	if b, err := e.l.GetState(ctx, "default", stateHold+id); err != nil || string(b) != legacy {
		t.Errorf("the refused request changed the stored hold to %s (%v)", b, err)
	}
}
