package otlp

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/audit/bundle"
)

var update = flag.Bool("update", false, "rewrite the golden mapping files")

// stable renders a message as indented JSON with sorted keys (protojson's
// own output varies on purpose).
func stable(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// TestMappingGolden maps the spans of each convention layer, as their
// senders emit them (testdata/mapping/*.json, OTLP JSON), and compares the
// normalised spans and version references with the golden files
// (regenerate with -update after a deliberate change).
func TestMappingGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/mapping/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no mapping cases: %v", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".golden.json") {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ex, err := Decode(Traces, ContentJSON, body)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			for _, g := range ex.Groups {
				for _, it := range g.Items {
					if g.Err != nil || it.Err != nil {
						t.Fatalf("decode: %v %v", g.Err, it.Err)
					}
					m := MapSpan(g, it, Config{})
					// The source is the span as received, and its resource
					// and scope are those of the resource entry it names.
					src := m.Span.GetOtlp()
					back := &trace.Span{}
					if err := proto.Unmarshal(src.GetSpan(), back); err != nil {
						t.Fatal(err)
					}
					if !proto.Equal(back, it.Span) || !bytes.Equal(src.GetResourceScopeSha256(), g.Digest[:]) {
						t.Fatalf("source %v is not the span as received", back)
					}
					rs, _, err := bundle.ResourceScope(g.ResourceScope)
					if err != nil || !proto.Equal(rs.Resource, g.Resource) || !proto.Equal(rs.ScopeSpans[0].Scope, g.Scope) {
						t.Fatalf("resource entry %v, %v does not hold the resource and scope", rs, err)
					}
					again := MapSpan(g, it, Config{})
					if !proto.Equal(again.Span.GetOtlp(), src) {
						t.Fatalf("mapping the same span twice gave different source bytes")
					}
					m.Span.Otlp = nil
					got.Write(stable(t, m.Span))
					for _, r := range m.Refs {
						b, _ := json.Marshal(r)
						got.Write(append(b, '\n'))
					}
				}
			}
			golden := strings.TrimSuffix(f, ".json") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got.String()); diff != "" {
				t.Errorf("mapping of %s differs from %s (-want +got):\n%s", f, golden, diff)
			}
		})
	}
}

// TestJSONHexIDs: OTLP JSON ids are hex. Stock protojson decodes a hex
// trace id as base64 without an error and yields the wrong bytes; our
// decoder yields the right ones, in either case.
func TestJSONHexIDs(t *testing.T) {
	const body = `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174","parentSpanId":"","name":"x","startTimeUnixNano":1763719200000000000,"endTimeUnixNano":"1763719201000000000","kind":3,"unknownField":{"a":1},
	"links":[{"traceId":"00000000000000000000000000000001","spanId":"0000000000000002"}]}]}]}]}`
	wantTrace := []byte{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c}
	stock := &coltrace.ExportTraceServiceRequest{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(body), stock); err != nil {
		t.Fatalf("stock protojson: %v", err)
	}
	if got := stock.ResourceSpans[0].ScopeSpans[0].Spans[0].TraceId; bytes.Equal(got, wantTrace) || len(got) == 16 {
		t.Fatalf("stock protojson decoded the trace id right (%x): the premise of this test is wrong", got)
	}
	sp := decodeJSONSpan(t, body)
	if !bytes.Equal(sp.TraceId, wantTrace) || !bytes.Equal(sp.SpanId, []byte{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74}) || len(sp.ParentSpanId) != 0 {
		t.Errorf("ids = %x %x %x", sp.TraceId, sp.SpanId, sp.ParentSpanId)
	}
	if sp.StartTimeUnixNano != 1763719200000000000 || sp.EndTimeUnixNano != 1763719201000000000 {
		t.Errorf("times = %d %d: int64 as a number and as a string", sp.StartTimeUnixNano, sp.EndTimeUnixNano)
	}
	if l := sp.Links[0]; l.TraceId[15] != 1 || l.SpanId[7] != 2 {
		t.Errorf("link ids = %x %x", l.TraceId, l.SpanId)
	}
	// Every id survives, in either case.
	for i := range 500 {
		var tid [16]byte
		var sid [8]byte
		rand.Read(tid[:])
		rand.Read(sid[:])
		th, sh := hex.EncodeToString(tid[:]), hex.EncodeToString(sid[:])
		if i%2 == 1 {
			th, sh = strings.ToUpper(th), strings.ToUpper(sh)
		}
		body := `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"` + th + `","spanId":"` + sh + `"}]}]}]}`
		if sp := decodeJSONSpan(t, body); !bytes.Equal(sp.TraceId, tid[:]) || !bytes.Equal(sp.SpanId, sid[:]) {
			t.Fatalf("ids %s %s decoded to %x %x", th, sh, sp.TraceId, sp.SpanId)
		}
	}
	for _, bad := range []string{
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"W46/95gDgQPSabYzgT/GDA=="}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"xyz"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":12}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc6"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc6zz"}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{"links":[{"spanId":"W46/95gDgQM="}]}]}]}]}`,
	} {
		// A bad id costs its span only (the export's other spans are
		// kept), refused as bad data.
		ex, err := Decode(Traces, ContentJSON, []byte(bad))
		var bd *BadDataError
		if err != nil || !errorsAs(ex.Groups[0].Items[0].Err, &bd) {
			t.Errorf("Decode(%s) = %v; want its span refused with a BadDataError", bad, err)
		}
	}
}

// decodeJSONSpan decodes an OTLP JSON export of one span.
func decodeJSONSpan(t *testing.T, body string) *trace.Span {
	t.Helper()
	ex, err := Decode(Traces, ContentJSON, []byte(body))
	if err != nil {
		t.Fatalf("Decode(%s) = %v", body, err)
	}
	it := ex.Groups[0].Items[0]
	if it.Err != nil {
		t.Fatalf("Decode(%s): %v", body, it.Err)
	}
	return it.Span
}

func errorsAs(err error, target **BadDataError) bool {
	if e, ok := err.(*BadDataError); ok {
		*target = e
		return true
	}
	return false
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestReadBodyGzipBomb: a small gzip body that inflates far past the limit
// is refused after inflating at most the limit: only a sliver of the
// compressed input is consumed.
func TestReadBodyGzipBomb(t *testing.T) {
	const limit = 1 << 20
	// 256 gzip members of 1 MiB of zeros each (a gzip stream may hold
	// several members): 256 MiB inflated from about 256 KiB.
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	var buf bytes.Buffer
	for range 256 {
		buf.Write(member.Bytes())
	}
	body := &countingReader{r: bytes.NewReader(buf.Bytes())}
	r, _ := http.NewRequest(http.MethodPost, "/v1/traces", io.NopCloser(body))
	r.Header.Set("Content-Encoding", "gzip")
	if _, err := ReadBody(r, limit); err != ErrTooLarge {
		t.Fatalf("ReadBody = %v, want ErrTooLarge", err)
	}
	if body.n > buf.Len()/10 {
		t.Errorf("read %d of %d compressed bytes: the bomb was inflated far past the limit", body.n, buf.Len())
	}
	// Within the limit: read whole.
	r, _ = http.NewRequest(http.MethodPost, "/v1/traces", bytes.NewReader(buf.Bytes()[:0]))
	if b, err := ReadBody(r, limit); err != nil || len(b) != 0 {
		t.Errorf("empty body = %d bytes, %v", len(b), err)
	}
}

func TestMediaType(t *testing.T) {
	for in, want := range map[string]string{
		"application/x-protobuf": ContentProtobuf, "application/json": ContentJSON,
		"application/json; charset=utf-8": ContentJSON, "Application/JSON": ContentJSON,
		"text/plain": "", "": "", "application/protobuf": "",
	} {
		got, err := MediaType(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("MediaType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// FuzzUnmarshalTraces: no input crashes the decoder or the mapping, and
// every span that decodes renders as OTLP JSON.
func FuzzUnmarshalTraces(f *testing.F) {
	files, _ := filepath.Glob("testdata/mapping/*.json")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil && !strings.HasSuffix(file, ".golden.json") {
			f.Add(b, true)
			if ex, err := Decode(Traces, ContentJSON, b); err == nil {
				f.Add(exportProto(ex), false)
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		ct := ContentProtobuf
		if isJSON {
			ct = ContentJSON
		}
		ex, err := Decode(Traces, ct, body)
		if err != nil {
			return
		}
		for _, g := range ex.Groups {
			for _, it := range g.Items {
				if g.Err != nil || it.Err != nil {
					continue
				}
				m := MapSpan(g, it, Config{})
				if _, err := SourceJSON(m.Span.Otlp, g.ResourceScope); err != nil {
					t.Fatal(err)
				}
				if _, err := SourceJSON(ResourceEntry(it.TraceID(), g).GetOtlp(), nil); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// exportProto re-encodes a decoded export as an ExportTraceServiceRequest.
func exportProto(ex *Export) []byte {
	var out []byte
	for _, g := range ex.Groups {
		rs, _, err := bundle.ResourceScope(g.ResourceScope)
		if err != nil {
			continue
		}
		for _, it := range g.Items {
			if it.Span != nil {
				rs.ScopeSpans[0].Spans = append(rs.ScopeSpans[0].Spans, it.Span)
			}
		}
		b, _ := proto.Marshal(&coltrace.ExportTraceServiceRequest{ResourceSpans: []*trace.ResourceSpans{rs}})
		out = append(out, b...)
	}
	return out
}

// FuzzUnmarshalLogs: likewise for logs.
func FuzzUnmarshalLogs(f *testing.F) {
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","eventName":"gen_ai.client.inference.operation.details","body":{"kvlistValue":{"values":[{"key":"content","value":{"stringValue":"hi"}}]}}}]}]}]}`), true)
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		ct := ContentProtobuf
		if isJSON {
			ct = ContentJSON
		}
		ex, err := Decode(Logs, ct, body)
		if err != nil {
			return
		}
		for _, g := range ex.Groups {
			for _, it := range g.Items {
				if g.Err != nil || it.Err != nil {
					continue
				}
				m := MapLogRecord(g, it, Config{})
				if _, err := SourceJSON(m.Span.Otlp, g.ResourceScope); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
