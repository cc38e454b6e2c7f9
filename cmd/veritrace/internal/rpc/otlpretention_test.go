package rpc

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/veritrace/veritrace/audit/bundle"
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
	var rec, span *format.Header
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
	t.Logf("log record %d class %q; its span %d class %q", rec.Index, rec.RetentionClass, span.Index, span.RetentionClass)
	clk.advance(61 * 24 * time.Hour)
	if _, err := svc.Sweep(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	re, err := s.l.GetEntry(ctx, "default", rec.Index)
	if err != nil {
		t.Fatal(err)
	}
	se, err := s.l.GetEntry(ctx, "default", span.Index)
	if err != nil {
		t.Fatal(err)
	}
	if re.Erased && !se.Erased {
		t.Errorf("after 61 days the log record %d (class %q) is expired while its span %d (class %q) is kept six years", rec.Index, rec.RetentionClass, span.Index, span.RetentionClass)
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

// The sweep recognises a resource entry by its header's shape and its
// payload (bundle.IsResourceEntry), both of which a native AppendSpans
// client writes: a root span of kind OTHER whose otlp.resource_scope holds
// any bytes and whose span id is derived from them. Nothing refuses the
// otlp field on the native path, and IsResourceEntry does not look at the
// rest of the span: here the forged entry carries the user's prompt and
// the model's answer (class default, 60 days). One error span of the same
// trace (six years) then keeps the whole forged span six years past its
// period; a chain of short-lived error spans appended before each sweep
// would keep it for ever.
func TestNativeAppendRefusesOTLPSource(t *testing.T) {
	s, clk, svc, _ := otlpRetentionServer(t)
	ctx := context.Background()
	app := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	forged := testSpan(0)
	forged.Kind, forged.ParentSpanId = v1.SpanKind_SPAN_KIND_OTHER, nil
	blob := []byte("not a resource at all")
	sum := sha256.Sum256(blob)
	id := bundle.ResourceEntrySpanID(forged.TraceId, sum[:])
	forged.SpanId = id[:]
	forged.Otlp = &v1.OtlpSource{ResourceScope: blob}
	errSpan := testSpan(1)
	errSpan.Status = &v1.Status{Code: v1.StatusCode_STATUS_CODE_ERROR, Message: "failed"}
	rs, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{forged, errSpan}}))
	if err != nil {
		t.Fatalf("native append of a span shaped as a resource entry: %v", err)
	}
	idx := rs.Msg.GetReceipts()[0].GetIndex()
	hs, err := s.l.Headers(ctx, "default", []uint64{idx})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("forged entry %d class %q; IsResourceEntry-shaped: %v", idx, hs[0].RetentionClass, bundle.MayBeResourceEntry(hs[0]))
	clk.advance(61 * 24 * time.Hour)
	r, err := svc.Sweep(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.l.GetEntry(ctx, "default", idx)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Erased {
		t.Errorf("sweep at day 61 (%+v): the native span %d of class %q, forged into a resource entry's shape, was kept past its period (its payload, prompt included, is readable)", r, idx, hs[0].RetentionClass)
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
	var rec *format.Header
	for _, h := range otlpTraceHeaders(t, s, sp.TraceId) {
		if string(h.ParentSpanID[:]) == string(sp.SpanId) {
			rec = h
		}
	}
	if rec == nil || rec.RetentionClass != "errors" {
		t.Fatalf("log record %+v, want class errors (its span's, kept longer than the rule's)", rec)
	}
	clk.advance(61 * 24 * time.Hour)
	if _, err := svc.Sweep(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	if e, err := s.l.GetEntry(ctx, "default", rec.Index); err != nil || e.Erased {
		t.Errorf("log record %d after 61 days: %v, erased %v", rec.Index, err, e != nil && e.Erased)
	}
}
