package rpc

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
)

// withUnknownField returns m with an unknown varint field 999 added.
func withUnknownField[M proto.Message](m M) M {
	r := m.ProtoReflect()
	r.SetUnknown(protowire.AppendVarint(protowire.AppendTag(r.GetUnknown(), 999, protowire.VarintType), 1))
	return m
}

// TestIngestRefusesUndecodableSpans (issue 9, item 5): a span that has no
// lossless proto JSON form is refused at ingest, naming the attribute at
// any depth, over the binary protocols as well.
func TestIngestRefusesUndecodableSpans(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ingester := s.key(t, policy.Ingester, "default")
	nested := func(v *structpb.Value, depth int) *structpb.Value {
		for range depth {
			v = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{v}})
		}
		return v
	}
	tests := []struct {
		name  string
		set   func(s *v1.Span)
		field string
	}{
		{"attribute without a kind", func(s *v1.Span) { s.Attributes["k"] = &structpb.Value{} },
			`spans[1].attributes["k"]: google.protobuf.Value has no kind`},
		{"struct field without a kind", func(s *v1.Span) {
			s.Attributes["k"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"inner": {}}})
		}, `spans[1].attributes["k"].struct_value.fields["inner"]: google.protobuf.Value has no kind`},
		{"list value without a kind", func(s *v1.Span) {
			s.Attributes["k"] = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewBoolValue(true), {}}})
		}, `spans[1].attributes["k"].list_value.values[1]: google.protobuf.Value has no kind`},
		{"values nested too deep", func(s *v1.Span) { s.Attributes["k"] = nested(structpb.NewBoolValue(true), 40) },
			`spans[1].attributes["k"]`},
		{"unknown field", func(s *v1.Span) { withUnknownField(s) }, "spans[1]: unknown field 999 of veritrace.v1.Span"},
		{"unknown field in a nested message", func(s *v1.Span) { withUnknownField(s.Model) }, "spans[1].model: unknown field 999 of veritrace.v1.Model"},
	}
	for _, protocol := range []string{"connect", "grpc"} {
		c := s.clients(protocol, "", ingester)
		for _, tt := range tests {
			t.Run(protocol+"/"+tt.name, func(t *testing.T) {
				sp := testSpan(5)
				tt.set(sp)
				_, err := c.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(4), sp}}))
				wantCode(t, "AppendSpans()", err, connect.CodeInvalidArgument, tt.field)
			})
		}
	}
	if n, _ := s.l.Size(ctx, "default"); n != 0 {
		t.Fatalf("log size after refused batches = %d, want 0", n)
	}
}

// decodeError returns the decode_error field of an answer message, "" if
// it is unset (or, on older code, does not exist).
func decodeError(m proto.Message) string {
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName("decode_error")
	if fd == nil {
		return ""
	}
	return r.Get(fd).String()
}

// TestReadersSurviveAnyPayload (issue 9, item 5): payloads written straight
// into the ledger, past the RPC validator, that do not decode. Every
// reader answers, showing such an entry as undecodable, never an internal
// error for the whole answer.
func TestReadersSurviveAnyPayload(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	marshal := proto.MarshalOptions{Deterministic: true}

	// A version whose payload is not a Version.
	vid := sha256.Sum256([]byte("not a version"))
	badVersion := ledger.Record{Kind: format.KindVersion, SubKind: uint8(format.VersionPrompt), Version: &ledger.VersionName{Name: "bad", Label: "1"},
		RetentionClass: "versions", Payload: []byte{0xff, 0xff, 0xff}}
	badVersion.Refs[0] = vid
	// Spans of one trace: a span whose attribute has no kind (ingest took
	// those before), one that is not protobuf, one with an unknown field;
	// and a hold record whose JSON is not UTF-8.
	span := func(n int, payload func(*v1.Span) []byte) ledger.Record {
		sp := testSpan(n)
		sp.TraceId = bytes.Repeat([]byte{0x77}, 16)
		r, err := spanRecord("span", sp, maxSpanBytes)
		if err != nil {
			t.Fatal(err)
		}
		r.Payload = payload(sp)
		return r
	}
	legacy := span(1, func(sp *v1.Span) []byte {
		sp.Attributes["legacy"] = &structpb.Value{}
		b, _ := marshal.Marshal(sp)
		return b
	})
	legacy.Refs[0] = vid
	garbage := span(2, func(*v1.Span) []byte { return []byte("\xffnot protobuf") })
	unknown := span(3, func(sp *v1.Span) []byte {
		b, _ := marshal.Marshal(withUnknownField(sp))
		return b
	})
	hold := ledger.Record{Kind: format.KindHold, SubKind: format.HoldPlaced, RetentionClass: "records", ID: sha256.Sum256([]byte("hold")), Payload: []byte("{\"id\": \"\xff\"")}
	for _, recs := range [][]ledger.Record{{badVersion}, {legacy, garbage, unknown, hold}} {
		if _, err := s.l.Append(ctx, "default", recs); err != nil {
			t.Fatal(err)
		}
	}
	bad := map[uint64]string{0: "version", 1: "span without kind", 2: "garbage span", 3: "unknown field", 4: "hold"}
	trace := garbage.TraceID[:]
	for _, protocol := range []string{"connect", "grpc", "json"} {
		t.Run(protocol, func(t *testing.T) {
			c := s.clients(protocol, "", s.key(t, policy.Auditor, "default"))
			for i, what := range bad {
				resp, err := c.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: i}))
				if err != nil {
					t.Errorf("GetEntry(%d, %s) = %v", i, what, err)
					continue
				}
				e := resp.Msg.GetEntry()
				if decodeError(e) == "" || e.GetRecord() != nil || len(e.GetPayload()) == 0 {
					t.Errorf("GetEntry(%d, %s): decode_error %q, record %v, %d payload bytes; want an error, no record and the payload",
						i, what, decodeError(e), e.GetRecord(), len(e.GetPayload()))
				}
			}
			tr, err := c.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: trace}))
			if err != nil {
				t.Errorf("GetTrace() = %v", err)
			} else {
				undecodable := 0
				var walk func(ns []*v1.SpanNode)
				walk = func(ns []*v1.SpanNode) {
					for _, n := range ns {
						if decodeError(n) != "" && n.GetSpan() == nil {
							undecodable++
						}
						walk(n.GetChildren())
					}
				}
				walk(tr.Msg.GetRoots())
				if undecodable != 3 || len(tr.Msg.GetVersions()) != 1 || decodeError(tr.Msg.GetVersions()[0]) == "" ||
					tr.Msg.GetVersions()[0].GetId() != hex.EncodeToString(vid[:]) {
					t.Errorf("GetTrace(): %d undecodable spans, versions %v; want 3 and the undecodable version", undecodable, tr.Msg.GetVersions())
				}
			}
			v, err := c.ingest.GetVersion(ctx, connect.NewRequest(&v1.GetVersionRequest{Id: hex.EncodeToString(vid[:])}))
			if err != nil || decodeError(v.Msg.GetVersion()) == "" {
				t.Errorf("GetVersion(undecodable) = %v, %v", v, err)
			}
			q, err := c.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: &v1.TraceQuery{}}))
			if err != nil || len(q.Msg.GetTraces()) != 1 {
				t.Errorf("QueryTraces() = %v, %v", q, err)
			}
			b, err := readBundle(ctx, c, &v1.TraceQuery{TraceId: trace}, 0)
			if err != nil {
				t.Fatalf("ExportBundle() = %v", err)
			}
			// The bundle says what the ledger holds: the garbage span's
			// payload is no span at all, which the verifier reports; the
			// others are shown as having no decoded form.
			key, _ := note.NewVerifier(s.l.VerifierKey())
			rep := bundle.Verify(bytes.NewReader(b), int64(len(b)), key, nil)
			var out strings.Builder
			rep.Write(&out)
			if report := zipFile(t, b, bundle.ReportFile); strings.Count(report, "(payload not decodable)") != 4 {
				t.Errorf("report.html shows %d undecodable spans and versions, want 4", strings.Count(report, "(payload not decodable)"))
			}
			if failed := strings.Join(rep.Failed(), ","); failed != bundle.CheckIdentity || !strings.Contains(out.String(), "entry 2: does not parse as veritrace.v1.Span") ||
				!strings.Contains(out.String(), "note: entry 1 has no decoded form") || !strings.Contains(out.String(), "note: entry 3 has no decoded form") {
				t.Errorf("the bundle's report:\n%s", out.String())
			}
		})
	}
}

// zipFile returns one file of a zip.
func zipFile(t *testing.T, b []byte, name string) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := zr.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	c, _ := io.ReadAll(rc)
	return string(c)
}
