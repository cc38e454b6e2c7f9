package retention

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

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
			testHookHold = func(step string) error {
				if step == "stored" {
					return errKilled
				}
				return nil
			}
			t.Cleanup(func() { testHookHold = nil })
			if _, _, err := e.s.PlaceHoldRequest(ctx, "default", req); !errors.Is(err, errKilled) {
				t.Fatalf("PlaceHoldRequest() = %v, want the kill", err)
			}
			testHookHold = nil
			e.l.Close()
			e.open(t)
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
