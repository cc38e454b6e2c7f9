package retention

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/veritrace/veritrace/ledger"
)

// A released hold an earlier build stored names its subject in the clear.
// The subject is then erased by this build, whether or not she had a
// pseudonym key. The erasure leaves no trace of the id in the hold's
// record, and the upgrade at the next start makes no pseudonym key again
// for a subject whose key was crypto-shredded (her hold would then list
// the erased id again): the hold lists as one on an erased subject.
func TestLegacyHoldOfErasedSubjectNamesNoID(t *testing.T) {
	for _, keyed := range []bool{true, false} {
		t.Run(map[bool]string{true: "with a pseudonym key", false: "never keyed"}[keyed], func(t *testing.T) {
			legacyHoldOfErasedSubject(t, keyed)
		})
	}
}

func legacyHoldOfErasedSubject(t *testing.T, keyed bool) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	putLegacyReleased(t, e)
	ref, err := e.l.TermRefOf(ctx, "default", ledger.Term{Field: ledger.SubjectField, Value: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	// Her pseudonym key exists once any hold or access record has named
	// her; a subject never named since the earlier build has none.
	if keyed {
		if _, err := e.l.PseudonymKey(ctx, "default", ref, true); err != nil {
			t.Fatal(err)
		}
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

// An erasure of a subject named in the clear by a released hold of an
// earlier build is killed between its steps (after its tombstone, after
// Shred); the next start upgrades the holds, then finishes the erasure
// (Resume). No pseudonym key of hers is left, and the hold names her by
// no id: the upgrade between the steps makes no key for her, and the one
// her plan saw is the one Shred destroys.
func TestLegacyHoldErasureKilledBetweenSteps(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone, testHookAfterShred = nil, nil })
	crash := errors.New("killed")
	for _, keyed := range []bool{true, false} {
		for _, step := range []string{"tombstone", "shred"} {
			t.Run(fmt.Sprintf("keyed=%v killed after %s", keyed, step), func(t *testing.T) {
				ctx := context.Background()
				e := newEnv(t)
				e.spans(t, "alice", "", 1, 2, false, "a")
				putLegacyReleased(t, e)
				ref := mustRef(t, e, "alice")
				if keyed {
					if _, err := e.l.PseudonymKey(ctx, "default", ref, true); err != nil {
						t.Fatal(err)
					}
				}
				hook := func() error { return crash }
				if step == "tombstone" {
					testHookAfterTombstone = hook
				} else {
					testHookAfterShred = hook
				}
				_, err := e.s.Erase(ctx, "default", eraseReq("r1", "alice"))
				testHookAfterTombstone, testHookAfterShred = nil, nil
				if !errors.Is(err, crash) {
					t.Fatalf("Erase killed after %s = %v, want the kill", step, err)
				}
				// The next start: holds upgraded, then plans resumed.
				if err := e.s.UpgradeHolds(ctx); err != nil {
					t.Fatal(err)
				}
				if err := e.s.Resume(ctx); err != nil {
					t.Fatal(err)
				}
				if er, err := e.s.ErasureStatus(ctx, "default", "r1"); err != nil || er.State != "done" {
					t.Fatalf("after Resume the erasure is %+v, %v; want done", er, err)
				}
				if _, err := e.l.PseudonymKey(ctx, "default", ref, false); !errors.Is(err, ledger.ErrNotFound) {
					t.Errorf("after the erasure, killed and finished, alice's pseudonym key: %v; want ErrNotFound", err)
				}
				b, err := e.l.GetState(ctx, "default", stateHold+"legacy-released")
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(b), "alice") {
					t.Errorf("the legacy hold's state record still names her: %s", b)
				}
				hs, err := e.s.Holds(ctx, "default", true)
				if err != nil || len(hs) != 1 || !hs[0].Scope.Erased || hs[0].Scope.Kind != "subject" || hs[0].Scope.Pseudonym == "" {
					t.Fatalf("Holds = %+v, %v; want the hold on an erased subject, by kind and pseudonym", hs, err)
				}
			})
		}
	}
}

// A released hold of an earlier build on a subject who has data but no
// pseudonym key is left as it is by the upgrade, which makes her no key
// (upgraded), until her erasure, which scrubs it.
func TestLegacyReleasedHoldOfUnkeyedSubject(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	putLegacyReleased(t, e)
	ref := mustRef(t, e, "alice")
	if err := e.s.UpgradeHolds(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.PseudonymKey(ctx, "default", ref, false); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("UpgradeHolds made a pseudonym key for the subject of a released hold: %v", err)
	}
	hs, err := e.s.Holds(ctx, "default", true)
	if err != nil || len(hs) != 1 || hs[0].Scope.Subject != "alice" || hs[0].Scope.Erased {
		t.Fatalf("Holds = %+v, %v; want the released hold on alice, not erased", hs, err)
	}
	if _, err := e.s.Erase(ctx, "default", eraseReq("r1", "alice")); err != nil {
		t.Fatal(err)
	}
	if b, err := e.l.GetState(ctx, "default", stateHold+"legacy-released"); err != nil || strings.Contains(string(b), "alice") {
		t.Errorf("after her erasure the legacy hold's state record is %s, %v; want no id", b, err)
	}
}

// putLegacyReleased stores a released hold on subject alice as builds
// before pseudonymous holds stored it: her id in the clear, no kind.
func putLegacyReleased(t *testing.T, e *env) {
	t.Helper()
	legacy := `{"id":"legacy-released","scope":{"subject":"alice"},"case_ref":"CASE-0","reason":"litigation","placed_by":"co-key","placed_at":"2026-01-01T00:00:00Z","released_by":"co-key","released_at":"2026-01-02T00:00:00Z","release_reason":"closed"}`
	if err := e.l.PutState(context.Background(), "default", stateHold+"legacy-released", []byte(legacy)); err != nil {
		t.Fatal(err)
	}
}
