package otlp

import (
	"testing"

	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// mapOne maps one span under the resource and scope of rs and ss as an
// export carries it (protobuf, through Decode), and returns the mapped
// span and its group.
func mapOne(t testing.TB, rs *trace.ResourceSpans, ss *trace.ScopeSpans, sp *trace.Span) (*Mapped, *Group) {
	t.Helper()
	req := &coltrace.ExportTraceServiceRequest{ResourceSpans: []*trace.ResourceSpans{{
		Resource: rs.GetResource(), SchemaUrl: rs.GetSchemaUrl(),
		ScopeSpans: []*trace.ScopeSpans{{Scope: ss.GetScope(), SchemaUrl: ss.GetSchemaUrl(), Spans: []*trace.Span{sp}}},
	}}}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := Decode(Traces, ContentProtobuf, b)
	if err != nil {
		t.Fatal(err)
	}
	g := ex.Groups[0]
	if g.Err != nil || g.Items[0].Err != nil {
		t.Fatalf("decode: %v %v", g.Err, g.Items[0].Err)
	}
	return MapSpan(g, g.Items[0], Config{}), g
}
