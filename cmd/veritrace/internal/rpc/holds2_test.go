package rpc

import (
	"context"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/audit"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
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
	} {
		if got := namedIn(target); !slices.Equal(got, want) {
			t.Errorf("namedIn(%q) = %q, want %q", target, got, want)
		}
	}
}
