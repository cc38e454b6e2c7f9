package rpc

import (
	"context"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/audit"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/policy"
)

// The access-log subject filter: it needs read_entries (an admin, who may
// read the log but not the entries, is refused it, whatever the id); it
// finds the records naming the id by its pseudonym and by its stand-in
// (a refused call's), matching the target's structured field exactly, so
// that free text naming "subject=pseudonym:P" (a hold's case reference, a
// query's model) forges no match (attack 11, defect 5 and suspicion c).
func TestAccessLogSubjectFilter(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	app := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}})); err != nil {
		t.Fatal(err)
	}
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	admin := s.clients("connect", "default", s.key(t, policy.Admin, "*"))

	_, err := admin.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: &v1.TraceQuery{SubjectId: "customer-42"}}))
	wantCode(t, "admin QueryTraces", err, connect.CodePermissionDenied, "")
	// The refused call made no pseudonym key: the id is named by its
	// stand-in until an allowed call makes it.
	standIn := s.standIn(t, "default", audit.FieldSubject, "customer-42")
	if got := s.pseudonym(t, "default", audit.FieldSubject, "customer-42"); got != standIn {
		t.Errorf("after a refused call the id is named %s, want its stand-in %s (no key made)", got, standIn)
	}
	if _, err := aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: &v1.TraceQuery{SubjectId: "customer-42"}})); err != nil {
		t.Fatal(err)
	}
	p := s.pseudonym(t, "default", audit.FieldSubject, "customer-42")
	if p == standIn {
		t.Fatalf("an allowed query of an id with data made no pseudonym key (named %s)", p)
	}
	forged := " subject=" + p + " "
	if _, err := co.retention.PlaceHold(ctx, connect.NewRequest(&v1.PlaceHoldRequest{Scope: &v1.HoldScope{TraceId: testSpan(1).GetTraceId()},
		CaseRef: "C-9" + forged + "x", Reason: "litigation"})); err != nil {
		t.Fatal(err)
	}
	if _, err := aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: &v1.TraceQuery{Model: "gpt" + forged}})); err != nil {
		t.Fatal(err)
	}

	for _, role := range []struct {
		name string
		c    clients
	}{{"auditor", aud}, {"compliance officer", co}} {
		r, err := role.c.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{SubjectId: "customer-42", PageSize: 100}))
		if err != nil {
			t.Fatalf("%s: ListAccessLog(subject) = %v", role.name, err)
		}
		var queries []string
		for _, e := range r.Msg.GetEntries() {
			tg := e.GetRecord().GetTarget()
			if strings.Contains(tg, "C-9") || strings.Contains(tg, "model=") {
				t.Errorf("%s: the filter matched free text naming the pseudonym: %q", role.name, tg)
			}
			if strings.HasPrefix(tg, "query ") {
				queries = append(queries, tg)
			}
		}
		want := []string{"query subject=" + standIn, "query subject=" + p}
		if !slices.Equal(queries, want) {
			t.Errorf("%s: query records about customer-42 = %q, want %q (the refused one by its stand-in, the allowed one by its pseudonym)", role.name, queries, want)
		}
	}

	for _, id := range []string{"customer-42", "nobody-at-all"} {
		_, err := admin.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{SubjectId: id}))
		wantCode(t, "admin ListAccessLog(subject "+id+")", err, connect.CodePermissionDenied, "")
		_, err = admin.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{SessionId: id}))
		wantCode(t, "admin ListAccessLog(session "+id+")", err, connect.CodePermissionDenied, "")
	}
	if _, err := admin.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{})); err != nil {
		t.Errorf("admin ListAccessLog without a filter = %v", err)
	}
}

// namedIn reads only the structured fields right after a target's verb.
func TestNamedIn(t *testing.T) {
	for target, want := range map[string][]string{
		"query trace=0a0b subject=pseudonym:aa session=pseudonym:bb model=x": {"subject=pseudonym:aa", "session=pseudonym:bb"},
		"query model=x subject=pseudonym:aa":                                 nil,
		"hold subject=pseudonym:aa for case C subject=pseudonym:bb":          {"subject=pseudonym:aa"},
		"hold for case C subject=pseudonym:bb":                               nil,
		"access log from 12 session=pseudonym:cc":                            {"session=pseudonym:cc"},
		"access log from x subject=pseudonym:cc":                             nil,
		"erasure subject=pseudonym:aa":                                       nil,
		"aggregate subject=pseudonym:aa by model":                            {"subject=pseudonym:aa"},
		"query trace=zz subject=pseudonym:aa":                                nil,
		"hold subject=pseudonym:aa request r-1 for case C":                   {"subject=pseudonym:aa"},
		"hold request subject=pseudonym:aa for case C":                       nil,
	} {
		if got := namedIn(target); !slices.Equal(got, want) {
			t.Errorf("namedIn(%q) = %q, want %q", target, got, want)
		}
	}
}

// A PlaceHold asked again with its request id (its answer lost) is
// recorded twice in the access log and places one hold: both records name
// the request id, so an auditor tells one request asked twice from two
// placings, as an erasure's records do ("erasure <request id>"). The id
// comes after the subject's pseudonym and before the case reference; a
// malformed id (the call is refused) is quoted, so it cannot pass for the
// text around it (attack 24).
func TestAccessLogNamesHoldRequestID(t *testing.T) {
	ts := startServer(t, 0)
	ctx := context.Background()
	app := ts.clients("connect", "", ts.key(t, policy.Ingester, "default"))
	if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}})); err != nil {
		t.Fatal(err)
	}
	co := ts.clients("connect", "", ts.key(t, policy.ComplianceOfficer, "default")).retention
	req := &v1.PlaceHoldRequest{RequestId: "hold-case-7-a", Scope: &v1.HoldScope{SubjectId: testSpan(1).GetSubjectId()}, CaseRef: "CASE-7", Reason: "litigation"}
	for i := 0; i < 2; i++ {
		if _, err := co.PlaceHold(ctx, connect.NewRequest(req)); err != nil {
			t.Fatal(err)
		}
	}
	bad := &v1.PlaceHoldRequest{RequestId: "x for case CASE-8", Scope: &v1.HoldScope{Tenant: true}, CaseRef: "CASE-9", Reason: "litigation"}
	_, err := co.PlaceHold(ctx, connect.NewRequest(bad))
	wantCode(t, "PlaceHold(malformed request id)", err, connect.CodeInvalidArgument, "request_id")
	var targets []string
	for _, rs := range ts.allAccessRecords(t) {
		for _, r := range rs {
			if r.GetProcedure() == veritracev1connect.RetentionServicePlaceHoldProcedure {
				targets = append(targets, r.GetTarget())
			}
		}
	}
	if len(targets) != 3 {
		t.Fatalf("access records of PlaceHold = %q, want 3", targets)
	}
	for i, tg := range targets[:2] {
		if !strings.HasPrefix(tg, "hold subject=pseudonym:") || !strings.HasSuffix(tg, " request hold-case-7-a for case CASE-7") {
			t.Errorf("access record %d of PlaceHold(request id %s) target = %q, want \"hold subject=pseudonym:... request %s for case CASE-7\"", i, req.RequestId, tg, req.RequestId)
		}
	}
	if want := `hold request "x for case CASE-8" for case CASE-9`; targets[2] != want {
		t.Errorf("access record of PlaceHold(malformed request id) target = %q, want %q", targets[2], want)
	}
}
