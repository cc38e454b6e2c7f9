// Package bundletest makes random payload messages for the tests that
// compare renderings of their proto JSON: audit/bundle's (appendProtoJSON
// against protojson) and the console's (its verifier's against Go's).
package bundletest

import (
	"math"
	"math/rand/v2"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

var (
	randStrings = []string{"", "a", "hello, world", "\x00\x01\x1f\x7f", "\"quoted\" \\ back\\slash", "<>&'", "\u2028\u2029", "\ufffd", "é日本😀", "\b\f\n\r\t", "\u00e9\u0301", "0123456789abcdef", " leading and trailing "}
	randFloats  = []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99999e-7, 1e-7, 1e20, 1e21, 1.5e300, -2.5e-300, 5e-324, math.MaxFloat64, math.SmallestNonzeroFloat32, math.MaxFloat32, 123456789.125, 1.0 / 3, math.NaN(), math.Inf(1), math.Inf(-1)}
	randInts    = []int64{0, 1, -1, 127, 128, 1 << 31, -(1 << 31), math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64, 1 << 53, 1<<53 + 1}
	randStamps  = [][2]int64{{0, 0}, {-62135596800, 0}, {253402300799, 999_999_999}, {1, 1}, {1_763_600_000, 500_000_000}, {1_763_600_000, 123_000}, {1_763_600_000, 7}, {-1, 999_999_999}, {-62135596801, 0}, {0, -1}, {0, 1_000_000_000}}
)

// FillRandom sets a random selection of m's fields to values from the
// tables above, nesting messages at most six deep: values at the edges of
// proto JSON (control characters, U+2028, surrogate pairs, -0, 1e21, the
// int64 extremes, Timestamps at and past their range, unknown enum
// numbers), now and then a Value with no kind and an unknown field, so
// that some of the messages are not decodable.
func FillRandom(r *rand.Rand, m protoreflect.Message, depth int) {
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
				FillRandom(r, v.Message(), depth+1)
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
				FillRandom(r, v.Message(), depth+1)
				l.Append(v)
			} else {
				l.Append(randScalar(r, fd))
			}
		}
	case fd.Kind() == protoreflect.MessageKind:
		FillRandom(r, m.Mutable(fd).Message(), depth+1)
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
