package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// A payload is decodable when it has a lossless proto JSON form. For the
// protobuf payloads (span, version and access entries) that is when
//
//   - it parses as the protobuf binary encoding of its kind's message
//     (veritrace.v1.Span, Version or AccessRecord; strings valid UTF-8),
//     with messages nested at most MaxNesting deep;
//   - it holds no field the message does not define (an unknown field),
//     at any depth;
//   - every google.protobuf.Value in it has exactly one kind set, a finite
//     number_value, and nests at most MaxValueDepth Values deep (an
//     attribute's own value being depth 0);
//   - every google.protobuf.Timestamp in it lies in 0001-01-01T00:00:00Z ..
//     9999-12-31T23:59:59.999999999Z with nanos in 0..999,999,999.
//
// For the JSON payloads (tombstone, retention and hold entries) it is when
// the payload is valid UTF-8 JSON. The server refuses spans that are not
// decodable at ingest, every reader shows an undecodable payload as such,
// and the verifier applies the same rules (docs/BUNDLE.md).
const (
	MaxValueDepth = 32
	MaxNesting    = 128
)

var unmarshalPayload = proto.UnmarshalOptions{RecursionLimit: MaxNesting}

// PayloadError says where and why a payload is not decodable. Path is
// the field path inside the message, e.g. `attributes["k"].list_value.values[2]`;
// empty for the message as a whole.
type PayloadError struct {
	Path   string
	Reason string
}

func (e *PayloadError) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

// NewPayloadMessage returns an empty message of the payload type of
// entry kind k: a Span, Version or AccessRecord; nil for the JSON kinds.
func NewPayloadMessage(k format.Kind) proto.Message {
	switch k {
	case format.KindSpan:
		return &v1.Span{}
	case format.KindVersion:
		return &v1.Version{}
	case format.KindAccess:
		return &v1.AccessRecord{}
	}
	return nil
}

// jsonPayload reports whether entries of kind k carry JSON payloads.
func jsonPayload(k format.Kind) bool {
	return k == format.KindTombstone || k == format.KindRetention || k == format.KindHold
}

// ParsePayload parses a protobuf payload of entry kind k and checks that
// it is decodable. The message is returned even when only the later
// checks fail (err is then a *PayloadError with a path), so that callers
// can still read its ids.
func ParsePayload(k format.Kind, payload []byte) (proto.Message, error) {
	m := NewPayloadMessage(k)
	if m == nil {
		return nil, &PayloadError{Reason: fmt.Sprintf("%s entries carry no protobuf payload", k)}
	}
	if err := unmarshalPayload.Unmarshal(payload, m); err != nil {
		return nil, &PayloadError{Reason: fmt.Sprintf("does not parse as %s: %v", m.ProtoReflect().Descriptor().FullName(), err)}
	}
	return m, CheckMessage(m)
}

// DecodePayload returns a payload of entry kind k in its decoded form:
// proto JSON for a span, version or access entry, the compacted JSON of a
// tombstone, retention or hold entry. It fails with a *PayloadError when
// the payload is not decodable.
func DecodePayload(k format.Kind, payload []byte) (json.RawMessage, error) {
	if jsonPayload(k) {
		var out bytes.Buffer
		if !utf8.Valid(payload) {
			return nil, &PayloadError{Reason: "not valid UTF-8"}
		}
		if err := json.Compact(&out, payload); err != nil {
			return nil, &PayloadError{Reason: fmt.Sprintf("not JSON: %v", err)}
		}
		return out.Bytes(), nil
	}
	_, b, err := parsePayloadJSON(k, payload, nil)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// parsePayloadJSON is ParsePayload that also appends the payload's decoded
// form to dst when it is decodable, walking the message once for both
// (appendProtoJSON).
func parsePayloadJSON(k format.Kind, payload, dst []byte) (proto.Message, []byte, error) {
	m := NewPayloadMessage(k)
	if m == nil {
		return nil, dst, &PayloadError{Reason: fmt.Sprintf("%s entries carry no protobuf payload", k)}
	}
	if err := unmarshalPayload.Unmarshal(payload, m); err != nil {
		return nil, dst, &PayloadError{Reason: fmt.Sprintf("does not parse as %s: %v", m.ProtoReflect().Descriptor().FullName(), err)}
	}
	b, err := payloadJSON(dst, m)
	return m, b, err
}

// CheckMessage checks that m has a lossless proto JSON form (see
// MaxValueDepth) and returns a *PayloadError naming the first part that
// does not. The server applies it to spans at ingest.
func CheckMessage(m proto.Message) error {
	var c checker
	c.message(m.ProtoReflect(), 0)
	return c.err
}

type checker struct {
	path []string
	err  error
}

func (c *checker) fail(format string, args ...any) {
	if c.err == nil {
		c.err = &PayloadError{Path: strings.Join(c.path, ""), Reason: fmt.Sprintf(format, args...)}
	}
}

func (c *checker) push(s string) { c.path = append(c.path, s) }
func (c *checker) pop()          { c.path = c.path[:len(c.path)-1] }

// message checks m; valueDepth is the Value nesting m is at.
func (c *checker) message(m protoreflect.Message, valueDepth int) {
	if c.err != nil {
		return
	}
	if u := m.GetUnknown(); len(u) > 0 {
		num, _, _ := protowire.ConsumeTag(u)
		c.fail("unknown field %d of %s", num, m.Descriptor().FullName())
		return
	}
	switch m.Descriptor().FullName() {
	case "google.protobuf.Value":
		if valueDepth > MaxValueDepth {
			c.fail("google.protobuf.Value nested more than %d deep", MaxValueDepth)
			return
		}
		od := m.Descriptor().Oneofs().ByName("kind")
		fd := m.WhichOneof(od)
		if fd == nil {
			c.fail("google.protobuf.Value has no kind (set one of null_value, number_value, string_value, bool_value, struct_value, list_value)")
			return
		}
		if fd.Name() == "number_value" {
			if f := m.Get(fd).Float(); math.IsNaN(f) || math.IsInf(f, 0) {
				c.fail("google.protobuf.Value number_value must be finite")
				return
			}
		}
		valueDepth++
	case "google.protobuf.Timestamp":
		fs := m.Descriptor().Fields()
		sec, nanos := m.Get(fs.ByName("seconds")).Int(), m.Get(fs.ByName("nanos")).Int()
		if sec < minTimestamp || sec > maxTimestamp || nanos < 0 || nanos > 999_999_999 {
			c.fail("google.protobuf.Timestamp out of range (0001-01-01 to 9999-12-31)")
			return
		}
		return
	}
	// Fields in declaration order and map entries in key order, so that
	// the first failure, which names its field, is the same in every
	// build (Range's order is not: protobuf varies it from binary to
	// binary), and so is an exported entry file's "undecodable".
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len() && c.err == nil; i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		switch {
		case fd.IsMap():
			if !isMessage(fd.MapValue()) {
				continue
			}
			mp := v.Map()
			keys := sortedMapKeys(mp, fd, nil)
			for _, k := range keys {
				if c.err != nil {
					break
				}
				c.push(pathSep(c.path) + string(fd.Name()) + "[" + strconv.Quote(k.String()) + "]")
				c.message(mp.Get(k).Message(), valueDepth)
				c.pop()
			}
		case fd.IsList():
			if !isMessage(fd) {
				continue
			}
			l := v.List()
			for j := 0; j < l.Len() && c.err == nil; j++ {
				c.push(pathSep(c.path) + string(fd.Name()) + "[" + strconv.Itoa(j) + "]")
				c.message(l.Get(j).Message(), valueDepth)
				c.pop()
			}
		case isMessage(fd):
			c.push(pathSep(c.path) + string(fd.Name()))
			c.message(v.Message(), valueDepth)
			c.pop()
		}
	}
}

func pathSep(path []string) string {
	if len(path) == 0 {
		return ""
	}
	return "."
}

func isMessage(fd protoreflect.FieldDescriptor) bool {
	return fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind
}

// The range of google.protobuf.Timestamp seconds: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59Z.
const (
	minTimestamp = -62135596800
	maxTimestamp = 253402300799
)
