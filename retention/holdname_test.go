package retention

import (
	"context"
	"testing"

	"github.com/veritrace/veritrace/ledger"
)

// Review attack33: the access record of a refused ReleaseHold names the hold's
// subject by its stand-in (HoldName with allowed false). The stand-in is a
// fixed function of the subject id, and a refused caller that names a
// guessed id itself (a refused PlaceHold for subject X) gets X's stand-in in
// its own record. A caller with the access log and without the holds
// right (an admin) can so test which subject a hold covers, and whether a
// hold id exists: its refused records must not name the hold's subject.
func TestRefusedReleaseRecordNamesNoHoldSubject(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	h, _, err := e.s.PlaceHold(ctx, "default", HoldScope{Subject: "alice"}, "CASE-1", "litigation", "co-key")
	if err != nil {
		t.Fatal(err)
	}
	kind, name, err := e.s.HoldName(ctx, "default", h.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	// What the caller's own refused call naming "alice" records.
	value, field, _ := e.s.holdID(HoldScope{Subject: "alice"})
	ref, err := e.l.TermRefOf(ctx, "default", ledger.Term{Field: field, Value: []byte(value)})
	if err != nil {
		t.Fatal(err)
	}
	guess, err := e.l.StandInPseudonym(ctx, "default", ref)
	if err != nil {
		t.Fatal(err)
	}
	unknownKind, _, err := e.s.HoldName(ctx, "default", "00000000-0000-0000-0000-000000000000", false)
	if err != nil {
		t.Fatal(err)
	}
	if kind != "" || name != "" {
		t.Errorf("refused call's record of ReleaseHold(%s) names %s=pseudonym:%s; the caller's refused call naming subject alice records pseudonym:%s (match: %v); an unknown hold id names kind %q: the record tells the refused caller the hold exists and which subject it covers",
			h.ID, kind, name, guess, name == guess, unknownKind)
	}
}
