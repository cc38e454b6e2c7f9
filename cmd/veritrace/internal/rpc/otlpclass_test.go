package rpc

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
	"github.com/veritrace/veritrace/retention"
)

// OTLP entries classified under the revision in force where they commit,
// and resource entries kept as long as their traces.

// otlpTraceHeaders returns the span entries of trace tr in the tenant's log,
// by span id.
func otlpTraceHeaders(t *testing.T, s *testServer, tr []byte) map[[8]byte]*format.Header {
	t.Helper()
	ctx := context.Background()
	size, err := s.l.Size(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	idxs := make([]uint64, size)
	for i := range idxs {
		idxs[i] = uint64(i)
	}
	hs, err := s.l.Headers(ctx, "default", idxs)
	if err != nil {
		t.Fatal(err)
	}
	got := map[[8]byte]*format.Header{}
	for _, h := range hs {
		if h.Kind == format.KindSpan && string(h.TraceID[:]) == string(tr) {
			got[h.SpanID] = h
		}
	}
	return got
}

// A trace's resource entry (its resource and scope attributes, which the
// OTLP spans' payloads do not repeat) must be kept as long as any of its
// spans (docs/RETENTION.md: "a resource entry takes, under that batch's
// revision, the longest-kept class of its items"; otlp.go classify: "the
// resource and scope must stay as long as any of their spans"). Its class
// is set once, by the batch that appends it: a later batch of the same
// export, or a later export, whose spans of the same resource a newer
// revision keeps longer (here: a compliance rule keeping error spans six
// years, recorded between two exports of one trace) does not raise it. The
// sweep after 61 days then expires the resource entry while the compliance
// rule keeps the error span: the span's service.name and scope are gone
// for the six years an auditor must be able to read it.
func TestResourceEntryKeptWhileItsTraceIsKept(t *testing.T) {
	s, clk, svc, app, p := sixtyDayServer(t)
	ctx := context.Background()
	ok := otlpSpan(0)
	if _, err := app.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(ok))); err != nil {
		t.Fatal(err)
	}
	yes := true
	p.Rules = append(p.Rules, retention.Rule{Class: "errors", Days: 2190, Mode: retention.Compliance, Match: retention.Match{Errors: &yes}})
	if _, _, err := svc.SetPolicy(ctx, "default", *p, "co", "AI Act: keep errors six years"); err != nil {
		t.Fatal(err)
	}
	bad := otlpSpan(1)
	bad.Status = &trace.Status{Code: trace.Status_STATUS_CODE_ERROR, Message: "refund lookup failed"}
	if _, err := app.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(bad))); err != nil {
		t.Fatal(err)
	}
	entries := otlpTraceHeaders(t, s, ok.TraceId)
	if len(entries) != 3 {
		t.Fatalf("trace %x has %d span entries, want 3 (two spans, one resource entry)", ok.TraceId, len(entries))
	}
	var res, errSpan *format.Header
	for id, h := range entries {
		switch {
		case string(id[:]) == string(bad.SpanId):
			errSpan = h
		case string(id[:]) != string(ok.SpanId):
			res = h
		}
	}
	t.Logf("resource entry %d class %q; error span %d class %q", res.Index, res.RetentionClass, errSpan.Index, errSpan.RetentionClass)
	e := sweepAfter(t, s, clk, svc, 61, res.Index, errSpan.Index, entries[[8]byte(ok.SpanId)].Index)
	if e[0] && !e[1] {
		t.Errorf("after 61 days the sweep expired the trace's resource entry (index %d, class %q) while the compliance rule keeps its error span (index %d, class %q) six years", res.Index, res.RetentionClass, errSpan.Index, errSpan.RetentionClass)
	}
	// The OK span's period ended: kept no longer than its class says.
	if !e[2] {
		t.Errorf("the OK span (60 days) was not expired after 61 days")
	}
	// Once the error span's period ends, the resource entry goes with it.
	if e := sweepAfter(t, s, clk, svc, 2190, res.Index, errSpan.Index); !e[0] || !e[1] {
		t.Errorf("entries %d and %d erased %v, want both expired once every entry of their trace had passed its period", res.Index, errSpan.Index, e)
	}
}

// docs/RETENTION.md ("Which revision classifies a span"): "Every span
// entry (native AppendSpans, or an OTLP span, log record or resource
// entry) is classified under the revision in force at its own index, and
// under no other", and "the revision it was classified under is the last
// retention entry before it". An OTLP log record whose span is in the log
// takes that span's class (otlp.go classOf), given by the revision in force
// where the span committed: here revision 1 (60 days), though revision 2,
// a compliance rule keeping the service's records six years that matches
// the log record's own attributes, was recorded before the log record was
// appended. The log record is expired after 61 days; an auditor who
// classifies it again under the last retention entry before it, as the
// document says anyone can, finds another class.
func TestLogRecordClassifiedUnderTheRevisionAtItsIndex(t *testing.T) {
	s, clk, svc, app, p := sixtyDayServer(t)
	ctx := context.Background()
	sp := otlpSpan(0)
	if _, err := app.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp))); err != nil {
		t.Fatal(err)
	}
	p.Rules = append(p.Rules, retention.Rule{Class: "support", Days: 2190, Mode: retention.Compliance, Match: retention.Match{Attributes: map[string]string{"service.name": "support-bot"}}})
	p2, _, err := svc.SetPolicy(ctx, "default", *p, "co", "keep the support bot's records six years")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.otlp.logs.CallUnary(ctx, connect.NewRequest(otlpLogs(otlpLogRecord(0)))); err != nil {
		t.Fatal(err)
	}
	rec, _ := recordAndSpan(t, s, sp)
	want := p2.Classify(retention.SpanFacts{Kind: rec.SubKind, Attributes: map[string]string{"service.name": "support-bot"}})
	if rec.RetentionClass != want {
		t.Errorf("the log record at %d, appended after revision %d, has class %q; revision %d, the last retention entry before it, gives %q", rec.Index, p2.Revision, rec.RetentionClass, p2.Revision, want)
	}
	if sweepAfter(t, s, clk, svc, 61, rec.Index)[0] {
		t.Errorf("the log record at %d, matched by a compliance rule (six years) recorded before it was appended, was expired after 61 days", rec.Index)
	}
}

// sixtyDayServer is a server on a test clock whose default tenant's
// policy keeps everything 60 days (revision 1, p), with an app's clients.
func sixtyDayServer(t *testing.T) (*testServer, *clock, *retention.Service, clients, *retention.Policy) {
	t.Helper()
	clk := newClock()
	s := startServerWith(t, Options{Now: clk.now}, func(o *ledger.Options) { o.Now = clk.now })
	svc := s.h.opts.Retention
	p, _, err := svc.SetPolicy(context.Background(), "default", retention.Policy{FloorDays: 30, Default: retention.Rule{Class: retention.DefaultClass, Days: 60, Mode: retention.Governance}}, "co", "60 days")
	if err != nil {
		t.Fatal(err)
	}
	return s, clk, svc, s.clients("grpc", "", s.key(t, policy.Ingester, "default")), p
}
