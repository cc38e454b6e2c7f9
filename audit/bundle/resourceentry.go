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

// IsResourceEntry reports whether an entry is an OTLP resource entry
// (docs/OTLP.md): of its shape (MayBeResourceEntry), its payload a span
// whose OTLP source holds a resource and scope, and its span id the one
// derived from its trace and the SHA-256 of what it holds.
func IsResourceEntry(h *format.Header, payload []byte) bool {
	if !MayBeResourceEntry(h) {
		return false
	}
	sp := &v1.Span{}
	if proto.Unmarshal(payload, sp) != nil || FormOf(sp.GetOtlp()) != OTLPResource {
		return false
	}
	sum := sha256.Sum256(sp.GetOtlp().GetResourceScope())
	return h.SpanID == ResourceEntrySpanID(h.TraceID[:], sum[:])
}
