package rpc

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	logs "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	resource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// otlpClients speak OTLP to a test server: gRPC through connect-go, and
// OTLP/HTTP by hand.
type otlpClients struct {
	traces        *connect.Client[coltrace.ExportTraceServiceRequest, coltrace.ExportTraceServiceResponse]
	logs          *connect.Client[collogs.ExportLogsServiceRequest, collogs.ExportLogsServiceResponse]
	hc            *http.Client
	url           string
	tenant, token string
}

func newOTLPClients(hc *http.Client, url, tenant, token string, opts ...connect.ClientOption) otlpClients {
	return otlpClients{
		traces: connect.NewClient[coltrace.ExportTraceServiceRequest, coltrace.ExportTraceServiceResponse](hc, url+otlp.TraceExportProcedure, opts...),
		logs:   connect.NewClient[collogs.ExportLogsServiceRequest, collogs.ExportLogsServiceResponse](hc, url+otlp.LogsExportProcedure, opts...),
		hc:     &http.Client{}, url: url, tenant: tenant, token: token,
	}
}

// httpError is a non-200 OTLP/HTTP answer, with the Connect code of its
// status body (or of its status, for 415, 413 and 405).
type httpError struct {
	status int
	code   connect.Code
	msg    string
	header http.Header
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d (%v): %s", e.status, e.code, e.msg) }

// post sends an OTLP/HTTP request and returns the status and body; a
// non-200 answer is an *httpError whose connect.CodeOf is its code.
func (c otlpClients) post(ctx context.Context, path, contentType string, body []byte, header ...string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.tenant != "" {
		req.Header.Set(TenantHeader, c.tenant)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, out, nil
	}
	he := &httpError{status: resp.StatusCode, msg: string(out), header: resp.Header}
	st := &spb.Status{}
	ct := resp.Header.Get("Content-Type")
	switch {
	case ct == otlp.ContentProtobuf && proto.Unmarshal(out, st) == nil && st.Code != 0,
		ct == otlp.ContentJSON && protojson.Unmarshal(out, st) == nil && st.Code != 0:
		he.code, he.msg = connect.Code(st.Code), st.Message
	default:
		he.code = connect.CodeUnknown
	}
	return resp.StatusCode, out, connect.NewError(he.code, he)
}

var otlpStart = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func kv(k string, v any) *common.KeyValue {
	av := &common.AnyValue{}
	switch x := v.(type) {
	case string:
		av.Value = &common.AnyValue_StringValue{StringValue: x}
	case int:
		av.Value = &common.AnyValue_IntValue{IntValue: int64(x)}
	case float64:
		av.Value = &common.AnyValue_DoubleValue{DoubleValue: x}
	case bool:
		av.Value = &common.AnyValue_BoolValue{BoolValue: x}
	case []string:
		arr := &common.ArrayValue{}
		for _, s := range x {
			arr.Values = append(arr.Values, &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: s}})
		}
		av.Value = &common.AnyValue_ArrayValue{ArrayValue: arr}
	default:
		panic(fmt.Sprintf("kv %T", v))
	}
	return &common.KeyValue{Key: k, Value: av}
}

func otlpTraceID(n int) []byte {
	return bytes.Repeat([]byte{0xa0 + byte(n%16), byte(n / 16)}, 8)
}

// otlpSpan is a GenAI chat span (current conventions) of trace n/100.
func otlpSpan(n int) *trace.Span {
	return &trace.Span{
		TraceId: otlpTraceID(n / 100), SpanId: []byte{0xb0, 0, 0, 0, byte(n >> 16), byte(n >> 8), byte(n), 1},
		Name: "chat gpt-4o", Kind: trace.Span_SPAN_KIND_CLIENT,
		StartTimeUnixNano: uint64(otlpStart.UnixNano()) + uint64(n), EndTimeUnixNano: uint64(otlpStart.Add(time.Second).UnixNano()) + uint64(n),
		Attributes: []*common.KeyValue{
			kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "openai"),
			kv("gen_ai.request.model", "gpt-4o"), kv("gen_ai.usage.input_tokens", 120), kv("gen_ai.usage.output_tokens", 30),
			kv("gen_ai.input.messages", `[{"role":"user","parts":[{"type":"text","content":"where is my refund?"}]}]`),
			kv("user.id", "customer-42"), kv("session.id", "session-7"),
		},
		Status: &trace.Status{Code: trace.Status_STATUS_CODE_OK},
	}
}

// exportAsync sends an OTLP/gRPC export of spans with c in the
// background; its answer's error comes on the channel.
func exportAsync(ctx context.Context, c clients, spans ...*trace.Span) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := c.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(spans...)))
		done <- err
	}()
	return done
}

func otlpExport(spans ...*trace.Span) *coltrace.ExportTraceServiceRequest {
	return &coltrace.ExportTraceServiceRequest{ResourceSpans: []*trace.ResourceSpans{{
		Resource:   &resource.Resource{Attributes: []*common.KeyValue{kv("service.name", "support-bot")}},
		ScopeSpans: []*trace.ScopeSpans{{Scope: &common.InstrumentationScope{Name: "test"}, Spans: spans}},
	}}}
}

func otlpLogRecord(n int) *logs.LogRecord {
	sp := otlpSpan(n)
	return &logs.LogRecord{
		TimeUnixNano: sp.StartTimeUnixNano, TraceId: sp.TraceId, SpanId: sp.SpanId,
		EventName: "gen_ai.client.inference.operation.details",
		Attributes: []*common.KeyValue{
			kv("gen_ai.output.messages", `[{"role":"assistant","parts":[{"type":"text","content":"it is on its way"}],"finish_reason":"stop"}]`),
		},
	}
}

func otlpLogs(recs ...*logs.LogRecord) *collogs.ExportLogsServiceRequest {
	return &collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{{
		Resource:  &resource.Resource{Attributes: []*common.KeyValue{kv("service.name", "support-bot")}},
		ScopeLogs: []*logs.ScopeLogs{{Scope: &common.InstrumentationScope{Name: "test"}, LogRecords: recs}},
	}}}
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// otlpJSON renders an export as OTLP JSON: protojson with the ids turned
// into hex, as OTLP JSON exporters send them.
func otlpJSON(t *testing.T, req *coltrace.ExportTraceServiceRequest) []byte {
	t.Helper()
	return []byte(otlp.JSON(req))
}

// trace reads a trace back as an auditor.
func readTrace(t *testing.T, c clients, traceID []byte) *v1.GetTraceResponse {
	t.Helper()
	resp, err := c.audit.GetTrace(context.Background(), connect.NewRequest(&v1.GetTraceRequest{TraceId: traceID}))
	if err != nil {
		t.Fatalf("GetTrace(%x) = %v", traceID, err)
	}
	return resp.Msg
}

func flatten(nodes []*v1.SpanNode) []*v1.SpanNode {
	var out []*v1.SpanNode
	for _, n := range nodes {
		out = append(out, n)
		out = append(out, flatten(n.GetChildren())...)
	}
	return out
}

// TestOTLPIngest sends the same GenAI span over each transport and reads
// it back: mapped like a native span, with the span as received beside it;
// a byte-identical retry adds nothing.
func TestOTLPIngest(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	for i, tc := range []struct {
		name string
		send func(req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error)
	}{
		{"grpc", func(req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
			resp, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(req))
			if err != nil {
				return nil, err
			}
			return resp.Msg, nil
		}},
		{"grpc-gzip", func(req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
			tr := &http.Transport{Protocols: new(http.Protocols)}
			tr.Protocols.SetUnencryptedHTTP2(true)
			gzc := connect.NewClient[coltrace.ExportTraceServiceRequest, coltrace.ExportTraceServiceResponse](
				&http.Client{Transport: tr}, s.url+otlp.TraceExportProcedure,
				connect.WithGRPC(), connect.WithSendGzip(), connect.WithInterceptors(ClientHeaders("", ing.otlp.token)))
			resp, err := gzc.CallUnary(ctx, connect.NewRequest(req))
			if err != nil {
				return nil, err
			}
			return resp.Msg, nil
		}},
		{"http-protobuf", func(req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
			_, body, err := ing.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(req))
			if err != nil {
				return nil, err
			}
			resp := &coltrace.ExportTraceServiceResponse{}
			return resp, proto.Unmarshal(body, resp)
		}},
		{"http-protobuf-gzip", func(req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
			_, body, err := ing.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, gz(mustMarshal(req)), "Content-Encoding", "gzip")
			if err != nil {
				return nil, err
			}
			resp := &coltrace.ExportTraceServiceResponse{}
			return resp, proto.Unmarshal(body, resp)
		}},
		{"http-json", func(req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
			_, body, err := ing.otlp.post(ctx, otlp.TracesPath, otlp.ContentJSON, otlpJSON(t, req))
			if err != nil {
				return nil, err
			}
			resp := &coltrace.ExportTraceServiceResponse{}
			return resp, protojson.Unmarshal(body, resp)
		}},
		{"http-json-gzip", func(req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
			_, body, err := ing.otlp.post(ctx, otlp.TracesPath, otlp.ContentJSON+"; charset=utf-8", gz(otlpJSON(t, req)), "Content-Encoding", "gzip")
			if err != nil {
				return nil, err
			}
			resp := &coltrace.ExportTraceServiceResponse{}
			return resp, protojson.Unmarshal(body, resp)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := otlpSpan(i * 100)
			parent.Name, parent.Attributes = "invoke_agent support", []*common.KeyValue{kv("gen_ai.operation.name", "invoke_agent"), kv("gen_ai.agent.name", "support")}
			child := otlpSpan(i*100 + 1)
			child.ParentSpanId = parent.SpanId
			req := otlpExport(parent, child)
			resp, err := tc.send(req)
			if err != nil {
				t.Fatalf("export: %v", err)
			}
			if resp.GetPartialSuccess() != nil {
				t.Fatalf("export: partial success %v", resp.GetPartialSuccess())
			}
			size, _ := s.l.Size(ctx, "default")
			if _, err := tc.send(req); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if after, _ := s.l.Size(ctx, "default"); after != size {
				t.Errorf("a byte-identical retry grew the log from %d to %d entries", size, after)
			}
			tr := readTrace(t, aud, parent.TraceId)
			if len(tr.Roots) != 1 || len(tr.Roots[0].Children) != 1 {
				t.Fatalf("GetTrace: %d roots, want 1 with 1 child: %v", len(tr.Roots), tr)
			}
			root, ch := tr.Roots[0], tr.Roots[0].Children[0]
			if root.Kind != v1.SpanKind_SPAN_KIND_AGENT || ch.Kind != v1.SpanKind_SPAN_KIND_GENERATION {
				t.Errorf("kinds = %v, %v; want AGENT, GENERATION", root.Kind, ch.Kind)
			}
			sp := ch.GetSpan()
			if sp.GetSubjectId() != "customer-42" || sp.GetSessionId() != "session-7" || sp.GetModel().GetRequestModel() != "gpt-4o" ||
				sp.GetUsage().GetInputTokens() != 120 || sp.GetContent().GetInputMessages()[0].GetParts()[0].GetText() != "where is my refund?" {
				t.Errorf("mapped span = %v", sp)
			}
			// The source is the span as sent; otlp_json shows it under its
			// resource and scope, which the trace's resource entry holds.
			got := &trace.Span{}
			if err := proto.Unmarshal(sp.GetOtlp().GetSpan(), got); err != nil || !proto.Equal(got, child) {
				t.Errorf("stored source = %v (%v), want the span as sent %v", got, err, child)
			}
			shown, err := otlp.Decode(otlp.Traces, otlp.ContentJSON, []byte(`{"resourceSpans":[`+ch.GetOtlpJson()+`]}`))
			if err != nil || len(shown.Groups) != 1 || len(shown.Groups[0].Items) != 1 ||
				!proto.Equal(shown.Groups[0].Resource, req.ResourceSpans[0].Resource) || !proto.Equal(shown.Groups[0].Scope, req.ResourceSpans[0].ScopeSpans[0].Scope) ||
				!proto.Equal(shown.Groups[0].Items[0].Span, child) {
				t.Errorf("otlp_json does not show the span as sent with its resource and scope (%v):\n%s", err, ch.GetOtlpJson())
			}
			if !strings.Contains(ch.GetOtlpJson(), `"traceId": "`+hex.EncodeToString(child.TraceId)+`"`) {
				t.Errorf("otlp_json does not show the hex trace id: %s", ch.GetOtlpJson())
			}
			e, err := aud.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: ch.Index}))
			if err != nil {
				t.Fatal(err)
			}
			if e.Msg.Entry.GetOtlpJson() != ch.GetOtlpJson() || !proto.Equal(e.Msg.Entry.GetSpan().GetOtlp(), sp.GetOtlp()) {
				t.Errorf("GetEntry does not show the OTLP source")
			}
		})
	}
}
