package rpc

// Attacks on OpenTelemetry ingest (issue 10), each a demonstration of a
// defect found in review: these tests fail on the code as it stands and
// pass once the defect they name is fixed. They run the real handler on a
// loopback listener over a real ledger.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	logs "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// minimalSpan is the smallest span the ledger accepts: ids, a name and
// times, nothing else.
func minimalSpan(n int) *trace.Span {
	return &trace.Span{
		TraceId: otlpTraceID(1), SpanId: []byte{0xc0, 0, 0, 0, 0, byte(n >> 16), byte(n >> 8), byte(n) + 1},
		Name:              "s",
		StartTimeUnixNano: uint64(otlpStart.UnixNano()), EndTimeUnixNano: uint64(otlpStart.UnixNano()) + 1,
	}
}

// storedPayloadBytes sums the decrypted payload sizes of a tenant's log.
func storedPayloadBytes(t *testing.T, l *ledger.Ledger, tenant string) (entries uint64, bytes int) {
	t.Helper()
	ctx := context.Background()
	size, err := l.Size(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	for i := range size {
		e, err := l.GetEntry(ctx, tenant, i)
		if err != nil {
			t.Fatal(err)
		}
		bytes += len(e.Payload)
	}
	return size, bytes
}

// TestAttackOTLPResourceAmplification: every span's stored source repeats
// its export's whole resource (otlp.MapSpan), and the limits bound the
// request (16 MiB after decompression) and each span (2 MiB), never what an
// export expands to. A request of a few KiB (gzip) with one large resource
// attribute and many tiny spans makes the server hold, seal and write
// hundreds of times its size; with a resource near 2 MiB and the 16 MiB
// limit filled with tiny spans it is hundreds of GiB, held in memory
// before the first append (otlpBackend.ingest collects every record first).
func TestAttackOTLPResourceAmplification(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	var spans []*trace.Span
	for i := range 200 {
		spans = append(spans, minimalSpan(i))
	}
	req := otlpExport(spans...)
	res := req.ResourceSpans[0].Resource
	res.Attributes = append(res.Attributes, kv("process.command_args", strings.Repeat("x", 64<<10)))
	body := mustMarshal(req)
	zipped := gz(body)
	status, _, err := ing.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, zipped, "Content-Encoding", "gzip")
	entries, stored := storedPayloadBytes(t, s.l, "default")
	t.Logf("request: %d bytes gzip, %d bytes decompressed; answer %d %v; stored %d entries, %d payload bytes (%.0fx the decompressed request, %.0fx what was sent)",
		len(zipped), len(body), status, err, entries, stored, float64(stored)/float64(len(body)), float64(stored)/float64(len(zipped)))
	if err == nil && stored > 4*len(body) {
		t.Errorf("an export of %d bytes (%d gzip) was accepted and stored as %d bytes: the work and storage of an export must be bounded by its size (store the resource once, or refuse an export whose expansion passes the limit with 413)",
			len(body), len(zipped), stored)
	}
}

// countingAppend wraps the ledger's Append for OTLP ingest and counts the
// calls and the records each call sealed.
type countingAppend struct {
	l              atomic.Pointer[ledger.Ledger]
	calls, records atomic.Int64
}

func (c *countingAppend) append(ctx context.Context, tenant string, recs []ledger.Record) ([]ledger.Receipt, error) {
	c.calls.Add(1)
	c.records.Add(int64(len(recs)))
	return c.l.Load().Append(ctx, tenant, recs)
}

// TestAttackOTLPConflictsAreQuadratic: otlpBackend.appendOTLP answers a
// per-record ledger error by removing that one record and appending the
// rest of the batch again. Each Append seals (commitment and encryption)
// every record again and queues behind the single writer that every
// tenant's appends share. An export whose N spans all conflict (the same
// ids with other content: a re-sent export after any change, or one export
// that repeats ids) costs N Append calls and N^2/2 seals; at the 16 MiB
// limit that is minutes of CPU in the writer's queue for one request.
func TestAttackOTLPConflictsAreQuadratic(t *testing.T) {
	const n = 120
	for _, tc := range []struct {
		name  string
		first []*trace.Span // sent before, accepted
		then  []*trace.Span
	}{
		{"conflicts with the log", spansNamed(n, "a", false), spansNamed(n, "b", false)},
		{"conflicts within the export", nil, spansNamed(n, "c", true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := &countingAppend{}
			s := startServerWith(t, Options{otlpAppend: ca.append})
			ca.l.Store(s.l)
			ctx := context.Background()
			ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
			if tc.first != nil {
				if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(tc.first...))); err != nil {
					t.Fatal(err)
				}
			}
			calls0, records0 := ca.calls.Load(), ca.records.Load()
			resp, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(tc.then...)))
			if err != nil {
				t.Fatal(err)
			}
			calls, records := ca.calls.Load()-calls0, ca.records.Load()-records0
			t.Logf("export of %d spans: rejected %d; %d Append calls sealing %d records", len(tc.then), resp.Msg.GetPartialSuccess().GetRejectedSpans(), calls, records)
			if calls > 3 || records > 3*int64(len(tc.then)) {
				t.Errorf("one export of %d spans made %d Append calls that sealed %d records; want a bounded number of calls (check identities first, or drop every conflicting record of a batch at once)",
					len(tc.then), calls, records)
			}
		})
	}
}

// spansNamed returns n spans named name; with sameID they all share one
// span id (each with its own name, so each conflicts with the first).
func spansNamed(n int, name string, sameID bool) []*trace.Span {
	var out []*trace.Span
	for i := range n {
		sp := otlpSpan(i)
		sp.TraceId = otlpTraceID(7)
		sp.Name = name
		if sameID {
			sp.SpanId = otlpSpan(0).SpanId
			sp.Name = fmt.Sprintf("%s-%d", name, i)
		}
		out = append(out, sp)
	}
	return out
}

// erase erases a subject as a compliance officer would.
func erase(t *testing.T, s *testServer, id, subject string) {
	t.Helper()
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	if _, err := co.retention.Erase(context.Background(), connect.NewRequest(&v1.EraseRequest{
		RequestId: id, SubjectId: subject, LegalBasis: "GDPR Art. 17(1)", Reason: "data subject request",
	})); err != nil {
		t.Fatalf("Erase(%s) = %v", subject, err)
	}
}

// TestAttackOTLPLogBeforeItsSpanSurvivesErasure: a GenAI event sent as an
// OTLP log record is sealed under its span's subject only when the span is
// in the ledger already (rpc/otlp.go, subjectLookup). The SDKs export logs
// before spans: a log record is emitted while its span is open, the span
// is exported only once it ends, and the batch log processor exports every
// second against the span processor's five (OTel spec defaults of
// OTEL_BLRP_SCHEDULE_DELAY and OTEL_BSP_SCHEDULE_DELAY). So the usual order
// seals the model's input and output with no subject, and erasing the
// subject leaves them readable. docs/OTLP.md says the SDKs' default
// batching sends spans first.
//
// Ingest seals an item that names no subject under its trace's subject
// when the export or the log knows it (TestOTLPSubjectInherited); here
// nothing names the subject until after the event is stored, so only
// erasure by trace closure can take it.
func TestAttackOTLPLogBeforeItsSpanSurvivesErasure(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	sp := otlpSpan(1) // user.id customer-42
	if _, err := ing.otlp.logs.CallUnary(ctx, connect.NewRequest(otlpLogs(otlpLogRecord(1)))); err != nil {
		t.Fatal(err)
	}
	if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp))); err != nil {
		t.Fatal(err)
	}
	erase(t, s, "dsr-log-first", "customer-42")
	for _, n := range flatten(readTrace(t, aud, sp.TraceId).Roots) {
		if !n.GetErased() {
			var out []string
			for _, m := range n.GetSpan().GetContent().GetOutputMessages() {
				for _, p := range m.GetParts() {
					out = append(out, p.GetText())
				}
			}
			t.Errorf("after erasing customer-42, entry %d (%s) of the subject's trace is readable: subject %q, output %q",
				n.GetIndex(), n.GetSpan().GetName(), n.GetSpan().GetSubjectId(), out)
		}
	}
}

// TestAttackOTLPLiteLLMRawRequestSurvivesErasure: LiteLLM's `otel` callback
// (the set-up docs/OTLP.md documents) puts the end user on its
// `litellm_request` span and the provider's raw request and response, with
// every message, on a `raw_gen_ai_request` child span as
// llm.<provider>.* attributes, without the end user (LiteLLM's
// set_raw_request_attributes). The mapping takes a subject from each span's
// own attributes only, so the child is sealed with no subject and erasing
// the end user leaves the raw messages readable. The same holds for any
// instrumentation whose model-call spans do not repeat user.id (the GenAI
// instrumentations put no user on their spans).
//
// The child inherits its trace's subject when its parent arrives first or
// in the same export (TestOTLPSubjectInherited); exported alone before
// the parent, as here, only erasure by trace closure can take it.
func TestAttackOTLPLiteLLMRawRequestSurvivesErasure(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	parent := otlpSpan(301)
	parent.Name = "litellm_request"
	parent.Attributes = []*common.KeyValue{
		kv("gen_ai.system", "openai"), kv("gen_ai.request.model", "gpt-4o"),
		kv("metadata.user_api_key_end_user_id", "customer-77"),
		kv("gen_ai.prompt.0.role", "user"), kv("gen_ai.prompt.0.content", "my card number is 4111 1111 1111 1111"),
	}
	raw := otlpSpan(302)
	raw.Name, raw.ParentSpanId = "raw_gen_ai_request", parent.SpanId
	raw.Attributes = []*common.KeyValue{
		kv("llm.openai.messages", "[{'role': 'user', 'content': 'my card number is 4111 1111 1111 1111'}]"),
		kv("llm.openai.model", "gpt-4o"),
	}
	// LiteLLM ends (and so exports) the child first.
	for _, sp := range []*trace.Span{raw, parent} {
		if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp))); err != nil {
			t.Fatal(err)
		}
	}
	erase(t, s, "dsr-litellm", "customer-77")
	for _, n := range flatten(readTrace(t, aud, parent.TraceId).Roots) {
		if !n.GetErased() {
			t.Errorf("after erasing customer-77, span %q of the subject's request is readable: subject %q, llm.openai.messages = %s",
				n.GetSpan().GetName(), n.GetSpan().GetSubjectId(), n.GetSpan().GetAttributes()["llm.openai.messages"])
		}
	}
}

// TestAttackOTLPInvalidUTF8LosesTheWholeExport: one string that is not
// valid UTF-8 anywhere in an export fails the decoding of the whole request
// (proto.Unmarshal and protojson validate every string), so every span of
// the batch is refused with 400, which exporters do not retry. The
// Collector (whose pdata does not validate UTF-8) forwards such strings,
// and OpenTelemetry JS truncates attribute values with String.substring,
// which splits surrogate pairs: its JSON exporter then sends a lone
// "\ud83d" escape (see TestAttackOTLPNodeTruncatedEmoji in cmd/veritrace).
// Bad data in one span must cost that span (partial_success), not the
// batch.
func TestAttackOTLPInvalidUTF8LosesTheWholeExport(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	good, bad := otlpSpan(401), otlpSpan(402)
	bad.Attributes = append(bad.Attributes, kv("gen_ai.output.messages", "Thanks! MARK"))
	pb := bytes.Replace(mustMarshal(otlpExport(good, bad)), []byte("MARK"), []byte("\xf0\x9f\x98!"), 1) // an emoji cut short, same length
	js := bytes.Replace(otlpJSON(t, otlpExport(good, bad)), []byte("MARK"), []byte(`\ud83d`), 1)
	for _, tc := range []struct {
		name, ct string
		body     []byte
	}{
		{"protobuf (as the Collector forwards it)", otlp.ContentProtobuf, pb},
		{"JSON (as OpenTelemetry JS sends a truncated emoji)", otlp.ContentJSON, js},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, err := ing.otlp.post(ctx, otlp.TracesPath, tc.ct, tc.body)
			size, _ := s.l.Size(ctx, "default")
			spans, _ := s.l.SpansOfTrace(ctx, "default", [16]byte(good.TraceId), size)
			if err != nil || len(spans) == 0 {
				t.Errorf("export of a good span and a span with one bad string = %d %v; %d spans stored; want 200 with the good span stored and the other accepted or named in partial_success",
					status, err, len(spans))
			}
		})
	}
}

// TestAttackOTLPValidSpansRefusedForOptionalAttributes: the mapped span is
// validated like a native one (validateSpan), so a valid OTLP span is
// rejected whole, and never stored, for the content of one optional
// attribute: a negative token count, a long name, a long attribute key, a
// long session id, a retrieval document id over 1 KiB (a URL). Exporters do
// not retry partial success, so the span is lost, which is exactly what
// docs/OTLP.md argues against for unverified versions ("a compliance
// record should hold what happened"); nor does docs/OTLP.md list these
// reasons among those a span is rejected for.
func TestAttackOTLPValidSpansRefusedForOptionalAttributes(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	long := strings.Repeat("x", 1100)
	for i, tc := range []struct {
		name string
		edit func(*trace.Span)
	}{
		{"negative input token count", func(sp *trace.Span) {
			sp.Attributes = append([]*common.KeyValue{kv("gen_ai.usage.input_tokens", -1)}, sp.Attributes...)
		}},
		{"negative max_tokens", func(sp *trace.Span) { sp.Attributes = append(sp.Attributes, kv("gen_ai.request.max_tokens", -1)) }},
		{"span name over 1 KiB", func(sp *trace.Span) { sp.Name = "SELECT " + long }},
		{"attribute key over 1 KiB", func(sp *trace.Span) { sp.Attributes = append(sp.Attributes, kv("app."+long, "v")) }},
		{"session id over 1 KiB", func(sp *trace.Span) {
			sp.Attributes = append([]*common.KeyValue{kv("session.id", long)}, sp.Attributes...)
		}},
		{"retrieval document id over 1 KiB", func(sp *trace.Span) {
			sp.Attributes = append(sp.Attributes, kv("gen_ai.retrieval.documents", `[{"id":"https://kb.example/`+long+`","score":0.5}]`))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := otlpSpan(500 + i)
			tc.edit(sp)
			resp, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp)))
			if err != nil {
				t.Fatal(err)
			}
			size, _ := s.l.Size(ctx, "default")
			if spans, _ := s.l.SpansOfTrace(ctx, "default", [16]byte(sp.TraceId), size); !containsSpan(t, s.l, spans, sp.SpanId) {
				t.Errorf("a valid OTLP span was not stored: partial_success %d %q", resp.Msg.GetPartialSuccess().GetRejectedSpans(), clipMsg(resp.Msg.GetPartialSuccess().GetErrorMessage()))
			}
		})
	}
}

func containsSpan(t *testing.T, l *ledger.Ledger, idxs []uint64, spanID []byte) bool {
	t.Helper()
	for _, i := range idxs {
		h, err := l.Header(context.Background(), "default", i)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(h.SpanID[:], spanID) {
			return true
		}
	}
	return false
}

func clipMsg(s string) string {
	if len(s) > 160 {
		return s[:160] + "..."
	}
	return s
}

// TestAttackOTLPErrorBodiesAreNotStatus: the OTLP specification requires
// the body of every 4xx and 5xx answer to be a google.rpc.Status (in the
// request's content type). 415 (other content type or encoding) and 405
// (other method) are answered with http.Error's text/plain body
// (otlp/transport.go ServeHTTP).
func TestAttackOTLPErrorBodiesAreNotStatus(t *testing.T) {
	s := startServer(t, 0)
	token := s.key(t, policy.Ingester, "default")
	good := mustMarshal(otlpExport(otlpSpan(1)))
	for _, tc := range []struct {
		name, method, ct string
		header           []string
		status           int
	}{
		{"unsupported encoding", http.MethodPost, otlp.ContentProtobuf, []string{"Content-Encoding", "br"}, 415},
		{"unsupported content type", http.MethodPost, "text/plain", nil, 415},
		{"method PUT", http.MethodPut, otlp.ContentProtobuf, nil, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, s.url+otlp.TracesPath, bytes.NewReader(good))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tc.ct)
			req.Header.Set("Authorization", "Bearer "+token)
			for i := 0; i+1 < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			st := &spb.Status{}
			ct := resp.Header.Get("Content-Type")
			var derr error
			switch ct {
			case otlp.ContentProtobuf:
				derr = proto.Unmarshal(body.Bytes(), st)
			case otlp.ContentJSON:
				derr = protojson.Unmarshal(body.Bytes(), st)
			default:
				derr = fmt.Errorf("content type %q", ct)
			}
			if resp.StatusCode != tc.status || derr != nil || st.GetMessage() == "" {
				t.Errorf("answer %d, Content-Type %q, body %q (%v); want %d with a google.rpc.Status body", resp.StatusCode, ct, body.String(), derr, tc.status)
			}
		})
	}
}

// nestedKV is an attribute whose value is a key-value list nested depth
// deep.
func nestedKV(key string, depth int) *common.KeyValue {
	v := &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "leaf"}}
	for range depth {
		v = &common.AnyValue{Value: &common.AnyValue_KvlistValue{KvlistValue: &common.KeyValueList{
			Values: []*common.KeyValue{{Key: "k", Value: v}}}}}
	}
	return &common.KeyValue{Key: key, Value: v}
}

// TestAttackOTLPDeepAttributeHidesTrace: a span may carry an attribute
// nested up to the protobuf decoder's limit (10,000 messages deep, about
// 3,300 key-value lists); the mapping clips it for the normalised span but
// the source keeps it. Reading the span renders the source as OTLP JSON
// (otlp.SourceJSON): protojson writes four JSON levels for every three
// messages and encoding/json then refuses more than 10,000, so GetTrace
// and GetEntry fail with an internal error for the whole trace. An
// ingester can make its own traces unreadable to auditors (the bundle,
// whose text view clips at 32 levels, still works).
func TestAttackOTLPDeepAttributeHidesTrace(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	sp := otlpSpan(601)
	sp.Attributes = append(sp.Attributes, nestedKV("app.config", 3200))
	status, body, err := ing.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(sp)))
	if err != nil {
		t.Fatalf("export = %d %v", status, err)
	}
	resp := &coltrace.ExportTraceServiceResponse{}
	if err := proto.Unmarshal(body, resp); err != nil || resp.GetPartialSuccess().GetRejectedSpans() != 0 {
		t.Fatalf("export: %v %v", resp, err)
	}
	if _, err := aud.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: sp.TraceId})); err != nil {
		t.Errorf("GetTrace of a trace whose one span has an attribute nested 3,200 deep = %v; want the trace", err)
	}
	if _, err := aud.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: 0})); err != nil {
		t.Errorf("GetEntry(0) = %v; want the entry", err)
	}
}

// TestAttackOTLPLogEventOutlivesItsSpan: a GenAI event sent as an OTLP log
// record becomes an entry of kind OTHER whose retention class comes from
// its own attributes (prepareSpan, spanClass), not from the span it
// belongs to. A rule that keeps model calls (GENERATION) for 30 days
// therefore leaves the model's input and output, carried by the
// gen_ai.client.inference.operation.details event, under the default
// class: here ten years. The event is "sealed with its span"
// (docs/OTLP.md) but not retained with it.
func TestAttackOTLPLogEventOutlivesItsSpan(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	pol := &v1.RetentionPolicy{FloorDays: 30,
		DefaultRule: &v1.RetentionRule{Days: 3650, Mode: v1.RetentionMode_RETENTION_MODE_GOVERNANCE},
		Rules: []*v1.RetentionRule{{Class: "model-calls", Days: 30, Mode: v1.RetentionMode_RETENTION_MODE_GOVERNANCE,
			Match: &v1.RuleMatch{Kinds: []v1.SpanKind{v1.SpanKind_SPAN_KIND_GENERATION}}}}}
	if _, err := co.retention.SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: pol, Reason: "minimise prompts"})); err != nil {
		t.Fatal(err)
	}
	sp := otlpSpan(701)
	if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp))); err != nil {
		t.Fatal(err)
	}
	if _, err := ing.otlp.logs.CallUnary(ctx, connect.NewRequest(otlpLogs(otlpLogRecord(701)))); err != nil {
		t.Fatal(err)
	}
	classes := map[string]string{}
	for _, n := range flatten(readTrace(t, aud, sp.TraceId).Roots) {
		e, err := aud.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: n.GetIndex()}))
		if err != nil {
			t.Fatal(err)
		}
		classes[n.GetSpan().GetName()] = e.Msg.GetEntry().GetHeader().GetRetentionClass()
	}
	if span, event := classes[sp.Name], classes["gen_ai.client.inference.operation.details"]; span != event {
		t.Errorf("retention class of the model call %q, of its event carrying the model's output %q; want the event retained with its span", span, event)
	}
}

// TestAttackOTLPGRPCBeforeAuthentication: the OTLP gRPC services are
// connect-go unary handlers, which read, inflate and decode the request
// before any interceptor runs, so an unauthenticated peer's request is
// decoded before it is refused (OTLP/HTTP authenticates first, "an
// unauthenticated caller costs no decompression"). Worse, connect-go
// inflates a gzip message past the limit to the end, to report its size
// (compressionPool.Decompress discards the rest), so a 16 MiB gzip bomb,
// the most the envelope limit lets through, costs about 16 GiB of
// inflation, without a key, without counting as a failed authentication
// (the limiter never sees it) and without an access record. docs/OTLP.md
// promises a gzip body is "inflated only up to that limit".
func TestAttackOTLPGRPCBeforeAuthentication(t *testing.T) {
	const limit = 1 << 20
	s := startServerWith(t, Options{OTLP: OTLPOptions{MaxBytes: limit}})
	ctx := context.Background()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	noKey := func(opts ...connect.ClientOption) *connect.Client[rawMsg, rawMsg] {
		return connect.NewClient[rawMsg, rawMsg](&http.Client{Transport: tr}, s.url+otlp.TraceExportProcedure,
			append([]connect.ClientOption{connect.WithGRPC(), connect.WithCodec(rawCodec{})}, opts...)...)
	}
	t.Run("garbage without a key", func(t *testing.T) {
		_, err := noKey().CallUnary(ctx, connect.NewRequest(&rawMsg{[]byte("\xff\xff\xff garbage")}))
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("a garbage request without a key = %v; want unauthenticated before the body is decoded", err)
		}
	})
	t.Run("gzip bomb without a key", func(t *testing.T) {
		const bomb = 8 * limit // 8 MiB of zeros, 8 KiB gzip
		_, err := noKey(connect.WithSendGzip()).CallUnary(ctx, connect.NewRequest(&rawMsg{make([]byte, bomb)}))
		var inflated int
		fmt.Sscanf(strings.TrimPrefix(errMessage(err), "message size "), "%d", &inflated)
		if connect.CodeOf(err) != connect.CodeUnauthenticated || inflated > limit+1 {
			t.Errorf("a gzip bomb of %d bytes without a key = %v: the server inflated %d bytes of it, with a limit of %d; want unauthenticated before inflating, or at most the limit inflated",
				bomb, err, inflated, limit)
		}
	})
}

// TestAttackOTLPLogRetryConflicts: a log record's entry depends on what
// the ledger held when it arrived (the subject of its span, looked up in
// ExportLogs), not only on the bytes sent. An exporter's byte-identical
// retry of a log export, sent after the span has arrived (the first
// attempt timed out at the exporter but was appended), maps to other
// content, and is answered with a partial success that rejects the
// record as a conflict: the issue asks that a byte-identical retry
// succeeds and adds nothing.
func TestAttackOTLPLogRetryConflicts(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	logs := otlpLogs(otlpLogRecord(801))
	if _, err := ing.otlp.logs.CallUnary(ctx, connect.NewRequest(logs)); err != nil {
		t.Fatal(err)
	}
	if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(801)))); err != nil {
		t.Fatal(err)
	}
	retry, err := ing.otlp.logs.CallUnary(ctx, connect.NewRequest(logs))
	if err != nil {
		t.Fatal(err)
	}
	if ps := retry.Msg.GetPartialSuccess(); ps != nil {
		t.Errorf("byte-identical retry of a log export = partial success %d %q; want success adding nothing", ps.GetRejectedLogRecords(), ps.GetErrorMessage())
	}
}

// BenchmarkAttackOTLPLogSubjectLookup measures a log export of n records,
// one for each span of a trace of n spans already in the ledger. ExportLogs
// looks up each record's span (subjectLookup.of) by reading the headers of
// every span of its trace, so the work grows with n squared: an ingester's
// log export of a few MiB against a large trace costs hours. (A benchmark,
// not a test: the growth is in the ns/op of the sizes.)
func BenchmarkAttackOTLPLogSubjectLookup(b *testing.B) {
	for _, n := range []int{250, 500, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := startServer(b, 0)
			ctx := context.Background()
			ing := s.clients("grpc", "", s.key(b, policy.Ingester, "default"))
			var spans []*trace.Span
			var recs []*logs.LogRecord
			for i := range n {
				sp := otlpSpan(i)
				sp.TraceId = otlpTraceID(n)
				spans = append(spans, sp)
				lr := otlpLogRecord(i)
				lr.TraceId = sp.TraceId
				recs = append(recs, lr)
			}
			if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(spans...))); err != nil {
				b.Fatal(err)
			}
			req := connect.NewRequest(otlpLogs(recs...))
			for b.Loop() {
				if _, err := ing.otlp.logs.CallUnary(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestAttackOTLPRetentionMissesLaterAttributes: retention rules match a
// span's string attributes (spanClass), and an OTLP span's attributes are
// the first 255 free ones in key order (otlp.freeAttributes); the rest
// stay only in the source. A span with many attributes (an OpenInference
// span lists its tools' schemas as llm.tools.N.tool.json_schema) loses
// the rule's attribute when its key sorts late, and falls into the default
// class: here kept 30 days instead of the 10 years the compliance rule
// requires.
func TestAttackOTLPRetentionMissesLaterAttributes(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	pol := &v1.RetentionPolicy{FloorDays: 30,
		DefaultRule: &v1.RetentionRule{Days: 30, Mode: v1.RetentionMode_RETENTION_MODE_GOVERNANCE},
		Rules: []*v1.RetentionRule{{Class: "regulated", Days: 3650, Mode: v1.RetentionMode_RETENTION_MODE_COMPLIANCE,
			Match: &v1.RuleMatch{Attributes: map[string]string{"tenant.region": "eu"}}}}}
	if _, err := co.retention.SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: pol, Reason: "EU records"})); err != nil {
		t.Fatal(err)
	}
	sp := otlpSpan(901)
	sp.Attributes = append(sp.Attributes, kv("tenant.region", "eu"))
	for i := range 300 {
		sp.Attributes = append(sp.Attributes, kv(fmt.Sprintf("llm.tools.%d.tool.json_schema", i), `{"type":"function"}`))
	}
	resp, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp)))
	if err != nil || resp.Msg.GetPartialSuccess() != nil {
		t.Fatalf("export = %v, %v", resp, err)
	}
	idx := readTrace(t, aud, sp.TraceId).Roots[0].GetIndex()
	e, err := aud.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: idx}))
	if err != nil {
		t.Fatal(err)
	}
	if c := e.Msg.GetEntry().GetHeader().GetRetentionClass(); c != "regulated" {
		t.Errorf("a span with tenant.region=eu and 300 other attributes has retention class %q; want %q, the rule on tenant.region", c, "regulated")
	}
}
