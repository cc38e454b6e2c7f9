package retention

import (
	"context"
	"testing"

	"github.com/veritrace/veritrace/ledger/format"
)

// A request asked again for a hold an earlier build placed without its
// placed entry (its placing interrupted) and then released, left as that
// build stored it (its subject has entries and no pseudonym key, so the
// upgrade leaves it): the answer's index is the hold's entry in the log,
// its released entry, never index 0, which is some other entry.
func TestReleasedLegacyRequestAskedAgainAnswersItsEntry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	id := HoldIDOf("default", "h-1")
	legacy := `{"id":"` + id + `","request_id":"h-1","scope":{"subject":"alice"},"case_ref":"CASE-0","reason":"litigation","placed_by":"co-key","placed_at":"2026-01-01T00:00:00Z","released_by":"co-key","released_at":"2026-01-02T00:00:00Z","release_reason":"closed"}`
	if err := e.l.PutState(ctx, "default", stateHold+id, []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	h, err := e.s.hold(ctx, "default", id)
	if err != nil {
		t.Fatal(err)
	}
	want, err := e.s.appendRecord(ctx, "default", format.KindHold, format.HoldReleased, recordID("hold", id, "released"), h.forLog())
	if err != nil {
		t.Fatal(err)
	}
	got, idx, err := e.s.PlaceHoldRequest(ctx, "default", HoldRequest{ID: "h-1", Scope: HoldScope{Subject: "alice"}, CaseRef: "CASE-0", Reason: "litigation", By: "co-key"})
	if err != nil || idx != want || got.Active() {
		t.Fatalf("PlaceHoldRequest(h-1) asked again = index %d, active=%v, %v; want index %d (its released entry), released", idx, got != nil && got.Active(), err, want)
	}
}
