package otlp

import (
	"runtime"
	"strings"
	"testing"

	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	resource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
)

// TestContentKeyRetrievalDocuments: content attributes are never copied
// into free attributes (contentKey), retrieval.documents.N.* included:
// an OpenInference document's text used to land in the span's free
// attributes whenever the retrieval mapping did not read it (a span of
// another kind, or gen_ai.retrieval.documents there too), because the
// prefix was matched only as a whole segment ("retrieval.documents..").
func TestContentKeyRetrievalDocuments(t *testing.T) {
	const doc = "the patient's discharge letter"
	for _, tc := range []struct {
		name  string
		attrs []*common.KeyValue
	}{
		{"an LLM span", []*common.KeyValue{strKV("openinference.span.kind", "LLM"), strKV("llm.model_name", "gpt-4")}},
		{"a retriever span with gen_ai.retrieval.documents", []*common.KeyValue{strKV("openinference.span.kind", "RETRIEVER"),
			strKV("gen_ai.retrieval.documents", `[{"id":"d1","content":"other"}]`)}},
	} {
		sp := &trace.Span{
			TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), Name: "span",
			StartTimeUnixNano: 1763719200000000000, EndTimeUnixNano: 1763719201000000000,
			Attributes: append(tc.attrs, strKV("retrieval.documents.0.document.content", doc), strKV("retrieval.documents.0.document.id", "d0")),
		}
		m, _ := mapOne(t, &trace.ResourceSpans{Resource: &resource.Resource{}}, &trace.ScopeSpans{}, sp)
		for k, v := range m.Span.GetAttributes() {
			if strings.HasPrefix(k, "retrieval.documents.") {
				t.Errorf("%s: the content attribute %s = %q is copied into the free attributes", tc.name, k, v.GetStringValue())
			}
		}
	}
}

// TestJSONAttributeMemoryIsBounded: an untrusted sender's JSON string in a
// content attribute is parsed into Go maps and slices (readJSON) within a
// memory budget: a 4 MiB gen_ai.input.messages of empty objects made
// MapSpan allocate about 80 times its size (331 MB), and a request may be
// 16 MiB. Over the budget the attribute is kept as the string it is.
func TestJSONAttributeMemoryIsBounded(t *testing.T) {
	const size = 4 << 20
	s := "[" + strings.Repeat(`{},`, size/3) + "{}]"
	sp := &trace.Span{
		TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), Name: "chat gpt-4",
		StartTimeUnixNano: 1763719200000000000, EndTimeUnixNano: 1763719201000000000,
		Attributes: []*common.KeyValue{strKV("gen_ai.system", "openai"), strKV("gen_ai.input.messages", s)},
	}
	rs := &trace.ResourceSpans{Resource: &resource.Resource{}}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, _ := mapOne(t, rs, &trace.ScopeSpans{}, sp)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	// mapOne marshals and decodes the request itself: about 2 to 3 times
	// its size. Allow 10 times.
	if alloc > 10*uint64(len(s)) {
		t.Errorf("mapping one span with a %d-byte gen_ai.input.messages of empty objects allocated %d MB (%.0f times its size) and yielded %d input messages; want at most 10 times",
			len(s), alloc>>20, float64(alloc)/float64(len(s)), len(m.Span.GetContent().GetInputMessages()))
	}
}
