package rpc

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
	"github.com/veritrace/veritrace/retention"
)

// Attack 14: after a SWEEP expires all of a subject's data (not an
// erasure: TestErasedSubjectLeavesNoIdentifier covers that), nothing the
// server answers names the subject or its session, the access log no
// longer finds the subject's records by its id (its pseudonym key is
// gone), released holds show it erased with its old pseudonym, and no
// store holds either id. A real server on loopback, its clock moved by
// the test; the generated clients.
func TestAttack14SweptSubjectLeavesNoIdentifier(t *testing.T) {
	const subject, session = "subject-a14-5d2e", "session-a14-5d2e"
	clk := newClock()
	s := startServerWith(t, Options{Now: clk.now}, func(o *ledger.Options) { o.Now = clk.now })
	svc := s.h.opts.Retention
	ctx := context.Background()
	app := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	if _, _, err := svc.SetPolicy(ctx, "default", retention.Policy{FloorDays: 30, Default: retention.Rule{Class: retention.DefaultClass, Days: 60, Mode: retention.Governance}}, "co", "60 days"); err != nil {
		t.Fatal(err)
	}
	var spans []*v1.Span
	for i := range 3 {
		sp := testSpan(i)
		sp.SubjectId, sp.SessionId = subject, session
		spans = append(spans, sp)
	}
	if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: spans})); err != nil {
		t.Fatal(err)
	}
	if _, err := aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: &v1.TraceQuery{SubjectId: subject}})); err != nil {
		t.Fatal(err)
	}
	var pseudonyms []string
	for _, sc := range []*v1.HoldScope{{SubjectId: subject}, {SessionId: session}} {
		h, err := co.retention.PlaceHold(ctx, connect.NewRequest(&v1.PlaceHoldRequest{Scope: sc, CaseRef: "CASE-14", Reason: "litigation"}))
		if err != nil {
			t.Fatal(err)
		}
		pseudonyms = append(pseudonyms, h.Msg.GetHold().GetScope().GetPseudonym())
		if _, err := co.retention.ReleaseHold(ctx, connect.NewRequest(&v1.ReleaseHoldRequest{HoldId: h.Msg.GetHold().GetId(), Reason: "case closed"})); err != nil {
			t.Fatal(err)
		}
	}
	before, err := aud.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{SubjectId: subject}))
	if err != nil || len(before.Msg.GetEntries()) == 0 {
		t.Fatalf("ListAccessLog(subject) before the sweep = %v, %v; want its records", before, err)
	}
	clk.advance(62 * 24 * time.Hour)
	sw, err := co.retention.Sweep(ctx, connect.NewRequest(&v1.SweepRequest{}))
	if err != nil || sw.Msg.GetExpired() != 3 {
		t.Fatalf("Sweep() = %v, %v; want the 3 spans expired", sw, err)
	}

	ids := [][]byte{[]byte(subject), []byte(session)}
	answersNameNone(t, ctx, s, aud, co, ids, "the sweep expired all its data")
	after, err := aud.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{SubjectId: subject}))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range after.Msg.GetEntries() {
		if j := protojson.Format(e); strings.Contains(j, pseudonyms[0]) {
			t.Errorf("DEFECT: ListAccessLog(subject) after the sweep still finds a record naming its old pseudonym: %s", j)
		}
	}
	s.stop()
	scanStores(t, s.dir, s.keys, ids, []byte("case closed"))
}
