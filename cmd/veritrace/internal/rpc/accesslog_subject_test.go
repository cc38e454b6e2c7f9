package rpc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// access-log --subject: every kind of call about a subject is found by it.
// Queries, aggregates, exports and hold placings name her in their targets
// (found); a hold's release names the hold only and a trace read (GetTrace,
// each page) the trace only, so an auditor asking "who touched customer-42"
// is not shown who released her hold or who read her traces.
func TestAccessLogSubjectFindsEveryKind(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	app := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}})); err != nil {
		t.Fatal(err)
	}
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	q := &v1.TraceQuery{SubjectId: "customer-42"}
	if _, err := aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: q})); err != nil {
		t.Fatal(err)
	}
	start := testSpan(1).GetStartTime().AsTime()
	aq := &v1.TraceQuery{SubjectId: "customer-42", From: timestamppb.New(start.Add(-time.Hour)), To: timestamppb.New(start.Add(time.Hour))}
	if _, err := aud.audit.AggregateTraces(ctx, connect.NewRequest(&v1.AggregateTracesRequest{Query: aq})); err != nil {
		t.Fatal(err)
	}
	if _, err := readBundle(ctx, aud, q, 0); err != nil {
		t.Fatal(err)
	}
	h, err := co.retention.PlaceHold(ctx, connect.NewRequest(&v1.PlaceHoldRequest{Scope: &v1.HoldScope{SubjectId: "customer-42"}, CaseRef: "C-1", Reason: "litigation"}))
	if err != nil {
		t.Fatal(err)
	}
	holdID := h.Msg.GetHold().GetId()
	if _, err := co.retention.ReleaseHold(ctx, connect.NewRequest(&v1.ReleaseHoldRequest{HoldId: holdID, Reason: "case closed"})); err != nil {
		t.Fatal(err)
	}
	if _, err := aud.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: testSpan(1).GetTraceId()})); err != nil {
		t.Fatal(err)
	}
	r, err := aud.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{SubjectId: "customer-42", PageSize: 100}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range r.Msg.GetEntries() {
		got = append(got, e.GetRecord().GetTarget())
	}
	for _, want := range []string{"query ", "aggregate ", "export ", "hold subject=", "hold " + holdID, fmt.Sprintf("trace %x", testSpan(1).GetTraceId())} {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, want)
		}
		if !found {
			t.Errorf("access-log --subject customer-42 finds no record %q...; found %q", want, got)
		}
	}
}
