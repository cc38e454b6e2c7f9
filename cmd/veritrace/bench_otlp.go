package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"connectrpc.com/connect"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	resource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/rpc"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// benchRequests makes and sends the requests of one load-generator mode.
type benchRequests struct {
	// build makes a request of n spans numbered from first.
	build func(first uint64, n int, text string) any
	send  func(ctx context.Context, req any) error
}

func benchSender(cf clientFlags, mode string) (benchRequests, error) {
	switch mode {
	case "native":
		client := cf.ingest()
		return benchRequests{
			build: func(first uint64, n int, text string) any {
				req := &v1.AppendSpansRequest{Spans: make([]*v1.Span, n)}
				for j := range req.Spans {
					req.Spans[j] = benchSpan(first+uint64(j), text)
				}
				return req
			},
			send: func(ctx context.Context, req any) error {
				_, err := client.AppendSpans(ctx, connect.NewRequest(req.(*v1.AppendSpansRequest)))
				return err
			},
		}, nil
	}
	if err := cf.loadKey(); err != nil {
		return benchRequests{}, err
	}
	token := cf.token
	cf.grpc = mode == "otlp-grpc"
	hc := cf.httpClient()
	if mode == "otlp-grpc" {
		client := connect.NewClient[coltrace.ExportTraceServiceRequest, coltrace.ExportTraceServiceResponse](
			hc, cf.addr+otlp.TraceExportProcedure, connect.WithGRPC(), connect.WithInterceptors(rpc.ClientHeaders(cf.tenant, token)))
		return benchRequests{build: benchOTLPExport, send: func(ctx context.Context, req any) error {
			resp, err := client.CallUnary(ctx, connect.NewRequest(req.(*coltrace.ExportTraceServiceRequest)))
			if err == nil && resp.Msg.GetPartialSuccess().GetRejectedSpans() > 0 {
				err = fmt.Errorf("partial success: %s", resp.Msg.GetPartialSuccess().GetErrorMessage())
			}
			return err
		}}, nil
	}
	ct := otlp.ContentProtobuf
	if mode == "otlp-http-json" {
		ct = otlp.ContentJSON
	}
	return benchRequests{build: benchOTLPExport, send: func(ctx context.Context, req any) error {
		body, err := otlp.Marshal(ct, req.(*coltrace.ExportTraceServiceRequest))
		if err != nil {
			return err
		}
		if ct == otlp.ContentJSON {
			// protojson writes ids in base64; OTLP JSON wants hex.
			body, err = otlpJSONIDs(req.(*coltrace.ExportTraceServiceRequest))
			if err != nil {
				return err
			}
		}
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, cf.addr+otlp.TracesPath, bytes.NewReader(body))
		if err != nil {
			return err
		}
		hr.Header.Set("Content-Type", ct)
		hr.Header.Set("Authorization", "Bearer "+token)
		if cf.tenant != "" {
			hr.Header.Set(rpc.TenantHeader, cf.tenant)
		}
		resp, err := hc.Do(hr)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return &httpStatusError{status: resp.StatusCode, body: string(out)}
		}
		return nil
	}}, nil
}

// httpStatusError is an OTLP/HTTP export answered with another status
// than 200.
type httpStatusError struct {
	status int
	body   string
}

func (e *httpStatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

// otlpJSONIDs renders an export as OTLP JSON.
func otlpJSONIDs(req *coltrace.ExportTraceServiceRequest) ([]byte, error) {
	return []byte(otlp.JSON(req)), nil
}

// benchOTLPExport makes an OTLP export of n GenAI spans carrying what
// benchSpan carries, in current GenAI attributes.
func benchOTLPExport(first uint64, n int, text string) any {
	str := func(k, v string) *common.KeyValue {
		return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
	}
	num := func(k string, v int64) *common.KeyValue {
		return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: v}}}
	}
	messages := `[{"role":"user","parts":[{"type":"text","content":"` + text + `"}]}]`
	spans := make([]*trace.Span, n)
	now := time.Now()
	for j := range spans {
		k := first + uint64(j)
		tid := make([]byte, 16)
		copy(tid, benchRun[:])
		binary.BigEndian.PutUint64(tid[8:], k/8+1)
		spans[j] = &trace.Span{
			TraceId: tid, SpanId: binary.BigEndian.AppendUint64(nil, k), Name: "chat bench-model", Kind: trace.Span_SPAN_KIND_CLIENT,
			StartTimeUnixNano: uint64(now.Add(-time.Second).UnixNano()), EndTimeUnixNano: uint64(now.UnixNano()),
			Attributes: []*common.KeyValue{
				str("gen_ai.operation.name", "chat"), str("gen_ai.provider.name", "bench"), str("gen_ai.request.model", "bench-model"),
				num("gen_ai.usage.input_tokens", 500), num("gen_ai.usage.output_tokens", 120),
				str("user.id", fmt.Sprintf("bench-user-%d", k%1000)), str("session.id", fmt.Sprintf("session-%d", k/8)),
				str("gen_ai.input.messages", messages),
			},
		}
	}
	return &coltrace.ExportTraceServiceRequest{ResourceSpans: []*trace.ResourceSpans{{
		Resource:   &resource.Resource{Attributes: []*common.KeyValue{str("service.name", "veritrace-bench")}},
		ScopeSpans: []*trace.ScopeSpans{{Scope: &common.InstrumentationScope{Name: "veritrace-bench"}, Spans: spans}},
	}}}
}

// withoutSubjects removes the end user from a request's spans (bench
// --no-subject).
func withoutSubjects(req any) any {
	switch r := req.(type) {
	case *v1.AppendSpansRequest:
		for _, sp := range r.Spans {
			sp.SubjectId = ""
		}
	case *coltrace.ExportTraceServiceRequest:
		for _, rs := range r.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					sp.Attributes = slices.DeleteFunc(sp.Attributes, func(kv *common.KeyValue) bool { return kv.GetKey() == "user.id" })
				}
			}
		}
	}
	return req
}
