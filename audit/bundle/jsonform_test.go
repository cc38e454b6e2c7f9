package bundle

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// protojsonCompact is what appendProtoJSON must write: protojson's bytes
// without their white space outside strings.
func protojsonCompact(m proto.Message) ([]byte, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	return compactJSON(b), nil
}

// checkProtoJSON fails t unless appendProtoJSON accepts m only when
// CheckMessage does, and payloadJSON writes protojson's form of m exactly
// when CheckMessage accepts it.
func checkProtoJSON(t *testing.T, m proto.Message) {
	t.Helper()
	checkErr := CheckMessage(m)
	if got, err := appendProtoJSON(nil, m.ProtoReflect()); err == nil && checkErr != nil {
		t.Fatalf("appendProtoJSON(%v) = %s, CheckMessage refuses it: %v", m, got, checkErr)
	}
	got, err := payloadJSON(nil, m)
	if checkErr != nil {
		if err == nil {
			t.Fatalf("payloadJSON(%v) = %s, CheckMessage refuses it: %v", m, got, checkErr)
		}
		return
	}
	want, werr := protojsonCompact(m)
	switch {
	case err != nil:
		t.Fatalf("payloadJSON(%v) fails (%v), protojson writes %s (%v)", m, err, want, werr)
	case werr != nil:
		t.Fatalf("payloadJSON(%v) = %s, protojson refuses it: %v", m, got, werr)
	case !bytes.Equal(got, want):
		t.Fatalf("payloadJSON(%v) =\n%s\nprotojson:\n%s", m, got, want)
	}
	// The verifier's comparison accepts protojson's own bytes, white
	// space and all.
	pj, _ := protojson.Marshal(m)
	if !equalCompact(got, pj) {
		t.Fatalf("equalCompact(%s, protojson's %s) = false", got, pj)
	}
}

// nestedValue returns a Value holding a list nested depth lists deep.
func nestedValue(depth int) *structpb.Value {
	v := structpb.NewStringValue("x")
	for range depth {
		v = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{v}})
	}
	return v
}

// TestProtoJSONMatchesProtojson fills every payload message with random
// values drawn from edge cases (every scalar kind, escapes and control
// characters, float bounds, unknown enum numbers, timestamps at the ends of
// their range, empty and nested Values, maps of many keys) and checks the
// fast form against protojson's.
func TestProtoJSONMatchesProtojson(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	for _, k := range []format.Kind{format.KindSpan, format.KindVersion, format.KindAccess} {
		r := rand.New(rand.NewPCG(uint64(k), 9))
		for range n {
			m := NewPayloadMessage(k)
			fillRandom(r, m.ProtoReflect(), 0)
			checkProtoJSON(t, m)
		}
		checkProtoJSON(t, NewPayloadMessage(k)) // empty
	}
	// Values nested up to and past MaxValueDepth, and unknown fields.
	for _, depth := range []int{MaxValueDepth - 1, MaxValueDepth, MaxValueDepth + 1, MaxValueDepth + 5} {
		checkProtoJSON(t, &v1.Span{Attributes: map[string]*structpb.Value{"deep": nestedValue(depth)}})
	}
	unknown := &v1.Span{Name: "n", Status: &v1.Status{Message: "m"}}
	unknown.GetStatus().ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
	checkProtoJSON(t, unknown)
}

// FuzzProtoJSON checks the fast form against protojson on arbitrary
// payloads of each protobuf kind.
func FuzzProtoJSON(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 30 {
		k := []format.Kind{format.KindSpan, format.KindVersion, format.KindAccess}[i%3]
		m := NewPayloadMessage(k)
		fillRandom(r, m.ProtoReflect(), 0)
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(k), b)
	}
	f.Fuzz(func(t *testing.T, kind uint8, payload []byte) {
		k := []format.Kind{format.KindSpan, format.KindVersion, format.KindAccess}[int(kind)%3]
		m := NewPayloadMessage(k)
		if unmarshalPayload.Unmarshal(payload, m) != nil {
			return
		}
		checkProtoJSON(t, m)
	})
}

var (
	randStrings = []string{"", "a", "hello, world", "\x00\x01\x1f\x7f", "\"quoted\" \\ back\\slash", "<>&'", "\u2028\u2029", "\ufffd", "é日本😀", "\b\f\n\r\t", "\u00e9\u0301", "0123456789abcdef", " leading and trailing "}
	randFloats  = []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99999e-7, 1e-7, 1e20, 1e21, 1.5e300, -2.5e-300, 5e-324, math.MaxFloat64, math.SmallestNonzeroFloat32, math.MaxFloat32, 123456789.125, 1.0 / 3, math.NaN(), math.Inf(1), math.Inf(-1)}
	randInts    = []int64{0, 1, -1, 127, 128, 1 << 31, -(1 << 31), math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64, 1 << 53, 1<<53 + 1}
	randStamps  = [][2]int64{{0, 0}, {minTimestamp, 0}, {maxTimestamp, 999_999_999}, {1, 1}, {1_763_600_000, 500_000_000}, {1_763_600_000, 123_000}, {1_763_600_000, 7}, {-1, 999_999_999}, {-62135596801, 0}, {0, -1}, {0, 1_000_000_000}}
)

// fillRandom sets a random selection of m's fields to values from the
// tables above, nesting messages at most six deep.
func fillRandom(r *rand.Rand, m protoreflect.Message, depth int) {
	d := m.Descriptor()
	switch d.FullName() {
	case "google.protobuf.Timestamp":
		ts := randStamps[r.IntN(len(randStamps))]
		m.Set(d.Fields().ByNumber(1), protoreflect.ValueOfInt64(ts[0]))
		m.Set(d.Fields().ByNumber(2), protoreflect.ValueOfInt32(int32(ts[1])))
		return
	case "google.protobuf.Value":
		fields := d.Fields()
		fd := fields.Get(r.IntN(fields.Len()))
		if depth > 5 && fd.Kind() == protoreflect.MessageKind {
			fd = fields.ByName("string_value")
		}
		if r.IntN(50) == 0 { // now and then, no kind at all
			return
		}
		setRandom(r, m, fd, depth)
		return
	}
	if r.IntN(200) == 0 {
		m.SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 1000, protowire.VarintType), 7))
	}
	fields := d.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if r.IntN(3) == 0 || depth > 5 && fd.Kind() == protoreflect.MessageKind {
			continue
		}
		setRandom(r, m, fd, depth)
	}
}

func setRandom(r *rand.Rand, m protoreflect.Message, fd protoreflect.FieldDescriptor, depth int) {
	switch {
	case fd.IsMap():
		mp := m.Mutable(fd).Map()
		for range r.IntN(6) {
			k := randScalar(r, fd.MapKey()).MapKey()
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v := mp.NewValue()
				fillRandom(r, v.Message(), depth+1)
				mp.Set(k, v)
			} else {
				mp.Set(k, randScalar(r, fd.MapValue()))
			}
		}
	case fd.IsList():
		l := m.Mutable(fd).List()
		for range r.IntN(4) {
			if fd.Kind() == protoreflect.MessageKind {
				v := l.NewElement()
				fillRandom(r, v.Message(), depth+1)
				l.Append(v)
			} else {
				l.Append(randScalar(r, fd))
			}
		}
	case fd.Kind() == protoreflect.MessageKind:
		fillRandom(r, m.Mutable(fd).Message(), depth+1)
	default:
		m.Set(fd, randScalar(r, fd))
	}
}

func randScalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	i := randInts[r.IntN(len(randInts))]
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0)
	case protoreflect.StringKind:
		s := randStrings[r.IntN(len(randStrings))]
		if r.IntN(2) == 0 {
			s += randStrings[r.IntN(len(randStrings))]
		}
		return protoreflect.ValueOfString(s)
	case protoreflect.BytesKind:
		b := make([]byte, r.IntN(40))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		return protoreflect.ValueOfBytes(b)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(i))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(i))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(i)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(i))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(randFloats[r.IntN(len(randFloats))]))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(randFloats[r.IntN(len(randFloats))])
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if r.IntN(5) == 0 {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(vals.Len() + r.IntN(3))) // unknown number
		}
		return protoreflect.ValueOfEnum(vals.Get(r.IntN(vals.Len())).Number())
	}
	panic("no random value for " + fd.Kind().String())
}
