package retention

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/veritrace/veritrace/ledger/format"
)

// A hold stored by a build before holds named their subject or session by
// a pseudonym keeps the id in the clear in its state record, with no
// pseudonym and no kind. Such a hold is upgraded once (UpgradeHolds, and
// before its release is recorded): it then reads as any hold does, the
// subject by its pseudonym, and its entries never record an empty scope.
func TestLegacyHoldReadsClearly(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "s1", 1, 2, false, "a")
	for id, scope := range map[string]string{"legacy-subject": `{"subject":"alice"}`, "legacy-session": `{"session":"s1"}`} {
		legacy := `{"id":"` + id + `","scope":` + scope + `,"case_ref":"CASE-0","reason":"litigation","placed_by":"co-key","placed_at":"2026-01-01T00:00:00Z"}`
		if err := e.l.PutState(ctx, "default", stateHold+id, []byte(legacy)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.s.UpgradeHolds(ctx); err != nil {
		t.Fatal(err)
	}
	hs, err := e.s.Holds(ctx, "default", false)
	if err != nil || len(hs) != 2 {
		t.Fatalf("Holds() = %d holds, %v; want the 2 legacy holds", len(hs), err)
	}
	for _, h := range hs {
		sc := h.Scope
		id := sc.Subject + sc.Session
		if sc.Pseudonym == "" || sc.Kind == "" || id == "" || sc.Erased {
			t.Errorf("hold %s lists as %+v; want its id, its kind and its pseudonym", h.ID, sc)
		}
	}
	stored, err := e.s.stored(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range stored {
		if h.Scope.Subject != "" || h.Scope.Session != "" {
			t.Errorf("hold %s's state still names its id in the clear: %+v", h.ID, h.Scope)
		}
	}
	// Released, its entries (placed, then released) name it by kind and
	// pseudonym, never an empty scope, never the id: one upgraded at
	// start, and one stored since by an earlier build (a node not yet
	// upgraded), which its release upgrades.
	late := `{"id":"legacy-late","scope":{"subject":"alice"},"case_ref":"CASE-1","reason":"litigation","placed_by":"co-key","placed_at":"2026-01-02T00:00:00Z"}`
	if err := e.l.PutState(ctx, "default", stateHold+"legacy-late", []byte(late)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"legacy-subject", "legacy-late"} {
		releasedEntries(t, e, id)
	}
}

// releasedEntries releases hold id and checks its placed and released
// entries: the scope by kind and pseudonym, no subject id.
func releasedEntries(t *testing.T, e *env, id string) {
	t.Helper()
	ctx := context.Background()
	h, idx, err := e.s.ReleaseHold(ctx, "default", id, "case closed", "co-key")
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{idx - 1, idx} {
		en, err := e.l.GetEntry(ctx, "default", i)
		if err != nil || en.Header.Kind != format.KindHold {
			t.Fatalf("entry %d = %v; want a hold entry", i, err)
		}
		var rec struct {
			Scope map[string]any `json:"scope"`
		}
		if err := json.Unmarshal(en.Payload, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Scope["kind"] != "subject" || rec.Scope["pseudonym"] != h.Scope.Pseudonym || strings.Contains(string(en.Payload), "alice") {
			t.Errorf("hold entry %d records %s; want the scope by kind and pseudonym %s", i, en.Payload, h.Scope.Pseudonym)
		}
	}
}
