package otlp

import (
	"strings"
	"testing"

	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	resource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
)

func strKV(k, v string) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
}

// TestAttackMappingContentEvents: the deprecated GenAI conventions (semantic
// conventions 1.26 to 1.27) carry a model call's content in the span events
// gen_ai.content.prompt (attribute gen_ai.prompt) and
// gen_ai.content.completion (attribute gen_ai.completion), as OpenLLMetry,
// LiteLLM's default mode and many hand instrumentations still emit them.
// The mapping reads neither (mapContent, eventMessages), so such a span's
// normalised content is empty: GetTrace and the bundle report show no
// input or output, though the issue asks for the deprecated message events
// to be mapped.
func TestAttackMappingContentEvents(t *testing.T) {
	sp := &trace.Span{
		TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), Name: "chat gpt-4",
		StartTimeUnixNano: 1763719200000000000, EndTimeUnixNano: 1763719201000000000,
		Attributes: []*common.KeyValue{strKV("gen_ai.system", "openai"), strKV("gen_ai.request.model", "gpt-4")},
		Events: []*trace.Span_Event{
			{Name: "gen_ai.content.prompt", TimeUnixNano: 1763719200000000000, Attributes: []*common.KeyValue{
				strKV("gen_ai.prompt", `[{"role": "user", "content": "Where is my refund?"}]`)}},
			{Name: "gen_ai.content.completion", TimeUnixNano: 1763719201000000000, Attributes: []*common.KeyValue{
				strKV("gen_ai.completion", `[{"role": "assistant", "content": "It was sent today."}]`)}},
		},
	}
	rs := &trace.ResourceSpans{Resource: &resource.Resource{}}
	m, _ := mapOne(t, rs, &trace.ScopeSpans{}, sp)
	c := m.Span.GetContent()
	if len(c.GetInputMessages()) != 1 || len(c.GetOutputMessages()) != 1 ||
		c.GetInputMessages()[0].GetParts()[0].GetText() != "Where is my refund?" ||
		c.GetOutputMessages()[0].GetParts()[0].GetText() != "It was sent today." {
		t.Errorf("content of a span with gen_ai.content.prompt and gen_ai.content.completion events = %v; want the prompt as input and the completion as output", c)
	}
}

// TestAttackSourceJSONEnums: docs/OTLP.md calls otlp_json (GetEntry,
// GetTrace) "the source as OTLP JSON"; OTLP JSON requires enum values as
// integers, but SourceJSON writes protojson's names ("SPAN_KIND_CLIENT",
// "STATUS_CODE_ERROR"), which OTLP JSON receivers need not accept.
func TestAttackSourceJSONEnums(t *testing.T) {
	sp := &trace.Span{
		TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), Name: "chat", Kind: trace.Span_SPAN_KIND_CLIENT,
		StartTimeUnixNano: 1763719200000000000, EndTimeUnixNano: 1763719201000000000,
		Status: &trace.Status{Code: trace.Status_STATUS_CODE_ERROR},
	}
	m, g := mapOne(t, &trace.ResourceSpans{}, &trace.ScopeSpans{}, sp)
	j, err := SourceJSON(m.Span.GetOtlp(), g.ResourceScope)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(j, "SPAN_KIND_CLIENT") || strings.Contains(j, "STATUS_CODE_ERROR") {
		t.Errorf("SourceJSON writes enums by name, not as OTLP JSON's integers:\n%s", j)
	}
}
