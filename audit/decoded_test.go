package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
)

// decodedBundle exports a bundle of one generation span of alice, its
// payload changed by edit first, and returns the bundle and the name of
// the span's entry file.
func decodedBundle(t *testing.T, f *fixture, edit func(sp *v1.Span)) ([]byte, string) {
	t.Helper()
	rec := spanSpec{trace: 1, span: 1, kind: v1.SpanKind_SPAN_KIND_GENERATION, subject: "alice", model: "m"}.record()
	sp := &v1.Span{}
	if err := proto.Unmarshal(rec.Payload, sp); err != nil {
		t.Fatal(err)
	}
	edit(sp)
	var err error
	if rec.Payload, err = (proto.MarshalOptions{Deterministic: true}).Marshal(sp); err != nil {
		t.Fatal(err)
	}
	if _, err := f.l.Append(context.Background(), "default", []ledger.Record{rec}); err != nil {
		t.Fatal(err)
	}
	b := f.exportBundle(t, Query{SubjectID: "alice"}, 0)
	for name, c := range unzipAll(t, b) {
		if strings.HasPrefix(name, bundle.EntryDir) && bytes.Contains(c, []byte(`"decoded"`)) {
			return b, name
		}
	}
	t.Fatal("the bundle holds no entry with decoded content")
	return nil, ""
}

// verifyDecoded verifies b and reports whether it passed, with the report.
func verifyDecoded(t *testing.T, f *fixture, b []byte) (bool, []string, string) {
	t.Helper()
	rep := bundle.Verify(bytes.NewReader(b), int64(len(b)), f.verifier(t), nil)
	var out strings.Builder
	rep.Write(&out)
	return rep.OK(), rep.Failed(), out.String()
}

// TestVerifyRefusesDecodedInt64AsLossyNumber (attack13 D2): a lying server
// re-signs a bundle whose decoded form writes an int64 field
// (usage.inputTokens, 2^53+1) as a JSON number instead of the string proto
// JSON writes. Every ordinary JSON reader (JavaScript, jq, Go's
// encoding/json into a float64, the console's verifier through JSON.parse)
// reads 2^53: the decoded content shows another value than the payload.
// protojson keeps every digit, so a verifier that parsed the decoded form
// with it and compared messages passed the bundle while the console
// refused it. The decoded form must be the canonical text (docs/BUNDLE.md
// check 9), which both verifiers refuse it for.
func TestVerifyRefusesDecodedInt64AsLossyNumber(t *testing.T) {
	f := newFixture(t)
	honest, _ := decodedBundle(t, f, func(sp *v1.Span) { sp.Usage.InputTokens = 1<<53 + 1 })
	const str, num = `"inputTokens":"9007199254740993"`, `"inputTokens":9007199254740993`
	edited := false
	lying := f.resign(t, honest, func(name string, c []byte) []byte {
		if bytes.Contains(c, []byte(str)) {
			edited = true
			return bytes.Replace(c, []byte(str), []byte(num), 1)
		}
		return c
	}, nil, nil)
	if !edited {
		t.Fatal("no entry file holds " + str)
	}
	var asJSON struct {
		Decoded struct {
			Usage struct {
				InputTokens float64 `json:"inputTokens"`
			} `json:"usage"`
		} `json:"decoded"`
	}
	for name, c := range unzipAll(t, lying) {
		if bytes.Contains(c, []byte(num)) {
			if err := json.Unmarshal(c, &asJSON); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	if asJSON.Decoded.Usage.InputTokens != 1<<53 {
		t.Fatalf("the edited decoded form reads as %.0f in JSON, want 2^53 (the attack needs a lossy number)", asJSON.Decoded.Usage.InputTokens)
	}
	ok, failed, out := verifyDecoded(t, f, lying)
	if ok || !slices.Equal(failed, []string{bundle.CheckDecoded}) {
		t.Errorf("Verify(decoded usage.inputTokens as the JSON number 9007199254740993, read as %.0f) = ok %v, failed %v; want only %q to fail\n%s",
			asJSON.Decoded.Usage.InputTokens, ok, failed, bundle.CheckDecoded, out)
	}
}

// TestVerifyRefusesDecodedInt64WithExponent (attack13 D3): as above, a
// re-signed bundle whose decoded form writes usage.outputTokens (20) as
// "2e1". protojson reads it as 20, protobuf-es (the console) refuses it;
// the canonical text is "20", and both verifiers refuse "2e1".
func TestVerifyRefusesDecodedInt64WithExponent(t *testing.T) {
	f := newFixture(t)
	f.append(t, spanSpec{trace: 1, span: 1, kind: v1.SpanKind_SPAN_KIND_GENERATION, subject: "alice", model: "m"})
	honest := f.exportBundle(t, Query{SubjectID: "alice"}, 0)
	const canonical, exponent = `"outputTokens":"20"`, `"outputTokens":"2e1"`
	edited := false
	lying := f.resign(t, honest, func(name string, c []byte) []byte {
		if bytes.Contains(c, []byte(canonical)) {
			edited = true
			return bytes.Replace(c, []byte(canonical), []byte(exponent), 1)
		}
		return c
	}, nil, nil)
	if !edited {
		t.Fatal("no entry file holds " + canonical)
	}
	ok, failed, out := verifyDecoded(t, f, lying)
	if ok || !slices.Equal(failed, []string{bundle.CheckDecoded}) {
		t.Errorf("Verify(decoded %s for the payload's 20) = ok %v, failed %v; want only %q to fail\n%s", exponent, ok, failed, bundle.CheckDecoded, out)
	}
}

// TestVerifyDecodedCanonicalForm: check 9 passes the canonical proto JSON
// of the payload with any white space outside strings, and refuses every
// other text that reads as the same message, re-signed by a lying server.
// Bundles of formats 1 and 2 may also hold it HTML-escaped, as
// encoding/json wrote entry files before format 3.
func TestVerifyDecodedCanonicalForm(t *testing.T) {
	f := newFixture(t)
	honest, file := decodedBundle(t, f, func(sp *v1.Span) {
		sp.Name = "<tool> & \u2028 \"quoted\""
		sp.Status = &v1.Status{Code: v1.StatusCode_STATUS_CODE_OK}
	})
	decoded := func(c []byte) []byte {
		var e struct {
			Decoded json.RawMessage `json:"decoded"`
		}
		if err := json.Unmarshal(c, &e); err != nil {
			t.Fatal(err)
		}
		return e.Decoded
	}
	entries := unzipAll(t, honest)
	canonical := string(decoded(entries[file]))
	if !strings.Contains(canonical, `"name":"<tool> & `+"\u2028"+` \"quoted\""`) || !strings.Contains(canonical, `"code":"STATUS_CODE_OK"`) {
		t.Fatalf("the honest decoded form is not as expected: %s", canonical)
	}
	var indented, escaped bytes.Buffer
	if err := json.Indent(&indented, []byte(canonical), "\t", "  "); err != nil {
		t.Fatal(err)
	}
	json.HTMLEscape(&escaped, []byte(canonical))
	for _, tt := range []struct {
		name    string
		decoded string
		format  string // the manifest's format, when not the current one
		ok      bool
	}{
		{"as exported", canonical, "", true},
		{"indented", indented.String(), "", true},
		{"HTML-escaped, format 2", escaped.String(), bundle.FormatV2, true},
		{"HTML-escaped, format 3", escaped.String(), "", false},
		{"HTML-escaped in part, format 2", strings.Replace(canonical, "<", `\u003c`, 1), bundle.FormatV2, false},
		{"a character escaped", strings.Replace(canonical, "<tool>", `\u003ctool>`, 1), "", false},
		{"int64 as a number", strings.Replace(canonical, `"outputTokens":"20"`, `"outputTokens":20`, 1), "", false},
		{"enum by number", strings.Replace(canonical, `"code":"STATUS_CODE_OK"`, `"code":1`, 1), "", false},
		{"proto field name", strings.Replace(canonical, `"traceId"`, `"trace_id"`, 1), "", false},
		{"a default value written", strings.Replace(canonical, `{"code":"STATUS_CODE_OK"`, `{"code":"STATUS_CODE_OK","message":""`, 1), "", false},
		{"fields reordered", strings.Replace(strings.Replace(canonical, `"outputTokens":"20",`, "", 1), `"inputTokens":`, `"outputTokens":"20","inputTokens":`, 1), "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.decoded == canonical && tt.name != "as exported" {
				t.Fatalf("the edit did not change the decoded form: %s", canonical)
			}
			var manifest func(m *bundle.Manifest)
			if tt.format != "" {
				manifest = func(m *bundle.Manifest) { m.Format = tt.format }
			}
			b := f.resign(t, honest, func(name string, c []byte) []byte {
				if name == file {
					return bytes.Replace(c, []byte(canonical), []byte(tt.decoded), 1)
				}
				return c
			}, nil, manifest)
			if got := string(decoded(unzipAll(t, b)[file])); got != tt.decoded {
				t.Fatalf("the re-signed entry's decoded form is %s, want %s", got, tt.decoded)
			}
			ok, failed, out := verifyDecoded(t, f, b)
			if ok != tt.ok || !tt.ok && !slices.Equal(failed, []string{bundle.CheckDecoded}) {
				t.Errorf("Verify(decoded %s) = ok %v, failed %v; want ok %v (or only %q failing)\n%s", tt.decoded, ok, failed, tt.ok, bundle.CheckDecoded, out)
			}
		})
	}
}
