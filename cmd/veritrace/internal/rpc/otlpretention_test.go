package rpc

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/veritrace/veritrace/audit/bundle"
	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
	"github.com/veritrace/veritrace/retention"
)

// otlpRetentionServer starts a server with a 60-day default and a compliance
// rule keeping error spans six years.
func otlpRetentionServer(t *testing.T) (*testServer, *clock, *retention.Service, clients) {
	t.Helper()
	clk := newClock()
	s := startServerWith(t, Options{Now: clk.now}, func(o *ledger.Options) { o.Now = clk.now })
	svc := s.h.opts.Retention
	yes := true
	if _, _, err := svc.SetPolicy(context.Background(), "default", retention.Policy{FloorDays: 30,
		Default: retention.Rule{Class: retention.DefaultClass, Days: 60, Mode: retention.Governance},
		Rules:   []retention.Rule{{Class: "errors", Days: 2190, Mode: retention.Compliance, Match: retention.Match{Errors: &yes}}}}, "co", "keep errors six years"); err != nil {
		t.Fatal(err)
	}
	return s, clk, svc, s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
}

// sweepAfter advances clk by days, sweeps the default tenant, and says
// which of the entries at indexes are erased.
func sweepAfter(t *testing.T, s *testServer, clk *clock, svc *retention.Service, days int, indexes ...uint64) []bool {
	t.Helper()
	ctx := context.Background()
	clk.advance(time.Duration(days) * 24 * time.Hour)
	if _, err := svc.Sweep(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	erased := make([]bool, len(indexes))
	for i, index := range indexes {
		e, err := s.l.GetEntry(ctx, "default", index)
		if err != nil {
			t.Fatal(err)
		}
		erased[i] = e.Erased
	}
	return erased
}

// recordAndSpan returns the headers of OTLP span sp's entry and of the
// entry of its log record.
func recordAndSpan(t *testing.T, s *testServer, sp *trace.Span) (rec, span *format.Header) {
	t.Helper()
	for id, h := range otlpTraceHeaders(t, s, sp.TraceId) {
		switch {
		case string(id[:]) == string(sp.SpanId):
			span = h
		case string(h.ParentSpanID[:]) == string(sp.SpanId):
			rec = h
		}
	}
	if rec == nil || span == nil {
		t.Fatalf("record %v, span %v", rec, span)
	}
	return rec, span
}

// An OTLP SDK exports a span when it ends and the log records emitted
// during it as they come (separate batch processors): the record usually
// reaches the server before its span. docs/RETENTION.md: "a record stays at
// least as long as its span". Here the record (the model's output) comes
// first, its span, an error span, second: the record gets 60 days from its
// own facts, the span six years, and the sweep at day 61 expires the record
// while its span is kept.
func TestOTLPLogRecordBeforeItsSpanKeptWithItsSpan(t *testing.T) {
	s, clk, svc, app := otlpRetentionServer(t)
	ctx := context.Background()
	if _, err := app.otlp.logs.CallUnary(ctx, connect.NewRequest(otlpLogs(otlpLogRecord(0)))); err != nil {
		t.Fatal(err)
	}
	sp := otlpSpan(0)
	sp.Status = &trace.Status{Code: trace.Status_STATUS_CODE_ERROR, Message: "refund lookup failed"}
	if _, err := app.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp))); err != nil {
		t.Fatal(err)
	}
	rec, span := recordAndSpan(t, s, sp)
	t.Logf("log record %d class %q; its span %d class %q", rec.Index, rec.RetentionClass, span.Index, span.RetentionClass)
	if e := sweepAfter(t, s, clk, svc, 61, rec.Index, span.Index); e[0] && !e[1] {
		t.Errorf("after 61 days the log record %d (class %q) is expired while its span %d (class %q) is kept six years", rec.Index, rec.RetentionClass, span.Index, span.RetentionClass)
	}
}

// A log record whose span came later and is out of its period too is
// kept while a hold keeps the span (here a hold on the span's appended_at
// only, which does not cover the record), decided again by each sweep:
// once the hold is released, both expire.
func TestOTLPLogRecordKeptWhileItsSpanIsHeld(t *testing.T) {
	s, clk, svc, app := otlpRetentionServer(t)
	ctx := context.Background()
	if _, err := app.otlp.logs.CallUnary(ctx, connect.NewRequest(otlpLogs(otlpLogRecord(0)))); err != nil {
		t.Fatal(err)
	}
	clk.advance(24 * time.Hour)
	spanAt := clk.now()
	sp := otlpSpan(0)
	if _, err := app.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp))); err != nil {
		t.Fatal(err)
	}
	rec, span := recordAndSpan(t, s, sp)
	hold, _, err := svc.PlaceHold(ctx, "default", retention.HoldScope{From: spanAt, To: spanAt.Add(time.Second)}, "CASE-1", "litigation", "co")
	if err != nil {
		t.Fatal(err)
	}
	erased := func() string {
		t.Helper()
		var out []bool
		for _, i := range []uint64{rec.Index, span.Index} {
			e, err := s.l.GetEntry(ctx, "default", i)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e.Erased)
		}
		return fmt.Sprint(out)
	}
	clk.advance(62 * 24 * time.Hour) // both past their 60 days
	if r, err := svc.Sweep(ctx, "default"); err != nil || erased() != "[false false]" {
		t.Fatalf("sweep with the span held = %+v, %v: erased [record span] %s, want neither", r, err, erased())
	}
	if _, _, err := svc.ReleaseHold(ctx, "default", hold.ID, "case closed", "co"); err != nil {
		t.Fatal(err)
	}
	if r, err := svc.Sweep(ctx, "default"); err != nil || erased() != "[true true]" {
		t.Errorf("sweep after the hold's release = %+v, %v: erased [record span] %s, want both", r, err, erased())
	}
}

// A trace whose entries have all passed their period is swept, resource
// entry included; a later export of the same trace and resource (here an
// error span, kept six years) finds the erased resource entry and refers to
// it ("An erased resource entry stays what its items refer to", otlp.go
// resource). The export is acknowledged, yet its resource and scope
// (service.name, scope) are stored nowhere: no entry of the trace with a
// payload holds them. The same happens to a span appended between a
// sweep's plan and its commit (docs/RETENTION.md "Resource entries").
func TestOTLPSpanAfterResourceEntryExpiredKeepsItsResource(t *testing.T) {
	t.Skip("known defect, not fixed yet (fix30 D2): re-appending an expired resource entry needs a format change " +
		"(a generation in the resource entry's derived span id, readers and the Go and console bundle verifiers finding the live one, " +
		"the ingest telling expiry from erasure, and the sweep's plan-to-commit window closed); it is not half-built")
	s, clk, svc, app := otlpRetentionServer(t)
	ctx := context.Background()
	first := otlpSpan(0)
	if _, err := app.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(first))); err != nil {
		t.Fatal(err)
	}
	clk.advance(61 * 24 * time.Hour)
	if r, err := svc.Sweep(ctx, "default"); err != nil || r.Erased != 2 {
		t.Fatalf("sweep at day 61 = %+v, %v; want the span and its resource entry expired", r, err)
	}
	late := otlpSpan(1)
	late.Status = &trace.Status{Code: trace.Status_STATUS_CODE_ERROR, Message: "refund lookup failed"}
	if _, err := app.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(late))); err != nil {
		t.Fatal(err)
	}
	var stored, erased int
	for _, h := range otlpTraceHeaders(t, s, late.TraceId) {
		e, err := s.l.GetEntry(ctx, "default", h.Index)
		if err != nil {
			t.Fatal(err)
		}
		if e.Erased {
			if h.SubKind == uint8(v1.SpanKind_SPAN_KIND_OTHER) && h.ParentSpanID == [8]byte{} {
				erased++
			}
			continue
		}
		sp := &v1.Span{}
		if proto.Unmarshal(e.Payload, sp) == nil && len(sp.GetOtlp().GetResourceScope()) > 0 {
			stored++
		}
	}
	if stored == 0 {
		t.Errorf("the error span exported after the sweep (kept six years) refers to an erased resource entry (%d erased): its acknowledged resource and scope are stored nowhere", erased)
	}
}

// The sweep keeps a resource entry while its trace is kept, and knows one
// by its header and payload (bundle.IsResourceEntry). A native AppendSpans
// client must not be able to make one: a span that sets the otlp field, or
// one in a resource entry's exact shape (root, kind OTHER, derived span
// id, otlp.resource_scope), is refused with invalid_argument naming the
// field, and nothing of the batch is appended.
func TestNativeAppendRefusesOTLPSource(t *testing.T) {
	s, _, _, _ := otlpRetentionServer(t)
	ctx := context.Background()
	rsc := mustMarshal(&trace.ResourceSpans{ScopeSpans: []*trace.ScopeSpans{{}}})
	forged := bundle.ResourceEntrySpan(testSpan(0).TraceId, rsc)
	blob := []byte("not a resource at all")
	sum := sha256.Sum256(blob)
	shaped := testSpan(0)
	shaped.Kind, shaped.ParentSpanId = v1.SpanKind_SPAN_KIND_OTHER, nil
	id := bundle.ResourceEntrySpanID(shaped.TraceId, sum[:])
	shaped.SpanId, shaped.Otlp = id[:], &v1.OtlpSource{ResourceScope: blob}
	source := testSpan(0)
	source.Otlp = &v1.OtlpSource{}
	before, err := s.l.Size(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	for _, proto := range []string{"grpc", "connect"} {
		app := s.clients(proto, "", s.key(t, policy.Ingester, "default"))
		for name, sp := range map[string]*v1.Span{"resource entry": forged, "resource entry's shape, with content": shaped, "empty otlp": source} {
			_, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1), sp}}))
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "spans[1].otlp") {
				t.Errorf("%s: AppendSpans(%s) = %v, want invalid_argument naming spans[1].otlp", proto, name, err)
			}
		}
	}
	if size, err := s.l.Size(ctx, "default"); err != nil || size != before {
		t.Errorf("log size %d, %v; want %d: nothing appended", size, err, before)
	}
}

// An OTLP client cannot make a resource entry either: a root span named
// like one (bundle.ResourceEntryName), mapped to kind OTHER, whose span
// id is the derived id of a resource it chooses, is stored as a span (its
// otlp source holds the span), which the sweep expires with its own period
// while an error span of its trace is kept.
func TestOTLPSpanNamedAsResourceEntryIsNotOne(t *testing.T) {
	s, clk, svc, app := otlpRetentionServer(t)
	ctx := context.Background()
	sp := otlpSpan(0)
	sp.Name, sp.Kind = bundle.ResourceEntryName, trace.Span_SPAN_KIND_INTERNAL
	sp.Attributes = []*common.KeyValue{kv("user.id", "customer-42")} // no GenAI attribute: kind OTHER
	blob := mustMarshal(&trace.ResourceSpans{ScopeSpans: []*trace.ScopeSpans{{}}})
	sum := sha256.Sum256(blob)
	id := bundle.ResourceEntrySpanID(sp.TraceId, sum[:])
	sp.SpanId = id[:]
	errSpan := otlpSpan(1)
	errSpan.Status = &trace.Status{Code: trace.Status_STATUS_CODE_ERROR, Message: "failed"}
	if _, err := app.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp, errSpan))); err != nil {
		t.Fatal(err)
	}
	h := otlpTraceHeaders(t, s, sp.TraceId)[id]
	if h == nil {
		t.Fatal("the span is not stored")
	}
	e, err := s.l.GetEntry(ctx, "default", h.Index)
	if err != nil {
		t.Fatal(err)
	}
	if !bundle.MayBeResourceEntry(h) {
		t.Fatalf("the span's header %+v is not of a resource entry's shape: the test does not test", h)
	}
	if bundle.IsResourceEntry(h, e.Payload) {
		t.Fatalf("the OTLP span %d named %q is taken for a resource entry", h.Index, sp.Name)
	}
	if !sweepAfter(t, s, clk, svc, 61, h.Index)[0] {
		t.Errorf("the span %d (class %q) after its period was not expired", h.Index, h.RetentionClass)
	}
}

// A log record a rule gives a shorter class than its span's (here 30 days
// for the service's records; its span is an error span, six years) is kept
// as long as its span.
func TestOTLPLogRecordRuleShorterThanItsSpanKeptWithItsSpan(t *testing.T) {
	s, clk, svc, app := otlpRetentionServer(t)
	ctx := context.Background()
	p, err := svc.Policy(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	p.Rules = append(p.Rules, retention.Rule{Class: "support", Days: 30, Mode: retention.Governance, Match: retention.Match{Attributes: map[string]string{"service.name": "support-bot"}}})
	if _, _, err := svc.SetPolicy(ctx, "default", *p, "co", "support records 30 days"); err != nil {
		t.Fatal(err)
	}
	sp := otlpSpan(0)
	sp.Status = &trace.Status{Code: trace.Status_STATUS_CODE_ERROR, Message: "refund lookup failed"}
	if _, err := app.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp))); err != nil {
		t.Fatal(err)
	}
	if _, err := app.otlp.logs.CallUnary(ctx, connect.NewRequest(otlpLogs(otlpLogRecord(0)))); err != nil {
		t.Fatal(err)
	}
	rec, _ := recordAndSpan(t, s, sp)
	if rec.RetentionClass != "errors" {
		t.Fatalf("log record %+v, want class errors (its span's, kept longer than the rule's)", rec)
	}
	if sweepAfter(t, s, clk, svc, 61, rec.Index)[0] {
		t.Errorf("log record %d was expired after 61 days", rec.Index)
	}
}
