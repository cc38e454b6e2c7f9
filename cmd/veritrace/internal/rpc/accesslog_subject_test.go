package rpc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// subjectServer starts a server with opts, appends testSpan(1) (subject
// customer-42) and returns it with an auditor's and a compliance
// officer's clients.
func subjectServer(t *testing.T, opts Options) (*testServer, clients, clients) {
	t.Helper()
	s := startServerWith(t, opts)
	app := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	if _, err := app.ingest.AppendSpans(context.Background(), connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}})); err != nil {
		t.Fatal(err)
	}
	return s, s.clients("connect", "", s.key(t, policy.Auditor, "default")), s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
}

// access-log --subject finds every record whose target names the subject:
// queries, aggregates, exports, hold placings and hold releases (a release
// names the hold's subject right after its verb). A trace read (GetTrace)
// is recorded by its trace id only and is found by it, not by the subject
// (docs/ACCESS.md, "Filtering by subject or session"): its target is made from the request before
// the trace is read.
func TestAccessLogSubjectFindsEveryKind(t *testing.T) {
	_, aud, co := subjectServer(t, Options{})
	ctx := context.Background()
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
	name := ""
	for _, g := range got {
		if n := namedIn(g); len(n) == 1 && strings.HasPrefix(g, "hold ") && strings.HasSuffix(g, " for case C-1") {
			name = n[0]
		}
	}
	if name == "" {
		t.Fatalf("access-log --subject customer-42 finds no hold placing; found %q", got)
	}
	wants := []string{"query " + name, "aggregate " + name + " ", "export " + name, "hold " + name + " for case C-1", "hold " + name + " " + holdID}
	ok := len(got) == len(wants)
	for i := 0; ok && i < len(got); i++ {
		ok = strings.HasPrefix(got[i], wants[i])
	}
	if !ok || got[len(got)-1] != wants[len(wants)-1] {
		t.Errorf("access-log --subject customer-42 finds %q; want records starting %q", got, wants)
	}
	trace := fmt.Sprintf("trace %x", testSpan(1).GetTraceId())
	all, err := aud.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{PageSize: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range all.Msg.GetEntries() {
		found = found || e.GetRecord().GetTarget() == trace
	}
	if !found {
		t.Errorf("the access log has no record %q of the trace read", trace)
	}
}

// A hold's release names its subject by her pseudonym, found by
// access-log --subject as the placing is. Once she is erased, the hold no
// longer knows her: a release names her by the pseudonym the hold keeps
// (as its entries do), which nothing links to her id, so the filter finds
// neither the placing nor those releases any more; naming her makes no
// key.
// A refused release names no one (review attack33: its record named the
// hold's subject by her stand-in, which a caller with the access log and
// without the holds right could match against its own guesses); nor does
// one of an unknown hold.
func TestReleaseTargetNamesTheHoldsSubject(t *testing.T) {
	s, aud, co := subjectServer(t, Options{RefusalPeriod: -1}) // every refusal recorded
	ctx := context.Background()
	h, err := co.retention.PlaceHold(ctx, connect.NewRequest(&v1.PlaceHoldRequest{Scope: &v1.HoldScope{SubjectId: "customer-42"}, CaseRef: "C-1", Reason: "litigation"}))
	if err != nil {
		t.Fatal(err)
	}
	holdID, p := h.Msg.GetHold().GetId(), h.Msg.GetHold().GetScope().GetPseudonym()
	ref, err := s.l.TermRefOf(ctx, "default", ledger.Term{Field: audit.FieldSubject, Value: []byte("customer-42")})
	if err != nil {
		t.Fatal(err)
	}
	standIn, err := s.l.StandInPseudonym(ctx, "default", ref)
	if err != nil {
		t.Fatal(err)
	}
	release := func(c clients, id string) {
		c.retention.ReleaseHold(ctx, connect.NewRequest(&v1.ReleaseHoldRequest{HoldId: id, Reason: "case closed"}))
	}
	release(aud, holdID) // refused (no manage_holds): no one
	release(co, holdID)  // allowed: her pseudonym
	subjectFinds := func() (n int) {
		f, err := aud.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{SubjectId: "customer-42", PageSize: 1000}))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range f.Msg.GetEntries() {
			if tg := e.GetRecord().GetTarget(); strings.HasPrefix(tg, "hold ") && strings.HasSuffix(tg, " "+holdID) {
				n++
			}
		}
		return n
	}
	if n := subjectFinds(); n != 1 {
		t.Errorf("access-log --subject customer-42 finds %d releases of her hold, want 1 (the allowed one)", n)
	}
	if _, err := co.retention.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: "dsr-1", SubjectId: "customer-42", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})); err != nil {
		t.Fatal(err)
	}
	release(co, holdID)      // allowed, refused as released: the hold's pseudonym
	release(aud, holdID)     // refused: no one
	release(aud, "no-such")  // refused, unknown: no one
	release(co, "no-such-2") // allowed, unknown: no one
	if _, err := s.l.PseudonymKey(ctx, "default", ref, false); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("after customer-42's erasure her pseudonym key is left (%v)", err)
	}
	r, err := aud.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{PageSize: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range r.Msg.GetEntries() {
		rec := e.GetRecord()
		if rec.GetProcedure() == "/veritrace.v1.RetentionService/ReleaseHold" {
			got = append(got, strings.TrimPrefix(rec.GetOutcome().String(), "ACCESS_OUTCOME_")+" "+rec.GetTarget())
		}
	}
	want := []string{
		"DENIED hold " + holdID,
		"ALLOWED hold subject=pseudonym:" + p + " " + holdID,
		"FAILED hold subject=pseudonym:" + p + " " + holdID,
		"DENIED hold " + holdID,
		"DENIED hold no-such",
		"FAILED hold no-such-2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("release records:\n got %q\nwant %q", got, want)
	}
	for _, g := range got {
		if strings.Contains(g, standIn) {
			t.Errorf("release record %q names her stand-in", g)
		}
	}
	if n := subjectFinds(); n != 0 {
		t.Errorf("after her erasure access-log --subject customer-42 finds %d releases of her hold, want none", n)
	}
}
