package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// SourceJSON renders a span's OTLP source as OTLP JSON, for people to
// read: a ResourceSpans (or ResourceLogs) object holding the item under its
// resource and scope, with hex trace and span ids and enums as integers.
// resourceScope is the resource_scope of the resource entry the item
// refers to (bundle.ResourceEntrySpanID); without it (erased, or not at
// hand) the item is shown without its resource and scope. A resource
// entry renders as its resource and scope. "" when the span has no
// source. The source bytes stay authoritative: values nested deeper than
// the view shows are elided, and fields unknown to this server's OTLP
// version are not shown.
func SourceJSON(src *v1.OtlpSource, resourceScope []byte) (string, error) {
	m, err := bundle.OTLPMessage(src, resourceScope)
	if m == nil || err != nil {
		return "", err
	}
	return JSON(m), nil
}

// JSON renders any OTLP message (an export request, say) as OTLP JSON, in
// the form SourceJSON writes.
func JSON(m proto.Message) string {
	var b strings.Builder
	writeMessage(&b, m.ProtoReflect(), 0)
	return b.String()
}

// maxJSONDepth bounds the nesting the OTLP JSON view shows; deeper values
// are elided (the source bytes hold them).
const maxJSONDepth = 64

// elided stands for a value nested deeper than maxJSONDepth.
const elided = "(nested too deep to show here: see the source bytes)"

// writeMessage writes m as OTLP JSON: lowerCamelCase names, fields in
// number order, 64-bit integers as strings, enums as integers, trace and
// span ids as hex and other bytes as base64, indented by two spaces.
func writeMessage(b *strings.Builder, m protoreflect.Message, depth int) {
	// OTLP nests only through AnyValue: elide there, with a valid value.
	if depth >= maxJSONDepth && m.Descriptor().Name() == "AnyValue" {
		b.WriteString(`{"stringValue": `)
		writeString(b, elided)
		b.WriteString("}")
		return
	}
	fields := m.Descriptor().Fields()
	first := true
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		if first {
			b.WriteString("{")
			first = false
		} else {
			b.WriteString(",")
		}
		newline(b, depth+1)
		writeString(b, fd.JSONName())
		b.WriteString(": ")
		if fd.IsList() {
			l := m.Get(fd).List()
			b.WriteString("[")
			for j := 0; j < l.Len(); j++ {
				if j > 0 {
					b.WriteString(",")
				}
				newline(b, depth+2)
				writeValue(b, fd, l.Get(j), depth+2)
			}
			newline(b, depth+1)
			b.WriteString("]")
			continue
		}
		writeValue(b, fd, m.Get(fd), depth+1)
	}
	if first {
		b.WriteString("{}")
		return
	}
	newline(b, depth)
	b.WriteString("}")
}

func newline(b *strings.Builder, depth int) {
	b.WriteByte('\n')
	for range depth {
		b.WriteString("  ")
	}
}

func writeValue(b *strings.Builder, fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		b.WriteString(strconv.FormatBool(v.Bool()))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		b.WriteString(strconv.FormatUint(v.Uint(), 10))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		writeString(b, strconv.FormatInt(v.Int(), 10))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		writeString(b, strconv.FormatUint(v.Uint(), 10))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		switch {
		case math.IsNaN(f):
			writeString(b, "NaN")
		case math.IsInf(f, 1):
			writeString(b, "Infinity")
		case math.IsInf(f, -1):
			writeString(b, "-Infinity")
		default:
			b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
		}
	case protoreflect.StringKind:
		writeString(b, v.String())
	case protoreflect.BytesKind:
		switch fd.Name() {
		case "trace_id", "span_id", "parent_span_id": // OTLP JSON ids are hex
			writeString(b, hex.EncodeToString(v.Bytes()))
		default:
			writeString(b, base64.StdEncoding.EncodeToString(v.Bytes()))
		}
	case protoreflect.EnumKind:
		b.WriteString(strconv.FormatInt(int64(v.Enum()), 10))
	case protoreflect.MessageKind, protoreflect.GroupKind:
		writeMessage(b, v.Message(), depth)
	}
}

// writeString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// control characters, the HTML-significant <, > and &, and U+2028 and
// U+2029 are escaped.
func writeString(b *strings.Builder, s string) {
	const hexDigits = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\r':
				b.WriteString(`\r`)
			case c == '\t':
				b.WriteString(`\t`)
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b.WriteString(`\u00`)
				b.WriteByte(hexDigits[c>>4])
				b.WriteByte(hexDigits[c&0xf])
			default:
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\ufffd`)
		case r == '\u2028' || r == '\u2029':
			b.WriteString(`\u202`)
			b.WriteByte(hexDigits[r&0xf])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
}
