package bundle

import (
	"bytes"
	"crypto/sha256"
	"testing"

	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	logs "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// IsResourceEntry takes an entry for a resource entry only if its payload
// is exactly one (the sweep keeps resource entries while their trace is
// kept); IsLogRecordEntry only if its source passes the verifier's check.
func TestIsResourceEntryAndIsLogRecordEntry(t *testing.T) {
	traceID := bytes.Repeat([]byte{0x11}, 16)
	rsc, err := proto.Marshal(&trace.ResourceSpans{ScopeSpans: []*trace.ScopeSpans{{Scope: &common.InstrumentationScope{Name: "test"}}}})
	if err != nil {
		t.Fatal(err)
	}
	header := func(sp *v1.Span) *format.Header {
		h := &format.Header{Kind: format.KindSpan, SubKind: uint8(sp.GetKind())}
		copy(h.TraceID[:], sp.GetTraceId())
		copy(h.SpanID[:], sp.GetSpanId())
		copy(h.ParentSpanID[:], sp.GetParentSpanId())
		return h
	}
	twoScopes, _ := proto.Marshal(&trace.ResourceSpans{ScopeSpans: []*trace.ScopeSpans{{}, {}}})
	withSpans, _ := proto.Marshal(&trace.ResourceSpans{ScopeSpans: []*trace.ScopeSpans{{Spans: []*trace.Span{{Name: "x"}}}}})
	res := func(edit func(*v1.Span)) *v1.Span {
		sp := ResourceEntrySpan(traceID, rsc)
		if edit != nil {
			edit(sp)
		}
		return sp
	}
	spanID := []byte{0xb0, 0, 0, 0, 0, 0, 0, 1}
	lr, _ := proto.Marshal(&logs.LogRecord{TraceId: traceID, SpanId: spanID, EventName: "e"})
	digest := sha256.Sum256(rsc)
	logID := LogEntrySpanID(digest[:], lr)
	rec := func(edit func(*v1.Span)) *v1.Span {
		sp := &v1.Span{TraceId: traceID, SpanId: logID[:], ParentSpanId: spanID, Name: "e", Kind: v1.SpanKind_SPAN_KIND_OTHER,
			Otlp: &v1.OtlpSource{LogRecord: lr, ResourceScopeSha256: digest[:]}}
		if edit != nil {
			edit(sp)
		}
		return sp
	}
	for _, c := range []struct {
		name     string
		sp       *v1.Span
		res, rec bool
	}{
		{"resource entry", res(nil), true, false},
		{"resource entry with content", res(func(sp *v1.Span) { sp.SubjectId = "customer-42" }), false, false},
		{"resource entry with an attribute", res(func(sp *v1.Span) {
			sp.Attributes = map[string]*structpb.Value{"k": structpb.NewStringValue("v")}
		}), false, false},
		{"resource entry named otherwise", res(func(sp *v1.Span) { sp.Name = "chat" }), false, false},
		{"resource entry of another kind", res(func(sp *v1.Span) { sp.Kind = v1.SpanKind_SPAN_KIND_TOOL }), false, false},
		{"two scopes", ResourceEntrySpan(traceID, twoScopes), false, false},
		{"a scope with spans", ResourceEntrySpan(traceID, withSpans), false, false},
		{"not a resource", ResourceEntrySpan(traceID, []byte("not a resource at all")), false, false},
		{"resource entry with another span id", res(func(sp *v1.Span) { sp.SpanId = spanID }), false, false},
		{"log record", rec(nil), false, true},
		{"log record of another span", rec(func(sp *v1.Span) { sp.ParentSpanId = []byte{0xb0, 0, 0, 0, 0, 0, 0, 2} }), false, false},
		{"log record with another span id", rec(func(sp *v1.Span) { sp.SpanId = []byte{9, 9, 9, 9, 9, 9, 9, 9} }), false, false},
		{"native span of kind OTHER with a parent", rec(func(sp *v1.Span) { sp.Otlp = nil }), false, false},
	} {
		p, err := proto.Marshal(c.sp)
		if err != nil {
			t.Fatal(err)
		}
		h := header(c.sp)
		if got := IsResourceEntry(h, p); got != c.res {
			t.Errorf("%s: IsResourceEntry = %v, want %v", c.name, got, c.res)
		}
		if got := IsLogRecordEntry(h, p); got != c.rec {
			t.Errorf("%s: IsLogRecordEntry = %v, want %v", c.name, got, c.rec)
		}
	}
}
