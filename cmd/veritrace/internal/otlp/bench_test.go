package otlp

import (
	"fmt"
	"strings"
	"testing"

	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	resource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
)

// benchExport is an export of n GenAI chat spans of about 2 KiB each, like
// the load generator's.
func benchExport(n int) *trace.ResourceSpans {
	str := func(k, v string) *common.KeyValue {
		return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
	}
	text := strings.Repeat("0123456789abcdef", 115)
	rs := &trace.ResourceSpans{Resource: &resource.Resource{Attributes: []*common.KeyValue{str("service.name", "bench")}},
		ScopeSpans: []*trace.ScopeSpans{{Scope: &common.InstrumentationScope{Name: "bench"}}}}
	for i := range n {
		rs.ScopeSpans[0].Spans = append(rs.ScopeSpans[0].Spans, &trace.Span{
			TraceId: make([]byte, 16), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, byte(i)}, Name: "chat bench-model",
			StartTimeUnixNano: 1, EndTimeUnixNano: 2,
			Attributes: []*common.KeyValue{
				str("gen_ai.operation.name", "chat"), str("gen_ai.provider.name", "bench"), str("gen_ai.request.model", "bench-model"),
				str("user.id", fmt.Sprint("bench-user-", i)), str("session.id", "s"),
				str("gen_ai.input.messages", `[{"role":"user","parts":[{"type":"text","content":"`+text+`"}]}]`),
			},
		})
	}
	return rs
}

// BenchmarkMapSpan: the mapping of one 2 KiB GenAI span, source encoding
// included.
func BenchmarkMapSpan(b *testing.B) {
	rs := benchExport(1)
	_, g := mapOne(b, rs, rs.ScopeSpans[0], rs.ScopeSpans[0].Spans[0])
	b.ReportAllocs()
	for b.Loop() {
		m := MapSpan(g, g.Items[0], Config{})
		if _, err := deterministic.Marshal(m.Span); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode: splitting and decoding a 100-span export.
func BenchmarkDecode(b *testing.B) {
	for _, ct := range []string{ContentProtobuf, ContentJSON} {
		b.Run(ct, func(b *testing.B) {
			req := &coltrace.ExportTraceServiceRequest{ResourceSpans: []*trace.ResourceSpans{benchExport(100)}}
			body, _ := proto.Marshal(req)
			if ct == ContentJSON {
				body = []byte(JSON(req))
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(Traces, ct, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
