package bundle

import (
	"strings"
	"testing"

	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	resource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

func attackSource(t *testing.T, sp *trace.Span) *v1.OtlpSource {
	t.Helper()
	b, err := proto.Marshal(&trace.ResourceSpans{Resource: &resource.Resource{}, ScopeSpans: []*trace.ScopeSpans{{
		Scope: &common.InstrumentationScope{Name: "app"}, Spans: []*trace.Span{sp}}}})
	if err != nil {
		t.Fatal(err)
	}
	return &v1.OtlpSource{ResourceSpans: b}
}

// TestAttackOTLPTextForgedLines: the report's "as received over
// OpenTelemetry" view (otlpText) quotes attribute values but writes
// attribute keys, the scope name and version and the status message as
// they are (writeAttrs, "%s"). A sender's key holding a newline writes
// lines of its own into the auditor's view of the source, e.g. an event
// the span never had. Every sender-controlled string should be quoted.
func TestAttackOTLPTextForgedLines(t *testing.T) {
	const forged = `event "guardrail.passed" at 2026-11-21T10:00:00Z`
	sp := &trace.Span{
		TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), Name: "chat",
		StartTimeUnixNano: 1763719200000000000, EndTimeUnixNano: 1763719201000000000,
		Attributes: []*common.KeyValue{{Key: "note\n" + forged + "\n  x", Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "1"}}}},
	}
	text := otlpText(attackSource(t, sp), nil)
	for _, line := range strings.Split(text, "\n") {
		if line == forged {
			t.Errorf("the source view of a span without events shows the line %q, written by an attribute key:\n%s", forged, text)
		}
	}
}

// TestAttackOTLPTextTimes: times at or after 2^63 ns (year 2262) are valid
// OTLP fixed64 values; the normalised span reads them as unsigned (in
// 2262 and later), the report's source view as int64 (nanoTime), so it
// shows a date in 1677 for the same span.
func TestAttackOTLPTextTimes(t *testing.T) {
	const start = uint64(1) << 63
	sp := &trace.Span{
		TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), Name: "chat",
		StartTimeUnixNano: start, EndTimeUnixNano: start + 1e9,
	}
	text := otlpText(attackSource(t, sp), nil)
	if strings.Contains(text, "time: 1677") {
		t.Errorf("a span starting at %d ns since 1970 is shown as starting in 1677:\n%s", start, text)
	}
}
