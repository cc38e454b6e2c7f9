package retention

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// holdRecords counts a tenant's hold state records and hold entries.
func holdRecords(t *testing.T, e *env) (states, entries int) {
	t.Helper()
	ctx := context.Background()
	names, err := e.l.StateNames(ctx, "default", stateHold)
	if err != nil {
		t.Fatal(err)
	}
	es, _, err := e.l.EntriesOfKind(ctx, "default", format.KindHold, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(names), len(es)
}

func holdReq(id string, scope HoldScope) HoldRequest {
	return HoldRequest{ID: id, Scope: scope, CaseRef: "CASE-7", Reason: "litigation", By: "co-key"}
}

// A request asked again with its id is answered with the hold it placed,
// writing nothing; without an id every request places a hold, as before.
// The same id with anything else differing is refused, naming the id and
// the field, never the subject.
func TestPlaceHoldRequestAskedAgain(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "s1", 1, 2, false, "a")
	scopes := map[string]HoldScope{
		"subject": {Subject: "alice"},
		"session": {Session: "s1"},
		"trace":   {TraceID: "01000000000000000000000000000001"},
		"tenant":  {Tenant: true},
		"range":   {From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)},
	}
	for name, scope := range scopes {
		t.Run(name, func(t *testing.T) {
			states0, entries0 := holdRecords(t, e)
			req := holdReq("hold-"+name, scope)
			h, idx, err := e.s.PlaceHoldRequest(ctx, "default", req)
			if err != nil {
				t.Fatal(err)
			}
			if h.ID != HoldIDOf("default", req.ID) || h.RequestID != req.ID {
				t.Errorf("PlaceHoldRequest() = hold %s, request %q; want %s, %q", h.ID, h.RequestID, HoldIDOf("default", req.ID), req.ID)
			}
			e.clock.Add(time.Minute)
			for i := 0; i < 2; i++ {
				again, idx2, err := e.node("other").PlaceHoldRequest(ctx, "default", req)
				if err != nil || again.ID != h.ID || idx2 != idx || !again.PlacedAt.Equal(h.PlacedAt) || again.Scope.Pseudonym != h.Scope.Pseudonym {
					t.Fatalf("PlaceHoldRequest() asked again = %+v, %d, %v; want hold %s at %d", again, idx2, err, h.ID, idx)
				}
			}
			if states, entries := holdRecords(t, e); states != states0+1 || entries != entries0+1 {
				t.Errorf("after asking 3 times: %d new hold records, %d new hold entries; want 1, 1", states-states0, entries-entries0)
			}
			if tr := scope.TraceID; tr != "" {
				up := req
				up.Scope.TraceID = strings.ToUpper(tr)
				if again, _, err := e.s.PlaceHoldRequest(ctx, "default", up); err != nil || again.ID != h.ID {
					t.Errorf("PlaceHoldRequest(trace id in upper case) = %v, %v; want hold %s", again, err, h.ID)
				}
			}
			other := map[string]HoldRequest{"scope": holdReq(req.ID, HoldScope{Subject: "bob"}), "case_ref": req, "reason": req}
			if name == "subject" {
				other["scope"] = holdReq(req.ID, HoldScope{Session: "alice"})
			}
			c := other["case_ref"]
			c.CaseRef = "CASE-8"
			other["case_ref"] = c
			r := other["reason"]
			r.Reason = "another"
			other["reason"] = r
			for field, o := range other {
				_, _, err := e.s.PlaceHoldRequest(ctx, "default", o)
				if !errors.Is(err, ErrHoldRequestReused) || !strings.Contains(err.Error(), `"`+req.ID+`"`) || !strings.Contains(err.Error(), "different "+field) {
					t.Errorf("PlaceHoldRequest(same id, other %s) = %v; want ErrHoldRequestReused naming %q and %s", field, err, req.ID, field)
				}
				if err != nil && (strings.Contains(err.Error(), "alice") || strings.Contains(err.Error(), "bob")) {
					t.Errorf("PlaceHoldRequest(same id, other %s) = %v: the error names a subject", field, err)
				}
			}
			if states, entries := holdRecords(t, e); states != states0+1 || entries != entries0+1 {
				t.Errorf("after the refusals: %d new hold records, %d new hold entries; want 1, 1", states-states0, entries-entries0)
			}
		})
	}
	t.Run("no request id", func(t *testing.T) {
		states0, entries0 := holdRecords(t, e)
		req := holdReq("", HoldScope{Subject: "alice"})
		a, _, err1 := e.s.PlaceHoldRequest(ctx, "default", req)
		b, _, err2 := e.s.PlaceHoldRequest(ctx, "default", req)
		if err1 != nil || err2 != nil || a.ID == b.ID {
			t.Fatalf("PlaceHoldRequest() twice without an id = %v, %v, %v, %v; want two holds", a, err1, b, err2)
		}
		if states, entries := holdRecords(t, e); states != states0+2 || entries != entries0+2 {
			t.Errorf("%d new hold records, %d new hold entries; want 2, 2", states-states0, entries-entries0)
		}
	})
	for _, id := range []string{"a b", strings.Repeat("x", 65), "é"} {
		if _, _, err := e.s.PlaceHoldRequest(ctx, "default", holdReq(id, HoldScope{Tenant: true})); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "request_id") {
			t.Errorf("PlaceHoldRequest(request id %q) = %v, want ErrInvalid naming request_id", id, err)
		}
	}
	e.verify(t)
}

// Two nodes given one request at once, both past the lookup before
// either stores the hold: one hold, one entry, and both answers the same.
func TestPlaceHoldRequestRace(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	for _, scope := range []HoldScope{{Subject: "alice"}, {Tenant: true}} {
		var arrived sync.WaitGroup
		arrived.Add(2)
		testHookHold = func(step string) error {
			if step == "looked up" {
				arrived.Done()
				arrived.Wait()
			}
			return nil
		}
		req := holdReq("race", scope)
		if scope.Tenant {
			req.ID = "race-tenant"
		}
		states0, entries0 := holdRecords(t, e)
		var hs [2]*Hold
		var idxs [2]uint64
		var errs [2]error
		var wg sync.WaitGroup
		for i, s := range []*Service{e.node("a"), e.node("b")} {
			wg.Add(1)
			go func() { defer wg.Done(); hs[i], idxs[i], errs[i] = s.PlaceHoldRequest(ctx, "default", req) }()
		}
		wg.Wait()
		testHookHold = nil
		if errs[0] != nil || errs[1] != nil || hs[0].ID != hs[1].ID || idxs[0] != idxs[1] || !hs[0].PlacedAt.Equal(hs[1].PlacedAt) {
			t.Fatalf("two PlaceHoldRequest(%q) at once = (%v, %d, %v), (%v, %d, %v); want one hold, one answer", req.ID, hs[0], idxs[0], errs[0], hs[1], idxs[1], errs[1])
		}
		if states, entries := holdRecords(t, e); states != states0+1 || entries != entries0+1 {
			t.Errorf("%q: %d new hold records, %d new hold entries; want 1, 1", req.ID, states-states0, entries-entries0)
		}
	}
	e.verify(t)
}

// A process killed between storing a hold and appending its entry: after
// the restart the hold is in force (listed, keeping data), and asking
// again appends its entry once; a release before that asks again places
// it first, so the log never records a release before its placing.
func TestPlaceHoldRequestKilledBetweenSteps(t *testing.T) {
	for _, releaseFirst := range []bool{false, true} {
		t.Run(map[bool]string{false: "asked again", true: "released, then asked again"}[releaseFirst], func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			held := e.spans(t, "alice", "", 1, 2, false, "a")
			req := holdReq("killed", HoldScope{Subject: "alice"})
			placeKilledAt(t, e, req, "stored")
			if states, entries := holdRecords(t, e); states != 1 || entries != 0 {
				t.Fatalf("after the kill: %d hold records, %d hold entries; want 1, 0", states, entries)
			}
			er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "dsr", Subject: "alice", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})
			if err != nil || len(er.Held) != len(held) {
				t.Fatalf("Erase() after the kill = %+v, %v; want every entry held", er, err)
			}
			var released uint64
			if releaseFirst {
				if _, released, err = e.s.ReleaseHold(ctx, "default", HoldIDOf("default", req.ID), "settled", "co-key"); err != nil {
					t.Fatal(err)
				}
			}
			h, idx, err := e.s.PlaceHoldRequest(ctx, "default", req)
			if err != nil || h.ID != HoldIDOf("default", req.ID) || h.Active() == releaseFirst {
				t.Fatalf("PlaceHoldRequest() asked again = %+v, %v", h, err)
			}
			if releaseFirst && idx >= released {
				t.Errorf("the hold's entry is at %d, its release at %d: released before placed", idx, released)
			}
			en, err := e.l.GetEntry(ctx, "default", idx)
			if err != nil || en.Header.Kind != format.KindHold || en.Header.SubKind != format.HoldPlaced {
				t.Fatalf("entry %d = %+v, %v; want the hold's placed entry", idx, en, err)
			}
			want := 1
			if releaseFirst {
				want = 2
			}
			if states, entries := holdRecords(t, e); states != 1 || entries != want {
				t.Errorf("after asking again: %d hold records, %d hold entries; want 1, %d", states, entries, want)
			}
			if again, idx2, err := e.s.PlaceHoldRequest(ctx, "default", req); err != nil || again.ID != h.ID || idx2 != idx {
				t.Errorf("PlaceHoldRequest() a third time = %v, %d, %v; want %s, %d", again, idx2, err, h.ID, idx)
			}
			e.verify(t)
		})
	}
}

// A request asked again after its hold was released and its subject
// erased: nothing kept names the subject any more, so it is answered with
// the hold (its scope erased) while the id has no pseudonym key; an id
// that has one is another subject.
func TestPlaceHoldRequestAskedAgainAfterErasure(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	e.spans(t, "bob", "", 2, 2, false, "b")
	req := holdReq("before-erasure", HoldScope{Subject: "alice"})
	h, idx, err := e.s.PlaceHoldRequest(ctx, "default", req)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.ReleaseHold(ctx, "default", h.ID, "settled", "co-key"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "dsr", Subject: "alice", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}); err != nil {
		t.Fatal(err)
	}
	again, idx2, err := e.s.PlaceHoldRequest(ctx, "default", req)
	if err != nil || again.ID != h.ID || idx2 != idx || !again.Scope.Erased || again.Scope.Subject != "" {
		t.Fatalf("PlaceHoldRequest() after the erasure = %+v, %d, %v; want hold %s (erased scope) at %d", again, idx2, err, h.ID, idx)
	}
	if _, _, err := e.s.PlaceHoldRequest(ctx, "default", holdReq(req.ID, HoldScope{Subject: "bob"})); !errors.Is(err, ErrHoldRequestReused) {
		t.Errorf("PlaceHoldRequest(same id, a subject with data) = %v, want ErrHoldRequestReused", err)
	}
}

// placeKilledAt places req as a process killed at the given step of
// PlaceHoldRequest would (testHookHold), and restarts the ledger.
func placeKilledAt(t *testing.T, e *env, req HoldRequest, step string) {
	t.Helper()
	testHookHold = func(s string) error {
		if s == step {
			return errKilled
		}
		return nil
	}
	t.Cleanup(func() { testHookHold = nil })
	if _, _, err := e.s.PlaceHoldRequest(context.Background(), "default", req); !errors.Is(err, errKilled) {
		t.Fatalf("PlaceHoldRequest() killed at %q = %v, want the kill", step, err)
	}
	testHookHold = nil
	e.l.Close()
	e.open(t)
}

// hasPseudonymKey reports whether a subject id has a pseudonym key.
func hasPseudonymKey(t *testing.T, e *env, subject string) bool {
	t.Helper()
	ctx := context.Background()
	ref, err := e.l.TermRefOf(ctx, "default", ledger.Term{Field: ledger.SubjectField, Value: []byte(subject)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.l.PseudonymKey(ctx, "default", ref, false)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// Two nodes given one request id at once with different subjects (a
// client that reused its id for another subject), both past the lookup
// before either stores the hold. The one refused (ErrHoldRequestReused)
// places nothing and writes nothing either: no pseudonym key for a
// subject that has no data and no hold (a refused request makes no key,
// docs/ACCESS.md; a key would also make the id "named" for ever after, so
// the id asked again after the first hold's subject is erased would no
// longer match). The other's hold is in force with its key (attack 24).
func TestPlaceHoldRequestRefusedInARaceMakesNoKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	// Two subjects without data: whichever request loses, its subject
	// must be left without a key.
	var arrived sync.WaitGroup
	arrived.Add(2)
	testHookHold = func(step string) error {
		if step == "looked up" {
			arrived.Done()
			arrived.Wait()
		}
		return nil
	}
	t.Cleanup(func() { testHookHold = nil })
	reqs := []HoldRequest{holdReq("reused", HoldScope{Subject: "nobody-1"}), holdReq("reused", HoldScope{Subject: "nobody-2"})}
	var hs [2]*Hold
	var errs [2]error
	var wg sync.WaitGroup
	for i, s := range []*Service{e.node("a"), e.node("b")} {
		wg.Add(1)
		go func() { defer wg.Done(); hs[i], _, errs[i] = s.PlaceHoldRequest(ctx, "default", reqs[i]) }()
	}
	wg.Wait()
	testHookHold = nil
	refused := -1
	for i, err := range errs {
		if errors.Is(err, ErrHoldRequestReused) {
			refused = i
		} else if err != nil {
			t.Fatalf("PlaceHoldRequest(%v) = %v", reqs[i].Scope, err)
		}
	}
	if refused < 0 {
		t.Fatalf("two PlaceHoldRequest(same id, other subjects) at once = %v; want one refused", errs)
	}
	placed := 1 - refused
	if hasPseudonymKey(t, e, reqs[refused].Scope.Subject) {
		t.Errorf("after the refused request for a subject without data: it has a pseudonym key (the refused request made one)")
	}
	if !hasPseudonymKey(t, e, reqs[placed].Scope.Subject) {
		t.Errorf("after the placed request: its subject has no pseudonym key")
	}
	list, err := e.s.Holds(ctx, "default", false)
	if err != nil || len(list) != 1 || list[0].ID != hs[placed].ID || list[0].Scope.Subject != reqs[placed].Scope.Subject || list[0].Scope.Pseudonym == "" {
		t.Fatalf("Holds() = %+v, %v; want the placed hold on %s, with its pseudonym", list, err, reqs[placed].Scope.Subject)
	}
	if states, entries := holdRecords(t, e); states != 1 || entries != 1 {
		t.Errorf("%d hold records, %d hold entries; want 1, 1", states, entries)
	}
	e.verify(t)
}

// A process killed after claiming a hold's request id for a subject,
// before making the subject's pseudonym key: the claim is no hold (not
// listed, not in force, nothing to release) and made no key; the same id
// for another subject is refused and makes no key either; the request
// asked again places the hold, once, in force and with its key.
func TestPlaceHoldRequestKilledAfterClaim(t *testing.T) {
	for _, subject := range []string{"alice", "nobody"} {
		t.Run(subject, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			held := e.spans(t, "alice", "", 1, 2, false, "a")
			req := holdReq("claimed", HoldScope{Subject: subject})
			placeKilledAt(t, e, req, "claimed")
			if subject == "nobody" && hasPseudonymKey(t, e, subject) {
				t.Errorf("after the kill: the subject without data has a pseudonym key")
			}
			if list, err := e.s.Holds(ctx, "default", true); err != nil || len(list) != 0 {
				t.Errorf("Holds() after the kill = %+v, %v; want none", list, err)
			}
			id := HoldIDOf("default", req.ID)
			if _, _, err := e.s.ReleaseHold(ctx, "default", id, "settled", "co-key"); !errors.Is(err, ledger.ErrNotFound) {
				t.Errorf("ReleaseHold(claimed hold) = %v, want ErrNotFound", err)
			}
			if _, _, err := e.s.PlaceHoldRequest(ctx, "default", holdReq(req.ID, HoldScope{Subject: "someone-else"})); !errors.Is(err, ErrHoldRequestReused) {
				t.Errorf("PlaceHoldRequest(same id, another subject) = %v, want ErrHoldRequestReused", err)
			}
			if hasPseudonymKey(t, e, "someone-else") {
				t.Errorf("the refused request made a pseudonym key")
			}
			h, idx, err := e.s.PlaceHoldRequest(ctx, "default", req)
			if err != nil || h.ID != id || !h.Active() || h.Scope.Subject != subject || h.Scope.Pseudonym == "" || h.Scope.Sealed != nil || h.Scope.Term != "" {
				t.Fatalf("PlaceHoldRequest() asked again = %+v, %d, %v; want hold %s on %s", h, idx, err, id, subject)
			}
			if !hasPseudonymKey(t, e, subject) {
				t.Errorf("the placed hold's subject has no pseudonym key")
			}
			if list, err := e.s.Holds(ctx, "default", false); err != nil || len(list) != 1 || list[0].Scope.Subject != subject || list[0].Scope.Pseudonym != h.Scope.Pseudonym {
				t.Errorf("Holds() = %+v, %v; want the hold on %s", list, err, subject)
			}
			if states, entries := holdRecords(t, e); states != 1 || entries != 1 {
				t.Errorf("%d hold records, %d hold entries; want 1, 1", states, entries)
			}
			if subject == "alice" {
				er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "dsr", Subject: "alice", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})
				if err != nil || len(er.Held) != len(held) {
					t.Errorf("Erase() = %+v, %v; want every entry held", er, err)
				}
			}
			if again, idx2, err := e.s.PlaceHoldRequest(ctx, "default", req); err != nil || again.ID != id || idx2 != idx || again.Scope.Pseudonym != h.Scope.Pseudonym {
				t.Errorf("PlaceHoldRequest() a third time = %+v, %d, %v; want %s at %d", again, idx2, err, id, idx)
			}
			e.verify(t)
		})
	}
}
