package bundle

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// appendProtoJSON appends the proto JSON of m (docs/FORMAT.md §2.5) to
// dst, byte for byte what protojson.Marshal writes with its insignificant
// white space removed (protojson adds a space after some separators at
// random, so that no one relies on its exact bytes), and checks as it goes
// that m is decodable (CheckMessage's rules). It is the decoded form of a
// payload, written by export and compared by the verifier, at a fraction
// of the CPU time of protojson.Marshal and CheckMessage, which each walk
// the message, and protojson sorts every message's fields and map keys
// through interfaces (docs/PERFORMANCE.md). TestProtoJSONMatchesProtojson
// and FuzzProtoJSON check it against both over arbitrary payloads.
//
// It covers what payload messages hold: the scalar kinds, enums, nested
// messages, lists, maps, and google.protobuf.Timestamp, Struct, ListValue,
// Value and Empty. On anything else, and on a message CheckMessage
// refuses, it returns errNoFastForm, and callers ask CheckMessage and
// protojson (payloadJSON).
func appendProtoJSON(dst []byte, m protoreflect.Message) ([]byte, error) {
	fp := setFields.Get().(*[]setField)
	w := jsonWriter{b: dst, set: (*fp)[:0]}
	w.collect = w.collectField
	err := w.message(m)
	clear(w.set[:cap(w.set)])
	*fp = w.set[:0]
	setFields.Put(fp)
	return w.b, err
}

// setField is a field a message has, and its value.
type setField struct {
	fd protoreflect.FieldDescriptor
	v  protoreflect.Value
}

// setFields are pooled stacks of set fields for jsonWriter.
var setFields = sync.Pool{New: func() any { return new([]setField) }}

// errNoFastForm says appendProtoJSON does not write this message's form;
// CheckMessage and protojson say what it is.
var errNoFastForm = errors.New("no fast proto JSON form")

// payloadJSON checks that m is decodable and appends its compact proto
// JSON to dst: appendProtoJSON's, or, where it declines, CheckMessage's
// verdict and protojson's form compacted.
func payloadJSON(dst []byte, m proto.Message) ([]byte, error) {
	b, err := appendProtoJSON(dst, m.ProtoReflect())
	if err == nil {
		return b, nil
	}
	if err := CheckMessage(m); err != nil {
		return dst, err
	}
	pj, err := protojson.Marshal(m)
	if err != nil { // CheckMessage passed, so this is not expected
		return dst, &PayloadError{Reason: fmt.Sprintf("no proto JSON form: %v", err)}
	}
	return append(dst, compactJSON(pj)...), nil
}

// compactJSON removes the white space outside strings of a valid JSON text,
// in place.
func compactJSON(b []byte) []byte {
	out := b[:0]
	var st jsonStrings
	for _, c := range b {
		if !st.in && isJSONSpace(c) {
			continue
		}
		st.next(c)
		out = append(out, c)
	}
	return out
}

// jsonWriter writes proto JSON into b. valueDepth is the
// google.protobuf.Value nesting of the message being written, as
// CheckMessage counts it.
type jsonWriter struct {
	b          []byte
	valueDepth int
	// set is a stack of the set fields of the messages being written,
	// innermost last; collect is collectField, bound once.
	set     []setField
	collect func(protoreflect.FieldDescriptor, protoreflect.Value) bool
}

func (w *jsonWriter) collectField(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	w.set = append(w.set, setField{fd, v})
	return true
}

func (w *jsonWriter) message(m protoreflect.Message) error {
	if len(m.GetUnknown()) > 0 {
		return errNoFastForm
	}
	d := m.Descriptor()
	if d.ParentFile().Package() == "google.protobuf" {
		switch d.Name() {
		case "Timestamp":
			return w.timestamp(m)
		case "Value":
			return w.value(m)
		case "Struct":
			fd := d.Fields().ByNumber(1)
			return w.mapValue(m.Get(fd).Map(), fd)
		case "ListValue":
			fd := d.Fields().ByNumber(1)
			return w.list(m.Get(fd).List(), fd)
		case "Empty":
		default:
			return errNoFastForm
		}
	}
	if d.ExtensionRanges().Len() > 0 { // proto2 only: left to protojson
		return errNoFastForm
	}
	w.b = append(w.b, '{')
	// The fields m has (as Has reports them), in declaration order as
	// protojson writes them: Range visits them without checking each
	// descriptor against m's, in an order that is nearly that one already
	// (a oneof's fields come together), so an insertion sort is short.
	start := len(w.set)
	m.Range(w.collect)
	end := len(w.set)
	for i := start + 1; i < end; i++ {
		for j := i; j > start && w.set[j].fd.Index() < w.set[j-1].fd.Index(); j-- {
			w.set[j], w.set[j-1] = w.set[j-1], w.set[j]
		}
	}
	for i := start; i < end; i++ {
		fd, v := w.set[i].fd, w.set[i].v
		if fd.IsExtension() { // proto2 only: left to protojson
			return errNoFastForm
		}
		if i > start {
			w.b = append(w.b, ',')
		}
		w.b = appendJSONString(w.b, fd.JSONName())
		w.b = append(w.b, ':')
		var err error
		switch {
		case fd.IsList():
			err = w.list(v.List(), fd)
		case fd.IsMap():
			err = w.mapValue(v.Map(), fd)
		default:
			err = w.singular(v, fd)
		}
		if err != nil {
			return err // w is not used again (appendProtoJSON)
		}
	}
	w.set = w.set[:start]
	w.b = append(w.b, '}')
	return nil
}

func (w *jsonWriter) singular(v protoreflect.Value, fd protoreflect.FieldDescriptor) error {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		w.b = strconv.AppendBool(w.b, v.Bool())
	case protoreflect.StringKind:
		s := v.String()
		if !utf8.ValidString(s) {
			return errNoFastForm
		}
		w.b = appendJSONString(w.b, s)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		w.b = strconv.AppendInt(w.b, v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		w.b = strconv.AppendUint(w.b, v.Uint(), 10)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		w.b = append(w.b, '"')
		w.b = append(strconv.AppendInt(w.b, v.Int(), 10), '"')
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		w.b = append(w.b, '"')
		w.b = append(strconv.AppendUint(w.b, v.Uint(), 10), '"')
	case protoreflect.FloatKind:
		w.b = appendJSONFloat(w.b, v.Float(), 32)
	case protoreflect.DoubleKind:
		w.b = appendJSONFloat(w.b, v.Float(), 64)
	case protoreflect.BytesKind:
		w.b = append(w.b, '"')
		w.b = append(base64.StdEncoding.AppendEncode(w.b, v.Bytes()), '"')
	case protoreflect.EnumKind:
		switch ev := fd.Enum().Values().ByNumber(v.Enum()); {
		case fd.Enum().FullName() == "google.protobuf.NullValue":
			w.b = append(w.b, "null"...)
		case ev != nil:
			w.b = appendJSONString(w.b, string(ev.Name()))
		default:
			w.b = strconv.AppendInt(w.b, int64(v.Enum()), 10)
		}
	case protoreflect.MessageKind:
		return w.message(v.Message())
	default: // groups: not in proto3
		return errNoFastForm
	}
	return nil
}

func (w *jsonWriter) list(l protoreflect.List, fd protoreflect.FieldDescriptor) error {
	w.b = append(w.b, '[')
	for i := 0; i < l.Len(); i++ {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		if err := w.singular(l.Get(i), fd); err != nil {
			return err
		}
	}
	w.b = append(w.b, ']')
	return nil
}

// mapKeys are pooled slices for sorting a map's keys.
var mapKeys = sync.Pool{New: func() any { return new([]protoreflect.MapKey) }}

// mapValue writes a map with its keys in protojson's order: false before
// true, numbers ascending, strings by their bytes.
func (w *jsonWriter) mapValue(mp protoreflect.Map, fd protoreflect.FieldDescriptor) error {
	if mp.Len() == 0 {
		w.b = append(w.b, '{', '}')
		return nil
	}
	kp := mapKeys.Get().(*[]protoreflect.MapKey)
	keys := sortedMapKeys(mp, fd, (*kp)[:0])
	defer func() { clear(keys); *kp = keys[:0]; mapKeys.Put(kp) }()
	w.b = append(w.b, '{')
	vd := fd.MapValue()
	for i, k := range keys {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		ks := k.String()
		if !utf8.ValidString(ks) {
			return errNoFastForm
		}
		w.b = appendJSONString(w.b, ks)
		w.b = append(w.b, ':')
		if err := w.singular(mp.Get(k), vd); err != nil {
			return err
		}
	}
	w.b = append(w.b, '}')
	return nil
}

// sortedMapKeys appends mp's keys to keys in protojson's order: false
// before true, numbers ascending, strings by their bytes.
func sortedMapKeys(mp protoreflect.Map, fd protoreflect.FieldDescriptor, keys []protoreflect.MapKey) []protoreflect.MapKey {
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	switch fd.MapKey().Kind() {
	case protoreflect.StringKind:
		slices.SortFunc(keys, func(x, y protoreflect.MapKey) int { return strings.Compare(x.String(), y.String()) })
	case protoreflect.BoolKind:
		slices.SortFunc(keys, func(x, y protoreflect.MapKey) int { return cmpBool(x.Bool(), y.Bool()) })
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		slices.SortFunc(keys, func(x, y protoreflect.MapKey) int { return cmp.Compare(x.Uint(), y.Uint()) })
	default:
		slices.SortFunc(keys, func(x, y protoreflect.MapKey) int { return cmp.Compare(x.Int(), y.Int()) })
	}
	return keys
}

// cmpBool orders false before true.
func cmpBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case !x:
		return -1
	}
	return 1
}

// value writes a google.protobuf.Value: its one kind's JSON. Like
// CheckMessage, it refuses a Value with no kind, a number that is not
// finite, and Values nested more than MaxValueDepth deep.
func (w *jsonWriter) value(m protoreflect.Message) error {
	fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("kind"))
	if fd == nil || w.valueDepth > MaxValueDepth {
		return errNoFastForm
	}
	v := m.Get(fd)
	if fd.Kind() == protoreflect.DoubleKind {
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return errNoFastForm
		}
	}
	w.valueDepth++
	err := w.singular(v, fd)
	w.valueDepth--
	return err
}

// timestamp writes a google.protobuf.Timestamp as RFC 3339 in UTC with 0,
// 3, 6 or 9 digits of fraction, in the range CheckMessage allows.
func (w *jsonWriter) timestamp(m protoreflect.Message) error {
	fs := m.Descriptor().Fields()
	sec, nanos := m.Get(fs.ByNumber(1)).Int(), m.Get(fs.ByNumber(2)).Int()
	if sec < minTimestamp || sec > maxTimestamp || nanos < 0 || nanos > 999_999_999 {
		return errNoFastForm
	}
	w.b = append(w.b, '"')
	w.b = time.Unix(sec, nanos).UTC().AppendFormat(w.b, "2006-01-02T15:04:05")
	if nanos != 0 {
		digits := 9
		for range 2 {
			if nanos%1000 != 0 {
				break
			}
			nanos /= 1000
			digits -= 3
		}
		w.b = append(w.b, '.')
		var digitsBuf [9]byte
		s := strconv.AppendInt(digitsBuf[:0], nanos, 10)
		for range digits - len(s) {
			w.b = append(w.b, '0')
		}
		w.b = append(w.b, s...)
	}
	w.b = append(w.b, 'Z', '"')
	return nil
}

// appendJSONString writes s (valid UTF-8) quoted as protojson does:
// `"` and `\` escaped, control characters as \b \f \n \r \t or \u00XX,
// everything else as it is.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= ' ' && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		b = append(b, '\\')
		switch c {
		case '"', '\\':
			b = append(b, c)
		case '\b':
			b = append(b, 'b')
		case '\f':
			b = append(b, 'f')
		case '\n':
			b = append(b, 'n')
		case '\r':
			b = append(b, 'r')
		case '\t':
			b = append(b, 't')
		default:
			b = append(b, 'u')
			b = append(b, "0000"[1+(bits.Len32(uint32(c))-1)/4:]...)
			b = strconv.AppendUint(b, uint64(c), 16)
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONFloat writes a float as protojson does: NaN and the infinities
// as strings, otherwise the shortest representation that reads back the
// same, in exponent form below 1e-6 and from 1e21.
func appendJSONFloat(b []byte, f float64, bitSize int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	fmt := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bitSize == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bitSize == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			fmt = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, fmt, -1, bitSize)
	if fmt == 'e' { // e-07 as e-7
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
