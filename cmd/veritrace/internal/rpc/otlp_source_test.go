package rpc

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit"
	"github.com/veritrace/veritrace/audit/bundle"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
)

// traceEntries reads every entry of a trace straight from the ledger:
// spans, events and resource entries alike.
func traceEntries(t *testing.T, l *ledger.Ledger, traceID []byte) []*ledger.Entry {
	t.Helper()
	ctx := context.Background()
	size, err := l.Size(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	idxs, err := l.SpansOfTrace(ctx, "default", [16]byte(traceID), size)
	if err != nil {
		t.Fatal(err)
	}
	var out []*ledger.Entry
	for _, i := range idxs {
		e, err := l.GetEntry(ctx, "default", i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestOTLPSubjectInherited: a span or event that names no subject is
// sealed under the subject of its trace when the export or the log names
// it, so that erasing the subject erases it, and its trace's resource
// entry, too; its index terms carry the trace's session, so session holds
// and erasures find it. (An item stored before anything named its
// subject waits for erasure by trace closure: see the skipped attack
// tests.)
func TestOTLPSubjectInherited(t *testing.T) {
	for _, order := range []string{"child first in one export", "child in a later export"} {
		t.Run(order, func(t *testing.T) {
			s := startServer(t, 0)
			ctx := context.Background()
			ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
			parent := otlpSpan(301)
			parent.Name = "litellm_request"
			parent.Attributes = []*common.KeyValue{kv("gen_ai.system", "openai"), kv("metadata.user_api_key_end_user_id", "customer-77"), kv("session.id", "session-9")}
			raw := otlpSpan(302)
			raw.Name, raw.ParentSpanId = "raw_gen_ai_request", parent.SpanId
			raw.Attributes = []*common.KeyValue{kv("llm.openai.messages", "[{'role': 'user', 'content': 'my card number is 4111'}]")}
			exports := [][]*trace.Span{{raw, parent}}
			if order == "child in a later export" {
				exports = [][]*trace.Span{{parent}, {raw}}
			}
			for _, spans := range exports {
				if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(spans...))); err != nil {
					t.Fatal(err)
				}
			}
			entries := traceEntries(t, s.l, parent.TraceId)
			if len(entries) != 3 {
				t.Fatalf("the trace has %d entries, want 2 spans and a resource entry", len(entries))
			}
			for _, e := range entries {
				ok, err := s.l.HasTerm(ctx, "default", ledger.Term{Field: audit.FieldSession, Value: []byte("session-9")}, e.Header.Index)
				if err != nil || !ok {
					t.Errorf("entry %d does not carry the trace's session term (%v)", e.Header.Index, err)
				}
			}
			erase(t, s, "dsr-"+strings.ReplaceAll(order, " ", "-"), "customer-77")
			for _, e := range traceEntries(t, s.l, parent.TraceId) {
				if !e.Erased {
					t.Errorf("after erasing customer-77, entry %d of the subject's trace is readable", e.Header.Index)
				}
			}
		})
	}
}

// TestOTLPResourceStoredOncePerTrace: an export's resource and scope are
// stored once for each trace they appear in, not with every span: an
// export of many spans under a large resource stores it once per trace;
// a retry, and a later export of more spans of the same trace, store it
// not again.
func TestOTLPResourceStoredOncePerTrace(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	var spans []*trace.Span
	for i := range 100 {
		sp := minimalSpan(i)
		sp.TraceId = otlpTraceID(1 + i%2) // two traces
		spans = append(spans, sp)
	}
	req := otlpExport(spans...)
	res := req.ResourceSpans[0].Resource
	res.Attributes = append(res.Attributes, kv("process.command_args", strings.Repeat("x", 64<<10)))
	for range 2 {
		if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(req)); err != nil {
			t.Fatal(err)
		}
	}
	more := otlpExport(minimalSpan(1000))
	more.ResourceSpans[0].Resource = res
	if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(more)); err != nil {
		t.Fatal(err)
	}
	items, resources := otlpEntries(t, s.l, "default")
	_, stored := storedPayloadBytes(t, s.l, "default")
	if items != 101 || resources != 2 || stored > 3*(64<<10) {
		t.Errorf("the log holds %d spans, %d resource entries and %d payload bytes; want 101 spans, 2 resource entries (one per trace) and about twice the resource", items, resources, stored)
	}
}

// TestOTLPExpansionLimit: an export whose entries would pass the limit
// (here: a large resource under many traces of one span each) is refused
// whole, 413 over OTLP/HTTP and RESOURCE_EXHAUSTED (not retried) over
// gRPC, and nothing of it is stored.
func TestOTLPExpansionLimit(t *testing.T) {
	s := startServerWith(t, Options{OTLP: OTLPOptions{MaxExpandedBytes: 1 << 20}})
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	var spans []*trace.Span
	for i := range 100 {
		sp := minimalSpan(i)
		sp.TraceId = otlpTraceID(i + 1) // a trace each
		spans = append(spans, sp)
	}
	req := otlpExport(spans...)
	req.ResourceSpans[0].Resource.Attributes = append(req.ResourceSpans[0].Resource.Attributes, kv("process.command_args", strings.Repeat("x", 16<<10)))
	before, _ := s.l.Size(ctx, "default")
	_, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(req))
	if connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "more than the limit") {
		t.Errorf("gRPC export expanding to 1.6 MiB = %v; want resource_exhausted naming the limit", err)
	}
	status, _, err := ing.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(req))
	if status != 413 || connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("OTLP/HTTP export expanding to 1.6 MiB = %d %v; want 413", status, err)
	}
	if after, _ := s.l.Size(ctx, "default"); after != before {
		t.Errorf("a refused export grew the log from %d to %d entries", before, after)
	}
	// Within the limit, the same traces are accepted.
	req.ResourceSpans[0].ScopeSpans[0].Spans = spans[:10]
	if resp, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(req)); err != nil || resp.Msg.GetPartialSuccess() != nil {
		t.Errorf("export of 10 traces = %v, %v", resp, err)
	}
}

// TestOTLPResourceEntriesAreNotSpans: a trace's resource entries are not
// steps of the trace: aggregates and query summaries count only its spans,
// and GetTrace shows them within each span's otlp_json, not as spans.
func TestOTLPResourceEntriesAreNotSpans(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	parent, child := otlpSpan(1), otlpSpan(2)
	child.ParentSpanId = parent.SpanId
	if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(parent, child))); err != nil {
		t.Fatal(err)
	}
	if _, resources := otlpEntries(t, s.l, "default"); resources != 1 {
		t.Fatalf("%d resource entries, want 1", resources)
	}
	now := time.Now()
	q := &v1.TraceQuery{From: timestamppb.New(now.Add(-time.Hour)), To: timestamppb.New(now.Add(time.Minute))}
	agg, err := aud.audit.AggregateTraces(ctx, connect.NewRequest(&v1.AggregateTracesRequest{Query: q}))
	if err != nil {
		t.Fatal(err)
	}
	if got := agg.Msg.GetTotal().GetSpans(); got != 2 || aggregateKeys(agg.Msg.GetByKind()) != "generation=2" {
		t.Errorf("aggregate: %d spans, by kind %q; want 2 spans, generation=2", got, aggregateKeys(agg.Msg.GetByKind()))
	}
	found, err := aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: q, WithSummaries: true}))
	if err != nil {
		t.Fatal(err)
	}
	if len(found.Msg.GetTraces()) != 1 || found.Msg.GetTraces()[0].GetStats().GetSpans() != 2 || found.Msg.GetTraces()[0].GetStats().GetRootName() != parent.Name {
		t.Errorf("query summaries = %v; want one trace of 2 spans rooted at %q", found.Msg.GetTraces(), parent.Name)
	}
	tr := readTrace(t, aud, parent.TraceId)
	if n := len(flatten(tr.Roots)); n != 2 || len(tr.Roots) != 1 {
		t.Errorf("GetTrace shows %d nodes under %d roots, want the 2 spans under 1 root", n, len(tr.Roots))
	}
}

// TestOTLPTimeRangeBundle: a time-range export (format 3) of a trace
// ingested over OpenTelemetry holds its spans, its event and its resource
// entry; the verifier passes both the OTLP sources and the time range, and
// the report shows the spans with their resource, not the resource entry
// as a span.
func TestOTLPTimeRangeBundle(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	from := time.Now().Add(-time.Minute)
	parent, child := otlpSpan(1), otlpSpan(2)
	child.ParentSpanId = parent.SpanId
	if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(parent, child))); err != nil {
		t.Fatal(err)
	}
	if _, err := ing.otlp.logs.CallUnary(ctx, connect.NewRequest(otlpLogs(otlpLogRecord(2)))); err != nil {
		t.Fatal(err)
	}
	b, err := readBundle(ctx, aud, &v1.TraceQuery{From: timestamppb.New(from)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := note.NewVerifier(s.l.VerifierKey())
	rep := bundle.Verify(bytes.NewReader(b), int64(len(b)), key, nil)
	if !rep.OK() {
		t.Fatalf("the bundle does not verify: %v", rep.Failed())
	}
	passed := map[string]int{}
	for _, c := range rep.Checks {
		passed[c.Name] = c.Passed
	}
	// Two spans, one event and one resource entry.
	if passed[bundle.CheckOTLP] != 4 || passed[bundle.CheckRange] == 0 {
		t.Errorf("checks passed: OTLP sources %d, time range %d; want 4 and the range's entries", passed[bundle.CheckOTLP], passed[bundle.CheckRange])
	}
	report := zipFile(t, b, bundle.ReportFile)
	if !strings.Contains(report, "support-bot") || strings.Contains(report, "otlp.resource_scope") || strings.Contains(report, "not in this bundle") {
		t.Errorf("report.html does not show the spans with their resource and scope alone:\n%s", report)
	}
}

// TestOTLPManyStreamsOneConnection: many concurrent gRPC exports of a few
// hundred KiB on one HTTP/2 connection all finish, waiting for a slot
// with their bodies unread, however few the slots: the waiting streams do
// not hold up the connection's flow control.
func TestOTLPManyStreamsOneConnection(t *testing.T) {
	s := startServerWith(t, Options{OTLP: OTLPOptions{MaxConcurrent: 2}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	errs := make(chan error, 16)
	for c := range 16 {
		go func() {
			var spans []*trace.Span
			for i := range 50 {
				sp := otlpSpan(c*100 + i)
				sp.Attributes = append(sp.Attributes, kv("pad", strings.Repeat("x", 4<<10)))
				spans = append(spans, sp)
			}
			_, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(spans...)))
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatalf("an export on a shared connection: %v", err)
		}
	}
	if items, _ := otlpEntries(t, s.l, "default"); items != 16*50 {
		t.Errorf("%d spans stored, want %d", items, 16*50)
	}
}

// TestOTLPDeepAttributeShown: a span whose attribute is nested 3,200 deep
// (as deep as protobuf decodes) is shown in GetTrace and GetEntry with its
// otlp_json, the deep value elided, never failing the read or leaving the
// view empty.
func TestOTLPDeepAttributeShown(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	sp := otlpSpan(601)
	sp.Attributes = append(sp.Attributes, nestedKV("app.config", 3200))
	if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp))); err != nil {
		t.Fatal(err)
	}
	n := readTrace(t, aud, sp.TraceId).Roots[0]
	if !strings.Contains(n.GetOtlpJson(), "nested too deep to show here") || !strings.Contains(n.GetOtlpJson(), `"app.config"`) {
		t.Errorf("otlp_json of the deep span = %.300q; want it shown with the deep value elided", n.GetOtlpJson())
	}
	e, err := aud.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: n.GetIndex()}))
	if err != nil || e.Msg.GetEntry().GetOtlpJson() != n.GetOtlpJson() {
		t.Errorf("GetEntry = %v; want the same otlp_json", err)
	}
}

// TestVersionByNameSeeks: a reference by name and label finds exactly that
// label among many of one name (the resolver seeks the index to the label
// rather than listing every label), and no other.
func TestVersionByNameSeeks(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	labels := []string{"1", "6", "7", "7\x00", "7a", "70", "8", "v1", "v10", "v2", "é"}
	ids := map[string]string{}
	for _, l := range labels {
		r, err := ing.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{
			Kind: v1.VersionKind_VERSION_KIND_PROMPT, Name: "support-answer", Label: l, Content: []byte("prompt " + l),
		}))
		if err != nil {
			t.Fatalf("RegisterVersion(%q) = %v", l, err)
		}
		ids[l] = r.Msg.GetId()
	}
	r := &versionResolver{l: s.l, tenant: "default", cache: map[refKey]string{}}
	for _, l := range append(labels, "0", "6a", "69", "7\x00\x00", "9", "v", "v11", "z") {
		id, found, err := r.byName(ctx, format.VersionPrompt, "support-answer", l)
		if err != nil || id != ids[l] || found != (ids[l] != "") {
			t.Errorf("byName(%q) = %q, %v, %v; want %q", l, id, found, err, ids[l])
		}
	}
}
