package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	resource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/rpc"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// benchRequests makes and sends the requests of one load-generator mode.
//
// Every mode costs the generator about the same (it shares the machine
// with the server in a local run): each client builds its spans once, as
// a template, and for each request only sets their ids, times, subjects
// and sessions, then encodes the request (Connect and gRPC encode it
// themselves; OTLP/HTTP into a reused buffer).
type benchRequests struct {
	// client returns a client's fill, which makes its request of n spans
	// numbered from first, reusing the messages of its previous request
	// (which must have been sent).
	client func(text string, noSubject bool) (fill func(first uint64, n int) any)
	send   func(ctx context.Context, req any) error
}

func benchSender(cf clientFlags, mode string) (benchRequests, error) {
	switch mode {
	case "native":
		client := cf.ingest()
		return benchRequests{
			client: func(text string, noSubject bool) func(uint64, int) any {
				req := &v1.AppendSpansRequest{}
				var spans []*v1.Span
				return func(first uint64, n int) any {
					for len(spans) < n {
						spans = append(spans, benchSpan(0, text))
					}
					now := time.Now()
					for j, sp := range spans[:n] {
						patchBenchSpan(sp, first+uint64(j), now, noSubject)
					}
					req.Spans = spans[:n]
					return req
				}
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
		return benchRequests{client: benchOTLPClient, send: func(ctx context.Context, req any) error {
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
	var bufs sync.Pool // *[]byte: the clients' protobuf bodies
	return benchRequests{client: benchOTLPClient, send: func(ctx context.Context, req any) error {
		var body []byte
		if ct == otlp.ContentJSON {
			body = []byte(otlp.JSON(req.(*coltrace.ExportTraceServiceRequest)))
		} else {
			buf, _ := bufs.Get().(*[]byte)
			if buf == nil {
				buf = new([]byte)
			}
			defer bufs.Put(buf)
			var err error
			if *buf, err = (proto.MarshalOptions{}).MarshalAppend((*buf)[:0], req.(*coltrace.ExportTraceServiceRequest)); err != nil {
				return err
			}
			body = *buf
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

// benchOTLPClient is a client's fill for the OTLP modes: an export of n
// GenAI spans carrying what benchSpan carries, in current GenAI
// attributes, under one resource and scope.
func benchOTLPClient(text string, noSubject bool) func(first uint64, n int) any {
	str := func(k, v string) *common.KeyValue {
		return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
	}
	num := func(k string, v int64) *common.KeyValue {
		return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: v}}}
	}
	messages := `[{"role":"user","parts":[{"type":"text","content":"` + text + `"}]}]`
	type tmpl struct {
		span             *trace.Span
		subject, session *common.AnyValue_StringValue
	}
	var spans []tmpl
	var all []*trace.Span
	scope := &trace.ScopeSpans{Scope: &common.InstrumentationScope{Name: "veritrace-bench"}}
	req := &coltrace.ExportTraceServiceRequest{ResourceSpans: []*trace.ResourceSpans{{
		Resource:   &resource.Resource{Attributes: []*common.KeyValue{str("service.name", "veritrace-bench")}},
		ScopeSpans: []*trace.ScopeSpans{scope},
	}}}
	return func(first uint64, n int) any {
		for len(spans) < n {
			t := tmpl{subject: &common.AnyValue_StringValue{}, session: &common.AnyValue_StringValue{}}
			attrs := []*common.KeyValue{
				str("gen_ai.operation.name", "chat"), str("gen_ai.provider.name", "bench"), str("gen_ai.request.model", "bench-model"),
				num("gen_ai.usage.input_tokens", 500), num("gen_ai.usage.output_tokens", 120),
			}
			if !noSubject {
				attrs = append(attrs, &common.KeyValue{Key: "user.id", Value: &common.AnyValue{Value: t.subject}})
			}
			attrs = append(attrs, &common.KeyValue{Key: "session.id", Value: &common.AnyValue{Value: t.session}},
				str("gen_ai.input.messages", messages))
			t.span = &trace.Span{
				TraceId: make([]byte, 16), SpanId: make([]byte, 8), Name: "chat bench-model", Kind: trace.Span_SPAN_KIND_CLIENT,
				Attributes: attrs,
			}
			spans = append(spans, t)
			all = append(all, t.span)
		}
		now := time.Now()
		for j, t := range spans[:n] {
			k := first + uint64(j)
			putBenchIDs(t.span.TraceId, t.span.SpanId, k)
			t.span.StartTimeUnixNano, t.span.EndTimeUnixNano = uint64(now.Add(-time.Second).UnixNano()), uint64(now.UnixNano())
			t.subject.StringValue, t.session.StringValue = benchSubject(k), benchSession(k)
		}
		scope.Spans = all[:n]
		return req
	}
}
