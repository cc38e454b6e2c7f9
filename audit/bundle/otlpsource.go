package bundle

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	logs "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// The OTLP source of a span entry (docs/FORMAT.md section 2.2,
// docs/OTLP.md): a span or log record holds its own bytes as received and
// the SHA-256 of its resource and scope, which a resource entry of the
// same trace holds once. These functions are the format's; the ingest
// writes it with them and the verifier checks it with them.

// ResourceEntryName is the name of a resource entry's span.
const ResourceEntryName = "otlp.resource_scope"

// ResourceEntrySpanID is the span id of the resource entry, in trace
// traceID, that holds the resource and scope whose bytes have the SHA-256
// digest: the first 8 bytes of
// SHA-256("veritrace/otlp/resource/v2" || 0x00 || trace id || digest), with
// the last byte set to 1 if they are all zero.
func ResourceEntrySpanID(traceID, digest []byte) [8]byte {
	return derivedSpanID("veritrace/otlp/resource/v2", traceID, digest)
}

// ResourceEntryOf returns the span id of the resource entry, in trace
// traceID, that a span entry's payload refers to: ResourceEntrySpanID of
// its otlp.resource_scope_sha256. False when the payload is not an OTLP
// span or log record. The entry of the trace with that span id is the
// resource entry only if IsResourceEntry says so.
func ResourceEntryOf(traceID, payload []byte) ([8]byte, bool) {
	sp := &v1.Span{}
	if proto.Unmarshal(payload, sp) != nil {
		return [8]byte{}, false
	}
	switch src := sp.GetOtlp(); FormOf(src) {
	case OTLPSpan, OTLPLogRecord:
		return ResourceEntrySpanID(traceID, src.GetResourceScopeSha256()), true
	}
	return [8]byte{}, false
}

// LogEntrySpanID is the span id of the entry of an OTLP log record: the
// first 8 bytes of
// SHA-256("veritrace/otlp/log/v2" || 0x00 || resource_scope_sha256 || log_record),
// with the last byte set to 1 if they are all zero. A retried record has
// the same id.
func LogEntrySpanID(resourceScopeSHA256, logRecord []byte) [8]byte {
	return derivedSpanID("veritrace/otlp/log/v2", resourceScopeSHA256, logRecord)
}

func derivedSpanID(domain string, parts ...[]byte) [8]byte {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write([]byte{0})
	for _, p := range parts {
		h.Write(p)
	}
	var id [8]byte
	copy(id[:], h.Sum(nil))
	if id == ([8]byte{}) {
		id[7] = 1
	}
	return id
}

// OTLPForm names the form of a span entry's OTLP source.
type OTLPForm int

// The forms of an OTLP source (OtlpSource's comment).
const (
	OTLPNone      OTLPForm = iota // not ingested over OTLP
	OTLPSpan                      // span + resource_scope_sha256
	OTLPLogRecord                 // log_record + resource_scope_sha256
	OTLPResource                  // resource_scope: a resource entry
	OTLPLegacy                    // resource_spans or resource_logs (format 1)
	OTLPMixed                     // anything else: not a valid source
)

// FormOf returns the form of an OTLP source.
func FormOf(src *v1.OtlpSource) OTLPForm {
	set := 0
	for _, b := range [][]byte{src.GetResourceSpans(), src.GetResourceLogs(), src.GetSpan(), src.GetLogRecord(), src.GetResourceScopeSha256(), src.GetResourceScope()} {
		if len(b) > 0 {
			set++
		}
	}
	switch {
	case set == 0:
		return OTLPNone
	case set == 1 && (len(src.GetResourceSpans()) > 0 || len(src.GetResourceLogs()) > 0):
		return OTLPLegacy
	case set == 1 && len(src.GetResourceScope()) > 0:
		return OTLPResource
	case set == 2 && len(src.GetResourceScopeSha256()) > 0 && len(src.GetSpan()) > 0:
		return OTLPSpan
	case set == 2 && len(src.GetResourceScopeSha256()) > 0 && len(src.GetLogRecord()) > 0:
		return OTLPLogRecord
	}
	return OTLPMixed
}

// UnmarshalOTLP decodes an OTLP message m from b. OTLP senders do not all
// check that strings are UTF-8 (the Collector forwards what it gets, and
// OpenTelemetry JS can cut a character in two when it truncates a value),
// and proto3 refuses such strings; so a string that is not valid UTF-8 is
// decoded with each invalid byte sequence replaced by U+FFFD, and fixed
// reports that it happened. The bytes themselves are not changed: they
// stay the record of what was sent.
func UnmarshalOTLP(b []byte, m proto.Message) (fixed bool, err error) {
	err = proto.Unmarshal(b, m)
	if err == nil {
		return false, nil
	}
	valid, changed, ferr := fixUTF8(b, m.ProtoReflect().Descriptor(), 0)
	if ferr != nil || !changed {
		return false, err
	}
	if err := proto.Unmarshal(valid, m); err != nil {
		return false, err
	}
	return true, nil
}

// maxWireDepth bounds the nesting fixUTF8 follows (protobuf's own limit).
const maxWireDepth = 10_000

// fixUTF8 returns b with every string field of message md, at any depth,
// made valid UTF-8.
func fixUTF8(b []byte, md protoreflect.MessageDescriptor, depth int) ([]byte, bool, error) {
	if depth > maxWireDepth {
		return nil, false, errors.New("nested too deep")
	}
	out := make([]byte, 0, len(b))
	changed := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false, protowire.ParseError(n)
		}
		fd := md.Fields().ByNumber(num)
		if typ != protowire.BytesType || fd == nil || (fd.Kind() != protoreflect.StringKind && fd.Kind() != protoreflect.MessageKind) {
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if m < 0 {
				return nil, false, protowire.ParseError(m)
			}
			out = append(out, b[:n+m]...)
			b = b[n+m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return nil, false, protowire.ParseError(m)
		}
		switch {
		case fd.Kind() == protoreflect.StringKind && !utf8.Valid(v):
			v, changed = []byte(strings.ToValidUTF8(string(v), "\uFFFD")), true
		case fd.Kind() == protoreflect.MessageKind:
			inner, ch, err := fixUTF8(v, fd.Message(), depth+1)
			if err != nil {
				return nil, false, err
			}
			if ch {
				v, changed = inner, true
			}
		}
		out = protowire.AppendTag(out, num, typ)
		out = protowire.AppendBytes(out, v)
		b = b[n+m:]
	}
	return out, changed, nil
}

// ResourceScope is a resource entry's resource_scope decoded: an OTLP
// ResourceSpans with the resource and exactly one ScopeSpans without spans.
// (A ResourceLogs has the same wire format.)
func ResourceScope(b []byte) (*trace.ResourceSpans, bool, error) {
	rs := &trace.ResourceSpans{}
	fixed, err := UnmarshalOTLP(b, rs)
	if err != nil {
		return nil, false, fmt.Errorf("resource_scope: %w", err)
	}
	if len(rs.GetScopeSpans()) != 1 || len(rs.GetScopeSpans()[0].GetSpans()) != 0 {
		return nil, false, errors.New("resource_scope: must hold exactly one scope and no spans")
	}
	return rs, fixed, nil
}

// maxWireGroupDepth bounds the nesting of groups wireFields skips.
const maxWireGroupDepth = 100

// wireFields calls fn with each field of the protobuf message b: its
// number, wire type and, for a length-delimited field, the bytes inside.
// Groups (which OTLP never uses) are skipped whole, nested at most
// maxWireGroupDepth deep. It fails on a malformed field. The verifier
// reads OTLP sources with it alone: it needs no OTLP schema.
func wireFields(b []byte, fn func(num protowire.Number, typ protowire.Type, val []byte)) error {
	_, err := wireFieldsUntil(b, 0, 0, fn)
	return err
}

// wireFieldsUntil reads fields until the end of b or, inside a group, the
// group's end (the number of bytes read is returned).
func wireFieldsUntil(b []byte, group protowire.Number, depth int, fn func(protowire.Number, protowire.Type, []byte)) (int, error) {
	read := 0
	for read < len(b) {
		num, typ, n := protowire.ConsumeTag(b[read:])
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		read += n
		var val []byte
		switch typ {
		case protowire.VarintType:
			_, n = protowire.ConsumeVarint(b[read:])
		case protowire.Fixed32Type:
			_, n = protowire.ConsumeFixed32(b[read:])
		case protowire.Fixed64Type:
			_, n = protowire.ConsumeFixed64(b[read:])
		case protowire.BytesType:
			val, n = protowire.ConsumeBytes(b[read:])
		case protowire.StartGroupType:
			if depth >= maxWireGroupDepth {
				return 0, errors.New("groups nested too deep")
			}
			var err error
			if n, err = wireFieldsUntil(b[read:], num, depth+1, func(protowire.Number, protowire.Type, []byte) {}); err != nil {
				return 0, err
			}
		case protowire.EndGroupType:
			if num != group || group == 0 {
				return 0, errors.New("unmatched end of group")
			}
			return read, nil
		default:
			return 0, fmt.Errorf("field %d: unknown wire type %d", num, typ)
		}
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		read += n
		if typ != protowire.StartGroupType {
			fn(num, typ, val)
		}
	}
	if group != 0 {
		return 0, errors.New("group not ended")
	}
	return read, nil
}

// wireBytesFields returns, for each of nums, the last value of that
// length-delimited field in the message b (protobuf's rule for a field
// sent twice), reading nothing else of it.
func wireBytesFields(b []byte, nums ...protowire.Number) ([][]byte, error) {
	out := make([][]byte, len(nums))
	var bad error
	err := wireFields(b, func(num protowire.Number, typ protowire.Type, val []byte) {
		for i, want := range nums {
			if num == want {
				if typ != protowire.BytesType {
					bad = fmt.Errorf("field %d is not length-delimited", num)
				}
				out[i] = val
			}
		}
	})
	if err == nil {
		err = bad
	}
	return out, err
}

// resourceScopeShape checks, at the wire level, that b is a resource
// entry's resource_scope: a message whose field 2 (scopes) appears exactly
// once, holding a message without field 2 (items).
func resourceScopeShape(b []byte) error {
	var scopes [][]byte
	var bad error
	err := wireFields(b, func(num protowire.Number, typ protowire.Type, val []byte) {
		if num == 2 {
			if typ != protowire.BytesType {
				bad = errors.New("its scope is not length-delimited")
			}
			scopes = append(scopes, val)
		}
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return fmt.Errorf("resource_scope does not parse: %w", err)
	}
	if len(scopes) != 1 {
		return fmt.Errorf("resource_scope holds %d scopes; it must hold exactly one scope and no items", len(scopes))
	}
	items := 0
	err = wireFields(scopes[0], func(num protowire.Number, _ protowire.Type, _ []byte) {
		if num == 2 {
			items++
		}
	})
	if err != nil {
		return fmt.Errorf("resource_scope's scope does not parse: %w", err)
	}
	if items > 0 {
		return errors.New("resource_scope's scope holds items; it must hold exactly one scope and no items")
	}
	return nil
}

// OTLPMessage decodes a span's OTLP source into the OTLP message an
// exporter would have sent for the item alone: a *trace.ResourceSpans or a
// *logs.ResourceLogs holding the item under its resource and scope.
// resourceScope is the resource_scope of the resource entry the item
// refers to; without it the item is shown without them. A resource entry
// gives its resource and scope. nil for a span without a source.
func OTLPMessage(src *v1.OtlpSource, resourceScope []byte) (proto.Message, error) {
	switch FormOf(src) {
	case OTLPNone:
		return nil, nil
	case OTLPLegacy:
		if len(src.GetResourceSpans()) > 0 {
			rs := &trace.ResourceSpans{}
			_, err := UnmarshalOTLP(src.GetResourceSpans(), rs)
			return rs, err
		}
		rl := &logs.ResourceLogs{}
		_, err := UnmarshalOTLP(src.GetResourceLogs(), rl)
		return rl, err
	case OTLPResource:
		resourceScope = src.GetResourceScope()
	case OTLPSpan, OTLPLogRecord:
	default:
		return nil, errors.New("not a valid OTLP source")
	}
	rs := &trace.ResourceSpans{ScopeSpans: []*trace.ScopeSpans{{}}}
	if len(resourceScope) > 0 {
		var err error
		if rs, _, err = ResourceScope(resourceScope); err != nil {
			return nil, err
		}
	}
	switch FormOf(src) {
	case OTLPSpan:
		sp := &trace.Span{}
		if _, err := UnmarshalOTLP(src.GetSpan(), sp); err != nil {
			return nil, err
		}
		rs.ScopeSpans[0].Spans = []*trace.Span{sp}
	case OTLPLogRecord:
		// A ResourceLogs has the wire format of a ResourceSpans.
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(rs)
		if err != nil {
			return nil, err
		}
		rl := &logs.ResourceLogs{}
		if err := proto.Unmarshal(b, rl); err != nil {
			return nil, err
		}
		lr := &logs.LogRecord{}
		if _, err := UnmarshalOTLP(src.GetLogRecord(), lr); err != nil {
			return nil, err
		}
		rl.ScopeLogs[0].LogRecords = []*logs.LogRecord{lr}
		return rl, nil
	}
	return rs, nil
}
