package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/audit/bundle"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
)

// rawCodec sends bytes as they are, to put garbage on the gRPC wire.
type rawCodec struct{}

type rawMsg struct{ b []byte }

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(m any) ([]byte, error) {
	return m.(*rawMsg).b, nil
}
func (rawCodec) Unmarshal(b []byte, m any) error {
	if pm, ok := m.(proto.Message); ok { // error details
		return proto.Unmarshal(b, pm)
	}
	m.(*rawMsg).b = append([]byte(nil), b...)
	return nil
}

// TestOTLPBadInput sends every class of bad input over OTLP/HTTP and gRPC
// and checks the status the OTLP specification prescribes: nothing is
// stored, and bad data never gets a 5xx.
func TestOTLPBadInput(t *testing.T) {
	const limit = 64 << 10
	s := startServerWith(t, Options{OTLP: OTLPOptions{MaxBytes: limit}})
	ctx := context.Background()
	s.tenant(t, "acme")
	token := s.key(t, policy.Ingester, "default")
	ing := s.clients("grpc", "", token)
	good := mustMarshal(otlpExport(otlpSpan(1)))
	goodJSON := otlpJSON(t, otlpExport(otlpSpan(1)))
	badHex := bytes.Replace(goodJSON, []byte(`"traceId": "a0`), []byte(`"traceId": "zz`), 1)
	b64 := bytes.Replace(goodJSON, []byte(`"spanId": "b000000000000101"`), []byte(`"spanId": "sAAAAAAAAQE="`), 1)
	if bytes.Equal(badHex, goodJSON) || bytes.Equal(b64, goodJSON) {
		t.Fatal("test bodies not made")
	}
	bomb := gz(make([]byte, 64*limit)) // 4 MiB of zeros in a few KiB
	big := mustMarshal(otlpExport(func() *trace.Span {
		sp := otlpSpan(2)
		sp.Attributes = append(sp.Attributes, kv("pad", strings.Repeat("x", limit)))
		return sp
	}()))
	before, _ := s.l.Size(ctx, "default")
	for _, tc := range []struct {
		name         string
		c            otlpClients
		method, ct   string
		body         []byte
		header       []string
		status       int
		code         connect.Code
		msgSubstring string
	}{
		{"garbage protobuf", ing.otlp, "", otlp.ContentProtobuf, []byte("\xff\xff\xff garbage"), nil, 400, connect.CodeInvalidArgument, "not a valid OTLP protobuf"},
		{"garbage JSON", ing.otlp, "", otlp.ContentJSON, []byte(`{"resourceSpans": [`), nil, 400, connect.CodeInvalidArgument, "not a valid OTLP JSON"},
		{"JSON of the wrong shape", ing.otlp, "", otlp.ContentJSON, []byte(`{"resourceSpans": {"x": 1}}`), nil, 400, connect.CodeInvalidArgument, "not a valid OTLP JSON"},
		{"wrong content type", ing.otlp, "", "text/plain", good, nil, 415, connect.CodeUnknown, ""},
		{"no content type", ing.otlp, "", "", good, nil, 415, connect.CodeUnknown, ""},
		{"unsupported encoding", ing.otlp, "", otlp.ContentProtobuf, good, []string{"Content-Encoding", "br"}, 415, connect.CodeUnknown, ""},
		{"bad gzip", ing.otlp, "", otlp.ContentProtobuf, []byte("not gzip at all"), []string{"Content-Encoding", "gzip"}, 400, connect.CodeInvalidArgument, "gzip"},
		{"oversize", ing.otlp, "", otlp.ContentProtobuf, big, nil, 413, connect.CodeResourceExhausted, "after decompression"},
		{"gzip bomb", ing.otlp, "", otlp.ContentProtobuf, bomb, []string{"Content-Encoding", "gzip"}, 413, connect.CodeResourceExhausted, "after decompression"},
		{"GET", ing.otlp, http.MethodGet, otlp.ContentProtobuf, nil, nil, 405, connect.CodeUnknown, ""},
		{"no key", s.clients("grpc", "", "").otlp, "", otlp.ContentProtobuf, good, nil, 401, connect.CodeUnauthenticated, "missing API key"},
		{"unknown key", s.clients("grpc", "", "vtk_0000000000000000_"+strings.Repeat("A", 43)).otlp, "", otlp.ContentJSON, goodJSON, nil, 401, connect.CodeUnauthenticated, "invalid API key"},
		{"foreign tenant", s.clients("grpc", "acme", token).otlp, "", otlp.ContentProtobuf, good, nil, 403, connect.CodePermissionDenied, `may not access tenant "acme"`},
		{"auditor key", s.clients("grpc", "", s.key(t, policy.Auditor, "default")).otlp, "", otlp.ContentProtobuf, good, nil, 403, connect.CodePermissionDenied, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var status int
			var err error
			if tc.method == http.MethodGet {
				resp, gerr := http.Get(s.url + otlp.TracesPath)
				if gerr != nil {
					t.Fatal(gerr)
				}
				resp.Body.Close()
				status = resp.StatusCode
			} else {
				status, _, err = tc.c.post(ctx, otlp.TracesPath, tc.ct, tc.body, tc.header...)
			}
			if status != tc.status {
				t.Fatalf("status = %d (%v), want %d", status, err, tc.status)
			}
			var he *httpError
			if tc.code != connect.CodeUnknown && (!errors.As(err, &he) || he.code != tc.code || !strings.Contains(he.msg, tc.msgSubstring)) {
				t.Errorf("answer = %v, want %v naming %q", err, tc.code, tc.msgSubstring)
			}
		})
	}
	// A bad id costs only its span: named in partial_success, the rest of
	// the export (here, nothing) appended.
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"bad hex trace id", badHex, "resourceSpans[0].scopeSpans[0].spans[0].traceId: must be 32 hex digits"},
		{"base64 span id", b64, "resourceSpans[0].scopeSpans[0].spans[0].spanId: must be 16 hex digits"},
	} {
		status, body, err := ing.otlp.post(ctx, otlp.TracesPath, otlp.ContentJSON, tc.body)
		resp := &coltrace.ExportTraceServiceResponse{}
		if err != nil || protojson.Unmarshal(body, resp) != nil || resp.GetPartialSuccess().GetRejectedSpans() != 1 ||
			!strings.Contains(resp.GetPartialSuccess().GetErrorMessage(), tc.want) {
			t.Errorf("%s: %d %v %v; want 200 with the span rejected naming %q", tc.name, status, resp, err, tc.want)
		}
	}
	// gRPC: the same classes where gRPC has them.
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	raw := connect.NewClient[rawMsg, rawMsg](&http.Client{Transport: tr}, s.url+otlp.TraceExportProcedure,
		connect.WithGRPC(), connect.WithCodec(rawCodec{}), connect.WithInterceptors(ClientHeaders("", token)))
	for _, tc := range []struct {
		name string
		body []byte
		c    *connect.Client[rawMsg, rawMsg]
		code connect.Code
	}{
		{"grpc garbage", []byte("\xff\xff\xff garbage"), raw, connect.CodeInvalidArgument},
		{"grpc oversize", big, raw, connect.CodeResourceExhausted},
		{"grpc no key", good, connect.NewClient[rawMsg, rawMsg](&http.Client{Transport: tr}, s.url+otlp.TraceExportProcedure,
			connect.WithGRPC(), connect.WithCodec(rawCodec{})), connect.CodeUnauthenticated},
		{"grpc foreign tenant", good, connect.NewClient[rawMsg, rawMsg](&http.Client{Transport: tr}, s.url+otlp.TraceExportProcedure,
			connect.WithGRPC(), connect.WithCodec(rawCodec{}), connect.WithInterceptors(ClientHeaders("acme", token))), connect.CodePermissionDenied},
	} {
		if _, err := tc.c.CallUnary(ctx, connect.NewRequest(&rawMsg{tc.body})); connect.CodeOf(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
	// Nothing of the refused exports is stored (the log holds only the
	// access record of the auditor's refusal).
	size, _ := s.l.Size(ctx, "default")
	if spans, _ := s.l.SpansOfTrace(ctx, "default", [16]byte(otlpSpan(1).TraceId), size); len(spans) != 0 || size != before+1 {
		t.Errorf("refused exports stored %d spans; the log grew from %d to %d entries", len(spans), before, size)
	}
	// The refusals of keys are in the access log, like the Connect API's.
	if !strings.Contains(accessLogText(t, s), otlp.TracesPath) {
		t.Errorf("the system access log does not record the refused OTLP/HTTP calls")
	}
}

// accessLogText is the system tenant's access log as text.
func accessLogText(t *testing.T, s *testServer) string {
	t.Helper()
	c := s.clients("connect", "system", s.key(t, policy.Admin, "*"))
	resp, err := c.ledger.ListAccessLog(context.Background(), connect.NewRequest(&v1.ListAccessLogRequest{PageSize: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range resp.Msg.Entries {
		fmt.Fprintln(&b, e.Record.GetProcedure(), e.Record.GetCode(), e.Record.GetReason())
	}
	return b.String()
}

// TestOTLPPartialSuccess: spans that cannot be accepted are reported, each
// with its reason, and the rest appended.
func TestOTLPPartialSuccess(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	endBefore := otlpSpan(2)
	endBefore.EndTimeUnixNano = endBefore.StartTimeUnixNano - 1
	noName := otlpSpan(3)
	noName.Name = ""
	shortID := otlpSpan(4)
	shortID.TraceId = []byte{1, 2, 3}
	noStart := otlpSpan(5)
	noStart.StartTimeUnixNano = 0
	resp, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(1), endBefore, noName, shortID, noStart, otlpSpan(6))))
	if err != nil {
		t.Fatal(err)
	}
	ps := resp.Msg.GetPartialSuccess()
	if ps.GetRejectedSpans() != 4 {
		t.Errorf("rejected_spans = %d, want 4 (%s)", ps.GetRejectedSpans(), ps.GetErrorMessage())
	}
	for _, want := range []string{
		"spans[1].end_time: is before start_time", "spans[2].name: required",
		"spans[3].trace_id: must be 16 bytes, got 3", "spans[4].start_time: required",
	} {
		if !strings.Contains(ps.GetErrorMessage(), "resourceSpans[0].scopeSpans[0]."+want) {
			t.Errorf("error_message %q does not say %q", ps.GetErrorMessage(), want)
		}
	}
	if items, _ := otlpEntries(t, s.l, "default"); items != 2 {
		t.Errorf("%d spans in the log, want the 2 good spans", items)
	}
	// Same ids, other content: rejected as a conflict, the rest appended.
	changed := otlpSpan(1)
	changed.Name = "chat gpt-4o-mini"
	resp, err = ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(changed, otlpSpan(7))))
	if err != nil {
		t.Fatal(err)
	}
	if ps := resp.Msg.GetPartialSuccess(); ps.GetRejectedSpans() != 1 || !strings.Contains(ps.GetErrorMessage(), "same identity exists") {
		t.Errorf("conflict: partial success %v, want 1 span rejected as a conflict", ps)
	}
	if items, _ := otlpEntries(t, s.l, "default"); items != 3 {
		t.Errorf("%d spans in the log, want 3", items)
	}
}

// TestOTLPLargeExport: an export of more spans than one ledger batch is
// appended in batches, all of it.
func TestOTLPLargeExport(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	var spans []*trace.Span
	for i := range 1500 {
		spans = append(spans, otlpSpan(i))
	}
	req := otlpExport(spans...)
	for range 2 { // the second time, all duplicates
		resp, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(req))
		if err != nil || resp.Msg.GetPartialSuccess() != nil {
			t.Fatalf("export = %v, %v", resp, err)
		}
		if items, resources := otlpEntries(t, s.l, "default"); items != 1500 || resources != 15 {
			t.Fatalf("the log holds %d spans and %d resource entries, want 1500 and one for each of the 15 traces", items, resources)
		}
	}
}

// TestOTLPVersions: version references by id or by name and label resolve
// to registered versions; others are reported and recorded as unverified.
func TestOTLPVersions(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	reg, err := ing.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{
		Kind: v1.VersionKind_VERSION_KIND_PROMPT, Name: "support-answer", Label: "7", Content: []byte("Be kind."),
	}))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := ing.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{
		Kind: v1.VersionKind_VERSION_KIND_POLICY, Name: "refunds", Label: "2026-11", Content: []byte("Refunds within 30 days."),
	}))
	if err != nil {
		t.Fatal(err)
	}
	mk := func(n int, attrs ...*common.KeyValue) *trace.Span {
		sp := otlpSpan(n)
		sp.Attributes = append(sp.Attributes, attrs...)
		return sp
	}
	unknownID := strings.Repeat("ab", 32)
	spans := []*trace.Span{
		mk(1, kv("gen_ai.prompt.name", "support-answer"), kv("llm.prompt_template.version", "7")),
		mk(2, kv("langfuse.observation.prompt.name", "support-answer"), kv("langfuse.observation.prompt.version", 7)),
		mk(3, kv("veritrace.prompt.version", reg.Msg.Id), kv("veritrace.policy.name", "refunds"), kv("veritrace.policy.label", "2026-11")),
		mk(4, kv("gen_ai.prompt.name", "support-answer"), kv("llm.prompt_template.version", "8")),
		mk(5, kv("veritrace.pipeline.version", unknownID)),
		mk(6, kv("veritrace.policy.version", reg.Msg.Id)), // a prompt's id as a policy
		mk(7, kv("gen_ai.prompt.name", "support-answer")),
	}
	// An unverified reference on a span with more attributes than a span
	// keeps: the attributes dropped for it are chosen deterministically.
	many := mk(8, kv("veritrace.prompt.version", unknownID))
	for i := range 300 {
		many.Attributes = append(many.Attributes, kv(fmt.Sprintf("app.attr.%03d", i), i))
	}
	spans = append(spans, many)
	resp, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(spans...)))
	if err != nil {
		t.Fatal(err)
	}
	again, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(spans...)))
	if err != nil || strings.Contains(again.Msg.GetPartialSuccess().GetErrorMessage(), "same identity") {
		t.Fatalf("retry = %v, %v; want duplicates, not conflicts", again.Msg.GetPartialSuccess(), err)
	}
	ps := resp.Msg.GetPartialSuccess()
	if ps.GetRejectedSpans() != 0 {
		t.Errorf("rejected_spans = %d, want 0: unverified references are recorded, not refused", ps.GetRejectedSpans())
	}
	for _, want := range []string{
		`spans[3]: prompt "support-answer" label "8" is not registered`,
		"spans[4]: pipeline version " + unknownID + " is not registered",
		"spans[5]: version " + reg.Msg.Id + " is not a policy version",
		`spans[6]: prompt reference "support-answer" label "" names no version`,
	} {
		if !strings.Contains(ps.GetErrorMessage(), want) {
			t.Errorf("error_message %q does not say %q", ps.GetErrorMessage(), want)
		}
	}
	tr := readTrace(t, aud, spans[0].TraceId)
	byName := map[byte]*v1.Span{}
	for _, n := range flatten(tr.Roots) {
		byName[n.GetSpanId()[7-1]] = n.GetSpan()
	}
	for i, want := range []*v1.VersionRefs{
		{Prompt: reg.Msg.Id}, {Prompt: reg.Msg.Id}, {Prompt: reg.Msg.Id, Policy: pol.Msg.Id}, nil, nil, nil, nil, nil,
	} {
		sp := byName[byte(i+1)]
		if !proto.Equal(sp.GetVersions(), want) {
			t.Errorf("span %d versions = %v, want %v", i+1, sp.GetVersions(), want)
		}
		_, unverified := sp.GetAttributes()[AttrUnverifiedVersions]
		if unverified != (want == nil) {
			t.Errorf("span %d: %s present = %v, want %v", i+1, AttrUnverifiedVersions, unverified, want == nil)
		}
	}
	if len(tr.Versions) != 2 {
		t.Errorf("GetTrace lists %d versions, want the prompt and the policy", len(tr.Versions))
	}
}

// TestOTLPLogs: GenAI events sent as OTLP logs are stored as events of
// their span, sealed under the span's subject (so erasure takes them too);
// a log record without a span is reported.
func TestOTLPLogs(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	sp := otlpSpan(1)
	if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp))); err != nil {
		t.Fatal(err)
	}
	orphan := otlpLogRecord(2)
	orphan.TraceId, orphan.SpanId = nil, nil
	req := otlpLogs(otlpLogRecord(1), orphan)
	for _, send := range []func() (int64, string, error){
		func() (int64, string, error) {
			resp, err := ing.otlp.logs.CallUnary(ctx, connect.NewRequest(req))
			return resp.Msg.GetPartialSuccess().GetRejectedLogRecords(), resp.Msg.GetPartialSuccess().GetErrorMessage(), err
		},
		func() (int64, string, error) { // the same over OTLP/HTTP: a duplicate
			_, body, err := ing.otlp.post(ctx, otlp.LogsPath, otlp.ContentProtobuf, mustMarshal(req))
			if err != nil {
				return 0, "", err
			}
			resp := &collogs.ExportLogsServiceResponse{}
			err = proto.Unmarshal(body, resp)
			return resp.GetPartialSuccess().GetRejectedLogRecords(), resp.GetPartialSuccess().GetErrorMessage(), err
		},
	} {
		rejected, msg, err := send()
		if err != nil {
			t.Fatal(err)
		}
		if rejected != 1 || !strings.Contains(msg, "logRecords[1]: has no trace_id and span_id") {
			t.Errorf("partial success = %d, %q; want the orphan record rejected", rejected, msg)
		}
	}
	if items, _ := otlpEntries(t, s.l, "default"); items != 2 {
		t.Errorf("%d spans and events in the log, want the span and one event", items)
	}
	tr := readTrace(t, aud, sp.TraceId)
	if len(tr.Roots) != 1 || len(tr.Roots[0].Children) != 1 {
		t.Fatalf("GetTrace = %v, want the span with its event as a child", tr)
	}
	ev := tr.Roots[0].Children[0]
	// The event names no subject itself: its payload says none (it must
	// map the same whatever the log holds, for retries), and it is sealed
	// under its trace's subject, which the erasure below shows.
	if ev.GetSpan().GetName() != "gen_ai.client.inference.operation.details" || len(ev.GetSpan().GetOtlp().GetLogRecord()) == 0 ||
		ev.GetSpan().GetContent().GetOutputMessages()[0].GetParts()[0].GetText() != "it is on its way" || ev.GetSpan().GetSubjectId() != "" {
		t.Errorf("event = %v", ev.GetSpan())
	}
	if _, err := co.retention.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: "dsr-1", SubjectId: "customer-42", LegalBasis: "GDPR Art. 17", Reason: "request"})); err != nil {
		t.Fatal(err)
	}
	for _, n := range flatten(readTrace(t, aud, sp.TraceId).Roots) {
		if !n.GetErased() {
			t.Errorf("after erasing the subject, entry %d (%s) is not erased", n.GetIndex(), n.GetSpan().GetName())
		}
	}
}

// TestOTLPPieces: a trace whose spans arrive in several exports, children
// before their parent and minutes apart, is one decision path.
func TestOTLPPieces(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	root, child, grandchild := otlpSpan(10), otlpSpan(11), otlpSpan(12)
	root.Attributes = []*common.KeyValue{kv("gen_ai.operation.name", "invoke_agent")}
	child.ParentSpanId, grandchild.ParentSpanId = root.SpanId, child.SpanId
	root.EndTimeUnixNano += uint64(5 * 60 * 1e9) // the agent ends minutes later
	for _, sp := range []*trace.Span{grandchild, child, root} {
		if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp))); err != nil {
			t.Fatal(err)
		}
	}
	tr := readTrace(t, aud, root.TraceId)
	if len(tr.Roots) != 1 || !bytes.Equal(tr.Roots[0].SpanId, root.SpanId) || len(tr.Roots[0].Children) != 1 ||
		len(tr.Roots[0].Children[0].Children) != 1 || !bytes.Equal(tr.Roots[0].Children[0].Children[0].SpanId, grandchild.SpanId) {
		t.Errorf("GetTrace = %v, want root > child > grandchild", tr)
	}
}

// TestOTLPTenantConfig: a tenant may name other attributes as the subject
// and the session.
func TestOTLPTenantConfig(t *testing.T) {
	s := startServerWith(t, Options{OTLP: OTLPOptions{Tenants: map[string]otlp.Config{
		"acme": {SubjectAttributes: []string{"app.customer_id"}, SessionAttributes: []string{"app.ticket"}},
	}}})
	ctx := context.Background()
	s.tenant(t, "acme")
	for _, tenant := range []string{"acme", "default"} {
		ing := s.clients("grpc", tenant, s.key(t, policy.Ingester, tenant))
		aud := s.clients("connect", tenant, s.key(t, policy.Auditor, tenant))
		sp := otlpSpan(1)
		sp.Attributes = append(sp.Attributes, kv("app.customer_id", "c-9"), kv("app.ticket", "T-1"))
		if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp))); err != nil {
			t.Fatal(err)
		}
		got := readTrace(t, aud, sp.TraceId).Roots[0].GetSpan()
		wantSubject, wantSession := "customer-42", "session-7"
		if tenant == "acme" {
			wantSubject, wantSession = "c-9", "T-1"
		}
		if got.GetSubjectId() != wantSubject || got.GetSessionId() != wantSession {
			t.Errorf("%s: subject %q session %q, want %q %q", tenant, got.GetSubjectId(), got.GetSessionId(), wantSubject, wantSession)
		}
	}
}

// TestOTLPOverload: when the ledger cannot take appends (shutting down,
// or refusing for load or disk), OTLP/HTTP answers 503 or 429 with
// Retry-After and gRPC UNAVAILABLE, all of which exporters retry; nothing
// is stored.
func TestOTLPOverload(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
	}{
		{"shutting down", ledger.ErrClosed, http.StatusServiceUnavailable},
		{"resource exhausted", connect.NewError(connect.CodeResourceExhausted, errors.New("disk reserve reached")), http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServerWith(t, Options{otlpAppend: func(context.Context, string, []ledger.Record) ([]ledger.Receipt, error) {
				return nil, tc.err
			}})
			ctx := context.Background()
			ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
			status, _, err := ing.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(otlpSpan(1))))
			var he *httpError
			if !errors.As(err, &he) || he.status != tc.status || he.header.Get("Retry-After") == "" {
				t.Errorf("OTLP/HTTP = %d, %v; want %d with Retry-After", status, err, tc.status)
			}
			if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(1)))); connect.CodeOf(err) != connect.CodeUnavailable {
				t.Errorf("gRPC = %v, want unavailable", err)
			}
		})
	}
}

// otlpEntries counts a tenant's span entries: OTLP spans and events
// (items), and resource entries (docs/OTLP.md). Erased entries count as
// items.
func otlpEntries(t *testing.T, l *ledger.Ledger, tenant string) (items, resources int) {
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
		if e.Header.Kind != format.KindSpan {
			continue
		}
		sp := &v1.Span{}
		if !e.Erased && proto.Unmarshal(e.Payload, sp) == nil && bundle.FormOf(sp.GetOtlp()) == bundle.OTLPResource {
			resources++
		} else {
			items++
		}
	}
	return items, resources
}
