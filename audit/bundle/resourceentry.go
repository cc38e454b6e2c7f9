package bundle

import (
	"crypto/sha256"

	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// MayBeResourceEntry reports whether a header has the shape of an OTLP
// resource entry's (a span entry, root, of kind OTHER): every resource
// entry has it, so entries without it need not be read.
func MayBeResourceEntry(h *format.Header) bool {
	return h.Kind == format.KindSpan && h.SubKind == uint8(v1.SpanKind_SPAN_KIND_OTHER) && h.ParentSpanID == [8]byte{}
}

// ResourceEntrySpan is the span of the resource entry of trace traceID
// holding resourceScope (docs/OTLP.md, "Resource entries"): its ids, the
// name ResourceEntryName, kind OTHER and the OTLP source, nothing else.
func ResourceEntrySpan(traceID, resourceScope []byte) *v1.Span {
	sum := sha256.Sum256(resourceScope)
	id := ResourceEntrySpanID(traceID, sum[:])
	return &v1.Span{
		TraceId: traceID, SpanId: id[:], Name: ResourceEntryName, Kind: v1.SpanKind_SPAN_KIND_OTHER,
		Otlp: &v1.OtlpSource{ResourceScope: resourceScope},
	}
}

// IsResourceEntry reports whether an entry is an OTLP resource entry
// (docs/OTLP.md): of its shape (MayBeResourceEntry), its payload exactly
// ResourceEntrySpan of its trace and resource_scope (no other field, no
// unknown field), its resource_scope one resource and one scope with no
// items (the verifier's check), and its span id the one derived from its
// trace and the SHA-256 of its resource_scope. Only the OTLP ingest writes
// the otlp field (a native AppendSpans span that sets it is refused), so
// no client can make an entry of its own one: the sweep keeps a resource
// entry while its trace is kept (docs/RETENTION.md), and must not keep
// anything else so.
func IsResourceEntry(h *format.Header, payload []byte) bool {
	if !MayBeResourceEntry(h) {
		return false
	}
	sp := &v1.Span{}
	if proto.Unmarshal(payload, sp) != nil || FormOf(sp.GetOtlp()) != OTLPResource {
		return false
	}
	rsc := sp.GetOtlp().GetResourceScope()
	if resourceScopeShape(rsc) != nil {
		return false
	}
	want := ResourceEntrySpan(h.TraceID[:], rsc)
	return h.SpanID == [8]byte(want.GetSpanId()) && proto.Equal(sp, want)
}

// MayBeLogRecordEntry reports whether a header has the shape of an OTLP
// log record's entry (a span entry of kind OTHER with a parent: the span
// the record is an event of): every such entry has it.
func MayBeLogRecordEntry(h *format.Header) bool {
	return h.Kind == format.KindSpan && h.SubKind == uint8(v1.SpanKind_SPAN_KIND_OTHER) && h.ParentSpanID != [8]byte{}
}

// IsLogRecordEntry reports whether an entry is an OTLP log record's
// (docs/OTLP.md, "Logs"): of its shape (MayBeLogRecordEntry), its payload
// a span whose OTLP source holds a log record, which passes the
// verifier's check of it (the record's trace and span ids are the
// header's trace and parent ids, its span id is derived from its
// content). Its span is the entry of its trace whose span id is its
// header's parent span id.
func IsLogRecordEntry(h *format.Header, payload []byte) bool {
	if !MayBeLogRecordEntry(h) {
		return false
	}
	sp := &v1.Span{}
	if proto.Unmarshal(payload, sp) != nil || FormOf(sp.GetOtlp()) != OTLPLogRecord {
		return false
	}
	return checkOTLPSource(h, sp.GetOtlp(), &entryResult{}) == ""
}
