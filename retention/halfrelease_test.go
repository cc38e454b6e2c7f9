package retention

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// putLegacyReleasedInLogOnly stores a hold as an earlier build left it
// when it was interrupted between appending a release's entry and writing
// the released state record (ReleaseHold's order: entry, then state): its
// subject in the clear, in force by its state record, released by the log,
// which decides (held).
func putLegacyReleasedInLogOnly(t *testing.T, e *env, requestID string) string {
	t.Helper()
	ctx := context.Background()
	id := "legacy-half-released"
	rid := ""
	if requestID != "" {
		id, rid = HoldIDOf("default", requestID), `"request_id":"`+requestID+`",`
	}
	legacy := `{"id":"` + id + `",` + rid + `"scope":{"subject":"alice"},"case_ref":"CASE-0","reason":"litigation","placed_by":"co-key","placed_at":"2026-01-01T00:00:00Z"}`
	if err := e.l.PutState(ctx, "default", stateHold+id, []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	h, err := e.s.hold(ctx, "default", id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.appendPlaced(ctx, "default", h); err != nil {
		t.Fatal(err)
	}
	h.ReleasedBy, h.ReleaseReason = "co-key", "closed"
	h.ReleasedAt = h.PlacedAt.Add(24 * 3600 * 1e9)
	if _, err := e.s.appendRecord(ctx, "default", format.KindHold, format.HoldReleased, recordID("hold", id, "released"), h.forLog()); err != nil {
		t.Fatal(err)
	}
	return id
}

// A legacy hold whose release is in the log but whose state record still
// says it is in force: the erasure of its subject erases her entries (the
// log decides the hold is released), yet the record keeps her id in the
// clear (scrubLegacy skips holds in force by their state), and the upgrade
// at the next start makes her a new pseudonym key (upgraded trusts the
// state's Active), so that the hold lists her id again after her erasure.
func TestHalfReleasedLegacyHoldIsScrubbedByErasure(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	id := putLegacyReleasedInLogOnly(t, e, "")
	ref := mustRef(t, e, "alice")
	er, err := e.s.Erase(ctx, "default", eraseReq("r1", "alice"))
	if err != nil || er.State != "done" || len(er.Erase) == 0 || len(er.Held) != 0 {
		t.Fatalf("Erase = %+v, %v; want alice's entries erased (her hold is released in the log)", er, err)
	}
	if b, err := e.l.GetState(ctx, "default", stateHold+id); err != nil || strings.Contains(string(b), "alice") {
		t.Errorf("after alice's erasure the hold's state record names her in the clear (%v): %s", err, b)
	}
	if err := e.s.UpgradeHolds(ctx); err != nil {
		t.Fatal(err)
	}
	if k, err := e.l.PseudonymKey(ctx, "default", ref, false); err == nil {
		t.Errorf("UpgradeHolds made a pseudonym key (pseudonym %s) for alice after her erasure", k.Pseudonym("alice"))
	}
	hs, err := e.s.Holds(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.Scope.Subject == "alice" {
			t.Errorf("after alice's erasure hold %s lists her id: %+v (active=%v)", h.ID, h.Scope, h.Active())
		}
	}
}

// The same hold, upgraded by another node's start while the erasure is
// between its plan and its commit: sound. Erase makes her key before it
// plans, so the plan lists it (with its stamp), the upgrade seals under
// that key, Shred destroys it and scrubHolds drops the hold's term.
func TestLegacyUpgradeBetweenPlanAndCommitLeavesNoKey(t *testing.T) {
	t.Cleanup(func() { testHookBeforeCommit = nil })
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	putLegacyReleasedInLogOnly(t, e, "")
	ref := mustRef(t, e, "alice")
	testHookBeforeCommit = func(er *Erasure, attempt int) error {
		if attempt == 0 {
			return e.s.UpgradeHolds(ctx)
		}
		return nil
	}
	er, err := e.s.Erase(ctx, "default", eraseReq("r1", "alice"))
	testHookBeforeCommit = nil
	if err != nil || er.State != "done" || len(er.Erase) == 0 {
		t.Fatalf("Erase = %+v, %v", er, err)
	}
	if k, err := e.l.PseudonymKey(ctx, "default", ref, false); err == nil {
		t.Errorf("after alice's erasure her pseudonym key (pseudonym %s), made by the upgrade between plan and commit, is left", k.Pseudonym("alice"))
	}
	hs, err := e.s.Holds(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.Scope.Subject == "alice" {
			t.Errorf("after alice's erasure hold %s lists her id: %+v", h.ID, h.Scope)
		}
	}
}

// Its request asked again after her erasure (placedAgain): the hold is in
// force by its state, so it is upgraded with a key made for her, and the
// answer names her.
func TestHalfReleasedLegacyRequestAskedAgainNamesNoErasedSubject(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	putLegacyReleasedInLogOnly(t, e, "h-1")
	ref := mustRef(t, e, "alice")
	if er, err := e.s.Erase(ctx, "default", eraseReq("r1", "alice")); err != nil || er.State != "done" {
		t.Fatalf("Erase = %+v, %v", er, err)
	}
	h, _, err := e.s.PlaceHoldRequest(ctx, "default", HoldRequest{ID: "h-1", Scope: HoldScope{Subject: "alice"}, CaseRef: "CASE-0", Reason: "litigation", By: "co-key"})
	if err == nil && h.Scope.Subject == "alice" {
		t.Errorf("hold request h-1 asked again after alice's erasure answered a hold naming her: %+v (active=%v)", h.Scope, h.Active())
	}
	if _, err := e.l.PseudonymKey(ctx, "default", ref, false); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("after alice's erasure, the request asked again left her a pseudonym key (%v)", err)
	}
}

// A hold of this build whose release was interrupted after its entry was
// appended, before its state record was written (a crash in ReleaseHold):
// the log says released, the record in force. An erasure of the trace that
// holds all of alice's entries erases them (held reads the log) but keeps
// her pseudonym key (namedByHolds reads the record), so that the hold still
// lists her id after every entry of hers is erased.
func TestInterruptedReleaseLeavesNoKeyOfErasedSubject(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 7, 2, false, "a")
	interruptRelease(t, e) // ReleaseHold killed between its entry and its record
	var trace [16]byte
	trace[0], trace[15] = 7, 1
	er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "r1", TraceIDs: [][16]byte{trace}, LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})
	if err != nil || er.State != "done" || len(er.Erase) != 2 || len(er.Held) != 0 {
		t.Fatalf("Erase = %+v, %v; want alice's 2 entries erased (the log says her hold is released)", er, err)
	}
	if k, err := e.l.PseudonymKey(ctx, "default", mustRef(t, e, "alice"), false); err == nil {
		t.Errorf("every entry of alice's is erased, her hold released in the log, yet her pseudonym key (pseudonym %s) is left", k.Pseudonym("alice"))
	}
	hs, err := e.s.Holds(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.Scope.Subject == "alice" {
			t.Errorf("after all her entries are erased hold %s lists her id: %+v (active=%v)", h.ID, h.Scope, h.Active())
		}
	}
}

// interruptRelease places a hold on alice and records its release as
// ReleaseHold does when killed between its two writes: the released entry
// appended, the state record still in force. It returns the hold as
// released.
func interruptRelease(t *testing.T, e *env) *Hold {
	t.Helper()
	ctx := context.Background()
	h, _, err := e.s.PlaceHold(ctx, "default", HoldScope{Subject: "alice"}, "CASE-1", "litigation", "co-key")
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.s.hold(ctx, "default", h.ID)
	if err != nil {
		t.Fatal(err)
	}
	st.ReleasedBy, st.ReleaseReason, st.ReleasedAt = "co-key", "closed", st.PlacedAt.Add(1e9)
	if _, err := e.s.appendRecord(ctx, "default", format.KindHold, format.HoldReleased, recordID("hold", h.ID, "released"), st.forLog()); err != nil {
		t.Fatal(err)
	}
	return st
}

// storedHold reads a hold's state record as stored, not settled.
func storedHold(t *testing.T, e *env, id string) *Hold {
	t.Helper()
	b, err := e.l.GetState(context.Background(), "default", stateHold+id)
	if err != nil {
		t.Fatal(err)
	}
	h := &Hold{}
	if err := json.Unmarshal(b, h); err != nil {
		t.Fatal(err)
	}
	return h
}

// The repair of a half-done release, killed at each of its steps, in the
// middle of an erasure that meets it: the erasure fails and decides
// nothing; asked again, it finishes the release from the log's entry (once,
// the same) and erases alice's entries and her key.
func TestHalfDoneReleaseRepairKilledAtEachStep(t *testing.T) {
	t.Cleanup(func() { testHookRelease = nil })
	killed := errors.New("killed")
	for _, step := range []string{"read", "written"} {
		t.Run(step, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			e.spans(t, "alice", "", 7, 2, false, "a")
			rel := interruptRelease(t, e)
			ref := mustRef(t, e, "alice")
			testHookRelease = func(s string) error {
				if s == step {
					return killed
				}
				return nil
			}
			var trace [16]byte
			trace[0], trace[15] = 7, 1
			req := ErasureRequest{ID: "r1", TraceIDs: [][16]byte{trace}, LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}
			if er, err := e.s.Erase(ctx, "default", req); !errors.Is(err, killed) {
				t.Fatalf("Erase killed at %q = %+v, %v; want the kill", step, er, err)
			}
			if got := storedHold(t, e, rel.ID); got.Active() != (step == "read") {
				t.Errorf("killed at %q: state record active=%v", step, got.Active())
			}
			if _, err := e.l.PseudonymKey(ctx, "default", ref, false); err != nil {
				t.Errorf("killed at %q: alice's key is gone (%v) before the erasure ran", step, err)
			}
			testHookRelease = nil
			er, err := e.s.Erase(ctx, "default", req)
			if err != nil || er.State != "done" || len(er.Erase) != 2 || len(er.Held) != 0 {
				t.Fatalf("Erase asked again = %+v, %v; want alice's 2 entries erased", er, err)
			}
			got := storedHold(t, e, rel.ID)
			if got.Active() || !got.ReleasedAt.Equal(rel.ReleasedAt) || got.ReleasedBy != rel.ReleasedBy || got.ReleaseReason != rel.ReleaseReason {
				t.Errorf("state record after the repair: released %v by %q (%q); want as the log's entry: %v by %q (%q)", got.ReleasedAt, got.ReleasedBy, got.ReleaseReason, rel.ReleasedAt, rel.ReleasedBy, rel.ReleaseReason)
			}
			if _, err := e.l.PseudonymKey(ctx, "default", ref, false); !errors.Is(err, ledger.ErrNotFound) {
				t.Errorf("after alice's erasure her pseudonym key is left (%v)", err)
			}
		})
	}
}

// Two nodes over one database meet the same half-done release: the one
// that lists first finishes it, durably; the other, which did not, answers
// alike (released, by the log's entry), and releasing it again is refused
// as released (ErrHoldReleased), appending nothing.
func TestHalfDoneReleaseSettledAlikeOnEveryNode(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	rel := interruptRelease(t, e)
	a, b := e.node("a"), e.node("b")
	if hs, err := a.Holds(ctx, "default", false); err != nil || len(hs) != 0 {
		t.Fatalf("node a: Holds(in force) = %d holds, %v; want none (released by the log)", len(hs), err)
	}
	if got := storedHold(t, e, rel.ID); got.Active() {
		t.Fatalf("node a listed the holds; the state record is still in force")
	}
	size, err := e.l.Size(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := b.ReleaseHold(ctx, "default", rel.ID, "again", "co-key-2")
	if !errors.Is(err, ErrHoldReleased) || h == nil || h.ReleasedBy != rel.ReleasedBy || !h.ReleasedAt.Equal(rel.ReleasedAt) {
		t.Fatalf("node b: ReleaseHold again = %+v, %v; want ErrHoldReleased, released by %q at %v", h, err, rel.ReleasedBy, rel.ReleasedAt)
	}
	if after, err := e.l.Size(ctx, "default"); err != nil || after != size {
		t.Errorf("node b's refused release grew the log from %d to %d (%v)", size, after, err)
	}
	for _, n := range []*Service{a, b} {
		hs, err := n.Holds(ctx, "default", true)
		if err != nil || len(hs) != 1 || hs[0].Active() || hs[0].ReleaseReason != rel.ReleaseReason {
			t.Errorf("node %s: Holds(all) = %+v, %v; want the one hold, released (%q)", n.Node, hs, err, rel.ReleaseReason)
		}
	}
}
