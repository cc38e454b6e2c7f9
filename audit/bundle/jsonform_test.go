package bundle

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit/bundle/bundletest"
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
			bundletest.FillRandom(r, m.ProtoReflect(), 0)
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
		bundletest.FillRandom(r, m.ProtoReflect(), 0)
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

// TestCheckMessageNamesTheFirstFieldInOrder: with several parts refused,
// CheckMessage names the first in declaration order (and map entries in
// key order) in every build, so that an exported entry file's
// "undecodable" is the same whatever binary wrote it. It walked the
// message with Range, whose order protobuf varies from binary to binary:
// the console's vectors, made by one build, went stale under -race.
func TestCheckMessageNamesTheFirstFieldInOrder(t *testing.T) {
	bad := &timestamppb.Timestamp{Seconds: maxTimestamp + 1}
	sp := &v1.Span{StartTime: bad, EndTime: bad, Attributes: map[string]*structpb.Value{"b": {}, "a": {}, "c": {}}}
	err := CheckMessage(sp)
	if err == nil || !strings.HasPrefix(err.Error(), "start_time: ") {
		t.Errorf("CheckMessage = %v, want start_time's failure", err)
	}
	sp.StartTime, sp.EndTime = nil, nil
	if err := CheckMessage(sp); err == nil || !strings.Contains(err.Error(), `attributes["a"]`) {
		t.Errorf("CheckMessage = %v, want the failure of attributes[\"a\"]", err)
	}
}
