package bundle

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	logs "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	resource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// The derived span ids, byte for byte, for independent verifiers
// (docs/FORMAT.md section 2.2).
func ExampleResourceEntrySpanID() {
	traceID := bytes.Repeat([]byte{0x11}, 16)
	digest := sha256.Sum256([]byte("resource and scope"))
	fmt.Printf("%x\n", ResourceEntrySpanID(traceID, digest[:]))
	fmt.Printf("%x\n", LogEntrySpanID(digest[:], []byte("log record")))
	// Output:
	// 6e458c9821140056
	// fccf7328dbe92dd7
}

func mustProto(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOTLPSourceCheck: each form of an OTLP source is checked against its
// entry's header: the item's own ids, the derived span ids, the shape of a
// resource entry; a source mixing forms is refused.
func TestOTLPSourceCheck(t *testing.T) {
	traceID, spanID, parent := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 8), bytes.Repeat([]byte{3}, 8)
	rsc := mustProto(t, &trace.ResourceSpans{Resource: &resource.Resource{}, ScopeSpans: []*trace.ScopeSpans{{Scope: &common.InstrumentationScope{Name: "s"}}}})
	withSpans := mustProto(t, &trace.ResourceSpans{ScopeSpans: []*trace.ScopeSpans{{Spans: []*trace.Span{{Name: "x"}}}}})
	digest := sha256.Sum256(rsc)
	span := mustProto(t, &trace.Span{TraceId: traceID, SpanId: spanID, ParentSpanId: parent, Name: "chat"})
	lr := mustProto(t, &logs.LogRecord{TraceId: traceID, SpanId: parent, EventName: "e"})
	logID := LogEntrySpanID(digest[:], lr)
	resID := ResourceEntrySpanID(traceID, digest[:])
	header := func(span, parentID []byte, kind v1.SpanKind) *format.Header {
		h := &format.Header{Kind: format.KindSpan, SubKind: uint8(kind)}
		copy(h.TraceID[:], traceID)
		copy(h.SpanID[:], span)
		copy(h.ParentSpanID[:], parentID)
		return h
	}
	gen := v1.SpanKind_SPAN_KIND_GENERATION
	other := v1.SpanKind_SPAN_KIND_OTHER
	for _, tc := range []struct {
		name string
		h    *format.Header
		src  *v1.OtlpSource
		want string
	}{
		{"span", header(spanID, parent, gen), &v1.OtlpSource{Span: span, ResourceScopeSha256: digest[:]}, ""},
		{"span under another id", header(parent, spanID, gen), &v1.OtlpSource{Span: span, ResourceScopeSha256: digest[:]}, "not the header's"},
		{"span with a short digest", header(spanID, parent, gen), &v1.OtlpSource{Span: span, ResourceScopeSha256: digest[:8]}, "not 32"},
		{"span that does not parse", header(spanID, parent, gen), &v1.OtlpSource{Span: []byte{0xff}, ResourceScopeSha256: digest[:]}, "does not parse"},
		{"log record", header(logID[:], parent, other), &v1.OtlpSource{LogRecord: lr, ResourceScopeSha256: digest[:]}, ""},
		{"log record under a chosen id", header(spanID, parent, other), &v1.OtlpSource{LogRecord: lr, ResourceScopeSha256: digest[:]}, "derived from its content"},
		{"log record of another span", header(logID[:], spanID, other), &v1.OtlpSource{LogRecord: lr, ResourceScopeSha256: digest[:]}, "not the header's"},
		{"resource entry", header(resID[:], nil, other), &v1.OtlpSource{ResourceScope: rsc}, ""},
		{"resource entry under a chosen id", header(spanID, nil, other), &v1.OtlpSource{ResourceScope: rsc}, "derived from its trace and content"},
		{"resource entry with a parent", header(resID[:], parent, other), &v1.OtlpSource{ResourceScope: rsc}, "root of kind OTHER"},
		{"resource entry of another kind", header(resID[:], nil, gen), &v1.OtlpSource{ResourceScope: rsc}, "root of kind OTHER"},
		{"resource entry holding spans", header(spanID, nil, other), &v1.OtlpSource{ResourceScope: withSpans}, "no items"},
		{"resource entry of two scopes", header(spanID, nil, other), &v1.OtlpSource{ResourceScope: append(append([]byte(nil), rsc...), 0x12, 0)}, "holds 2 scopes"},
		{"resource entry that does not parse", header(spanID, nil, other), &v1.OtlpSource{ResourceScope: []byte{0x12, 5, 1}}, "does not parse"},
		{"span with an unmatched group end", header(spanID, parent, gen), &v1.OtlpSource{Span: []byte{0x0c}, ResourceScopeSha256: digest[:]}, "does not parse"},
		{"mixed forms", header(spanID, parent, gen), &v1.OtlpSource{Span: span, ResourceScopeSha256: digest[:], ResourceScope: rsc}, "more than one form"},
		{"format 1", header(spanID, parent, gen), &v1.OtlpSource{ResourceSpans: withSpans}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := &entryResult{}
			got := checkOTLPSource(tc.h, tc.src, res)
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("checkOTLPSource = %q, want %q", got, tc.want)
			}
			if (got == "") != res.otlpPassed {
				t.Errorf("otlpPassed = %v with finding %q", res.otlpPassed, got)
			}
		})
	}
}

// TestOTLPCrossCheck: every OTLP item's resource entry is in the bundle,
// holding what the item's digest names, or erased.
func TestOTLPCrossCheck(t *testing.T) {
	traceID := [16]byte{1}
	digest := sha256.Sum256([]byte("r"))
	resID := ResourceEntrySpanID(traceID[:], digest[:])
	item := entryResult{header: &format.Header{Kind: format.KindSpan, Index: 1, TraceID: traceID, SpanID: [8]byte{2}}, otlpRef: digest[:], otlpPassed: true}
	resource := func(held []byte, erased bool) entryResult {
		return entryResult{header: &format.Header{Kind: format.KindSpan, Index: 0, TraceID: traceID, SpanID: resID}, otlpResource: held, otlpPassed: !erased, erased: erased}
	}
	other := sha256.Sum256([]byte("other"))
	for _, tc := range []struct {
		name    string
		results []entryResult
		ok      bool
	}{
		{"resource entry present", []entryResult{resource(digest[:], false), item}, true},
		{"resource entry erased", []entryResult{resource(nil, true), item}, true},
		{"resource entry missing", []entryResult{item}, false},
		{"resource entry holding other content", []entryResult{resource(other[:], false), item}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &verifier{rep: &Report{}, checks: map[string]*Check{}}
			v.crossCheckOTLP(tc.results)
			if got := v.check(CheckOTLP).OK(); got != tc.ok {
				t.Errorf("OTLP sources OK = %v, want %v: %v", got, tc.ok, v.check(CheckOTLP).Failures)
			}
		})
	}
}

// TestUnmarshalOTLPInvalidUTF8: a span whose strings are not valid UTF-8
// (as the Collector forwards them) decodes with U+FFFD in their place, at
// any depth, and says so; the bytes are left as they are.
func TestUnmarshalOTLPInvalidUTF8(t *testing.T) {
	sp := &trace.Span{Name: "MARK1", Attributes: []*common.KeyValue{{Key: "k", Value: &common.AnyValue{Value: &common.AnyValue_ArrayValue{
		ArrayValue: &common.ArrayValue{Values: []*common.AnyValue{{Value: &common.AnyValue_StringValue{StringValue: "MARK2"}}}}}}}}}
	b := mustProto(t, sp)
	b = bytes.Replace(b, []byte("MARK1"), []byte("ab\xffcd"), 1)
	b = bytes.Replace(b, []byte("MARK2"), []byte("\xf0\x9f\x98!x"), 1)
	orig := append([]byte(nil), b...)
	got := &trace.Span{}
	fixed, err := UnmarshalOTLP(b, got)
	if err != nil || !fixed || got.Name != "ab\uFFFDcd" || got.Attributes[0].Value.GetArrayValue().Values[0].GetStringValue() != "\uFFFD!x" {
		t.Errorf("UnmarshalOTLP = %v, %v, %v", got, fixed, err)
	}
	if !bytes.Equal(b, orig) {
		t.Error("UnmarshalOTLP changed its input")
	}
	if fixed, err := UnmarshalOTLP([]byte{0xff, 0xff}, &trace.Span{}); err == nil || fixed {
		t.Errorf("UnmarshalOTLP(garbage) = %v, %v; want an error", fixed, err)
	}
}
