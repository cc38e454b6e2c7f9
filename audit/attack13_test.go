package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
)

// TestAttack13DecodedInt64AsLossyNumber: a lying server re-signs a bundle
// whose decoded form writes an int64 field (usage.inputTokens, 2^53+1) as
// a JSON number instead of the string proto JSON writes. Read as JSON
// (JavaScript, most JSON tools, the console's in-browser verifier through
// JSON.parse), the number is 2^53: the decoded content then shows another
// value than the payload. The Go verifier parses it with protojson, which
// keeps every digit, and passes it; the console's verifier (protobuf-es,
// fed by JSON.parse) reads 2^53 and fails "decoded content" on the same
// bundle: the two verifiers give different verdicts. Set
// ATTACK13_BUNDLE_OUT to write the bundle (and its log key, .pub) for the
// console's tests.
func TestAttack13DecodedInt64AsLossyNumber(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	rec := spanSpec{trace: 1, span: 1, kind: v1.SpanKind_SPAN_KIND_GENERATION, subject: "alice", model: "m"}.record()
	sp := &v1.Span{}
	if err := proto.Unmarshal(rec.Payload, sp); err != nil {
		t.Fatal(err)
	}
	sp.Usage.InputTokens = 1<<53 + 1
	rec.Payload, _ = proto.MarshalOptions{Deterministic: true}.Marshal(sp)
	if _, err := f.l.Append(ctx, "default", []ledger.Record{rec}); err != nil {
		t.Fatal(err)
	}
	honest := f.exportBundle(t, Query{SubjectID: "alice"}, 0)
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
	if p := os.Getenv("ATTACK13_BUNDLE_OUT"); p != "" {
		if err := os.WriteFile(p, lying, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p+".pub", []byte(f.vkey), 0o644); err != nil {
			t.Fatal(err)
		}
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
	rep := bundle.Verify(bytes.NewReader(lying), int64(len(lying)), f.verifier(t), nil)
	var out strings.Builder
	rep.Write(&out)
	if rep.OK() {
		t.Errorf("DEFECT decoded int64 as a lossy JSON number: the Go verifier passes a decoded form whose usage.inputTokens reads as %.0f in JSON (the payload holds 9007199254740993); the console's verifier refuses the same bundle (\"decoded content differs\")\n%s", asJSON.Decoded.Usage.InputTokens, out.String())
	}
}

// TestAttack13DecodedInt64WithExponent: as above, a re-signed bundle whose
// decoded form writes usage.outputTokens (20) as "2e1". protojson accepts
// exponent notation in a quoted integer and the Go verifier passes the
// bundle; the console's verifier (protobuf-es) refuses the string and
// fails "decoded content": the verifiers disagree on the same bundle.
func TestAttack13DecodedInt64WithExponent(t *testing.T) {
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
	rep := bundle.Verify(bytes.NewReader(lying), int64(len(lying)), f.verifier(t), nil)
	var out strings.Builder
	rep.Write(&out)
	if rep.OK() {
		t.Errorf("DEFECT decoded int64 with an exponent: the Go verifier passes a decoded form with %s for the payload's 20; the console's verifier fails \"decoded content\" on the same bundle\n%s", exponent, out.String())
	}
}
