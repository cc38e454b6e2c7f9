package otlp

import (
	"strings"
	"testing"

	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	resource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
)

// TestResourceAttributesCopied: a mapped span carries its resource's
// service and deployment attributes, when short, for queries and
// aggregates; a long one stays in the source only (a resource is stored
// once per trace, its copies in every span must stay small).
func TestResourceAttributesCopied(t *testing.T) {
	rs := &trace.ResourceSpans{Resource: &resource.Resource{Attributes: []*common.KeyValue{
		strKV("deployment.environment.name", "prod"), strKV("service.name", strings.Repeat("s", 300)),
		strKV("service.namespace", "support"), strKV("host.name", "node-1"),
	}}}
	sp := &trace.Span{TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), Name: "chat", StartTimeUnixNano: 1, EndTimeUnixNano: 2,
		Attributes: []*common.KeyValue{strKV("service.namespace", "span's own")}}
	m, _ := mapOne(t, rs, &trace.ScopeSpans{}, sp)
	got := map[string]string{}
	for k, v := range m.Span.GetAttributes() {
		got[k] = v.GetStringValue()
	}
	if got["deployment.environment.name"] != "prod" || got["service.namespace"] != "span's own" || got["service.name"] != "" || got["host.name"] != "" {
		t.Errorf("attributes = %v; want deployment.environment.name from the resource, the span's own service.namespace, no long service.name, no host.name", got)
	}
}
