package audit

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/retention"
)

var update = flag.Bool("update", false, "rewrite the golden bundle in audit/bundle/testdata")

type fixture struct {
	l    *ledger.Ledger
	x    *Exporter
	vkey string
	dir  string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	keys, _, err := ledger.LoadOrCreateKeys(ledger.KeyPaths{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), ledger.Options{Dir: dir, Keys: keys, Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &Searcher{L: l}
	return &fixture{l: l, x: &Exporter{S: s, Now: time.Now}, vkey: l.VerifierKey(), dir: dir}
}

// registerPrompt registers a prompt version and returns its id.
func (f *fixture) registerPrompt(t testing.TB, label string) [32]byte {
	t.Helper()
	v := &v1.Version{Kind: v1.VersionKind_VERSION_KIND_PROMPT, Name: "support", Label: label, Content: []byte("You are helpful (" + label + ")."), MediaType: "text/plain"}
	id := format.VersionID(format.VersionPrompt, v.Name, v.Label, v.MediaType, v.Content)
	payload, _ := proto.MarshalOptions{Deterministic: true}.Marshal(v)
	r := ledger.Record{Kind: format.KindVersion, SubKind: 1, Version: &ledger.VersionName{Name: v.Name, Label: label}, RetentionClass: "versions", Payload: payload}
	r.Refs[0] = id
	if _, err := f.l.Append(context.Background(), "default", []ledger.Record{r}); err != nil {
		t.Fatal(err)
	}
	return id
}

type spanSpec struct {
	trace         byte
	span, parent  byte
	kind          v1.SpanKind
	subject, sess string
	model         string
	err           bool
	prompt        [32]byte
}

func (s spanSpec) record() ledger.Record {
	start := time.Date(2026, 11, 21, 9, 0, int(s.span), 0, time.UTC)
	sp := &v1.Span{
		TraceId: bytes.Repeat([]byte{s.trace}, 16), SpanId: []byte{0, 0, 0, 0, 0, 0, s.trace, s.span},
		Name: fmt.Sprintf("step %d", s.span), Kind: s.kind, SubjectId: s.subject, SessionId: s.sess,
		StartTime: timestamppb.New(start), EndTime: timestamppb.New(start.Add(500 * time.Millisecond)),
		Model:   &v1.Model{Provider: "openai", RequestModel: s.model},
		Usage:   &v1.Usage{InputTokens: 100, OutputTokens: 20, Cost: 0.001, Currency: "USD"},
		Content: &v1.Content{InputMessages: []*v1.Message{{Role: "user", Parts: []*v1.MessagePart{{Part: &v1.MessagePart_Text{Text: "question from " + s.subject}}}}}},
	}
	if s.parent != 0 {
		sp.ParentSpanId = []byte{0, 0, 0, 0, 0, 0, s.trace, s.parent}
	}
	if s.err {
		sp.Status = &v1.Status{Code: v1.StatusCode_STATUS_CODE_ERROR, Message: "tool timeout"}
	}
	if s.prompt != ([32]byte{}) {
		sp.Versions = &v1.VersionRefs{Prompt: hex.EncodeToString(s.prompt[:])}
	}
	payload, _ := proto.MarshalOptions{Deterministic: true}.Marshal(sp)
	r := ledger.Record{Kind: format.KindSpan, SubKind: uint8(s.kind), Subject: s.subject, Payload: payload}
	copy(r.TraceID[:], sp.TraceId)
	copy(r.SpanID[:], sp.SpanId)
	copy(r.ParentSpanID[:], sp.GetParentSpanId())
	r.Refs[0] = s.prompt
	var versions [][32]byte
	if s.prompt != ([32]byte{}) {
		versions = append(versions, s.prompt)
	}
	r.Terms = SpanTerms(SpanFacts{Session: s.sess, Versions: versions, Models: []string{s.model}, Error: s.err})
	return r
}

func (f *fixture) append(t testing.TB, specs ...spanSpec) {
	t.Helper()
	var recs []ledger.Record
	for _, s := range specs {
		recs = append(recs, s.record())
	}
	if _, err := f.l.Append(context.Background(), "default", recs); err != nil {
		t.Fatal(err)
	}
}

func traceID(b byte) [16]byte {
	var t [16]byte
	copy(t[:], bytes.Repeat([]byte{b}, 16))
	return t
}

// seed writes three traces: alice's (with an error and the v1 prompt),
// bob's, and alice's second, interleaved.
func (f *fixture) seed(t testing.TB) (v1ID, v2ID [32]byte) {
	v1ID, v2ID = f.registerPrompt(t, "v1"), f.registerPrompt(t, "v2")
	gen, tool, agent := v1.SpanKind_SPAN_KIND_GENERATION, v1.SpanKind_SPAN_KIND_TOOL, v1.SpanKind_SPAN_KIND_AGENT
	f.append(t,
		spanSpec{trace: 1, span: 1, kind: agent, subject: "alice", sess: "s1"},
		spanSpec{trace: 2, span: 1, kind: agent, subject: "bob", sess: "s2"},
	)
	f.append(t,
		spanSpec{trace: 1, span: 2, parent: 1, kind: gen, subject: "alice", sess: "s1", model: "gpt-4o", prompt: v1ID},
		spanSpec{trace: 2, span: 2, parent: 1, kind: gen, subject: "bob", sess: "s2", model: "claude", prompt: v2ID},
		spanSpec{trace: 1, span: 3, parent: 1, kind: tool, subject: "alice", sess: "s1", err: true},
	)
	f.append(t, spanSpec{trace: 3, span: 1, kind: gen, subject: "alice", sess: "s3", model: "gpt-4o", prompt: v1ID})
	return v1ID, v2ID
}

func TestQueries(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	v1ID, v2ID := f.seed(t)
	s := f.x.S
	ids := func(q Query, pageSize int) string {
		var out []string
		for cursor, n := uint64(0), 0; n < 100; n++ {
			hits, next, err := s.Traces(ctx, "default", q, cursor, pageSize, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hits {
				out = append(out, fmt.Sprintf("%d@%d", h.TraceID[0], h.FirstIndex))
			}
			if next == 0 {
				break
			}
			cursor = next
		}
		return strings.Join(out, " ")
	}
	// Entries: 0 v1, 1 v2, 2 t1s1, 3 t2s1, 4 t1s2, 5 t2s2, 6 t1s3, 7 t3s1.
	tests := []struct {
		name string
		q    Query
		want string
	}{
		{"everything", Query{}, "1@2 2@3 3@7"},
		{"subject alice", Query{SubjectID: "alice"}, "1@2 3@7"},
		{"subject bob", Query{SubjectID: "bob"}, "2@3"},
		{"subject nobody", Query{SubjectID: "carol"}, ""},
		{"session s1", Query{SessionID: "s1"}, "1@2"},
		{"trace 2", Query{TraceID: traceID(2)}, "2@3"},
		{"prompt v1", Query{VersionID: v1ID}, "1@4 3@7"},
		{"prompt v2", Query{VersionID: v2ID}, "2@5"},
		{"model gpt-4o", Query{Model: "gpt-4o"}, "1@4 3@7"},
		{"errors", Query{ErrorsOnly: true}, "1@6"},
		{"tool spans", Query{Kind: uint8(v1.SpanKind_SPAN_KIND_TOOL)}, "1@6"},
		{"alice and claude", Query{SubjectID: "alice", Model: "claude"}, ""},
		{"alice generation", Query{SubjectID: "alice", Kind: uint8(v1.SpanKind_SPAN_KIND_GENERATION)}, "1@4 3@7"},
	}
	for _, tt := range tests {
		for _, page := range []int{1, 2, 100} {
			if got := ids(tt.q, page); got != tt.want {
				t.Errorf("%s (page size %d): traces = %q, want %q", tt.name, page, got, tt.want)
			}
		}
	}
	// Time ranges use appended_at, which never decreases along the log.
	h7, _ := f.l.Header(ctx, "default", 7)
	if got := ids(Query{From: h7.AppendedAt}, 10); got != "3@7" {
		t.Errorf("from entry 7's time: %q", got)
	}
	if got := ids(Query{To: h7.AppendedAt}, 10); got != "1@2 2@3" {
		t.Errorf("to entry 7's time: %q", got)
	}
	p, err := s.DecisionPath(ctx, "default", traceID(1))
	if err != nil || len(p.Spans) != 3 || len(p.Versions) != 1 || p.Versions[0].Header.Index != 0 {
		t.Errorf("DecisionPath(trace 1) = %+v, %v", p, err)
	}
	if _, err := s.DecisionPath(ctx, "default", traceID(9)); err == nil {
		t.Error("DecisionPath(unknown trace) = nil error")
	}
}

// exportBundle exports a selector and returns the bundle bytes.
func (f *fixture) exportBundle(t testing.TB, q Query, known uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	sel := bundle.Selector{SubjectID: q.SubjectID}
	if q.TraceID != ([16]byte{}) {
		sel.TraceID = hex.EncodeToString(q.TraceID[:])
	}
	if _, err := f.x.Export(context.Background(), ExportRequest{Tenant: "default", Selector: sel, Query: q, KnownSize: known}, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (f *fixture) verifier(t testing.TB) note.Verifier {
	v, err := note.NewVerifier(f.vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestExportVerifies(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t)
	pinned, err := f.l.Checkpoint(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	f.append(t, spanSpec{trace: 4, span: 1, kind: v1.SpanKind_SPAN_KIND_GENERATION, subject: "alice", sess: "s4"})
	b := f.exportBundle(t, Query{SubjectID: "alice"}, pinned.Size)
	rep := bundle.Verify(bytes.NewReader(b), int64(len(b)), f.verifier(t), pinned.Note)
	var out strings.Builder
	rep.Write(&out)
	if !rep.OK() {
		t.Fatalf("Verify(export) failed:\n%s", out.String())
	}
	// alice: traces 1 (3 spans), 3 (1), 4 (1) and the v1 prompt.
	if rep.Traces != 3 || rep.Entries != 6 {
		t.Errorf("bundle holds %d traces, %d entries; want 3, 6\n%s", rep.Traces, rep.Entries, out.String())
	}
	// The proof checks against the old checkpoint the bundle carries and
	// against the pinned one.
	if !strings.Contains(out.String(), "ok    consistency proof (2)") {
		t.Errorf("no consistency proof checked:\n%s", out.String())
	}
	// A different key does not verify it.
	_, otherV, _ := note.GenerateKey(nil, "other")
	ov, _ := note.NewVerifier(otherV)
	if bundle.Verify(bytes.NewReader(b), int64(len(b)), ov, nil).OK() {
		t.Error("a bundle verified with another log's key")
	}
}

// rezip rewrites a bundle, letting edit change, drop (return nil) or add
// files.
func rezip(t *testing.T, b []byte, edit func(name string, content []byte) []byte, add map[string][]byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, _ := f.Open()
		content, _ := io.ReadAll(rc)
		rc.Close()
		if content = edit(f.Name, content); content == nil {
			continue
		}
		w, _ := zw.Create(f.Name)
		w.Write(content)
	}
	for name, content := range add {
		w, _ := zw.Create(name)
		w.Write(content)
	}
	zw.Close()
	return out.Bytes()
}

// editEntry changes one field of an entry file.
func editEntry(t *testing.T, content []byte, change func(e *bundle.Entry)) []byte {
	var e bundle.Entry
	if err := json.Unmarshal(content, &e); err != nil {
		t.Fatal(err)
	}
	change(&e)
	out, _ := json.MarshalIndent(&e, "", "  ")
	return out
}

// TestMutations changes each kind of element of a valid bundle and expects
// the verifier to fail, naming the right check.
func TestMutations(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t)
	pinned, _ := f.l.Checkpoint(ctx, "default", true) // size 8
	f.append(t, spanSpec{trace: 4, span: 1, kind: v1.SpanKind_SPAN_KIND_GENERATION, subject: "dave"})
	good := f.exportBundle(t, Query{TraceID: traceID(1)}, pinned.Size) // checkpoint of size 9
	key := f.verifier(t)
	if rep := bundle.Verify(bytes.NewReader(good), int64(len(good)), key, pinned.Note); !rep.OK() {
		t.Fatalf("the unmutated bundle does not verify: %v", rep.Failed())
	}
	spanFile := bundle.EntryFile(4) // trace 1's generation span
	only := func(target string, f func([]byte) []byte) func(string, []byte) []byte {
		return func(name string, c []byte) []byte {
			if name == target {
				return f(c)
			}
			return c
		}
	}
	tests := []struct {
		name   string
		bundle []byte
		want   []string
	}{
		{"payload byte", rezip(t, good, only(spanFile, func(c []byte) []byte {
			return editEntry(t, c, func(e *bundle.Entry) { e.Payload[len(e.Payload)-1] ^= 1 })
		}), nil), []string{bundle.CheckFiles, bundle.CheckCommitments}},
		{"header field", rezip(t, good, only(spanFile, func(c []byte) []byte {
			return editEntry(t, c, func(e *bundle.Entry) { e.Header[20] ^= 1 }) // appended_at
		}), nil), []string{bundle.CheckFiles, bundle.CheckLeafHashes, bundle.CheckInclusion}},
		{"proof hash", rezip(t, good, only(spanFile, func(c []byte) []byte {
			return editEntry(t, c, func(e *bundle.Entry) { e.InclusionProof[0][0] ^= 1 })
		}), nil), []string{bundle.CheckFiles, bundle.CheckInclusion}},
		{"decoded text", rezip(t, good, only(spanFile, func(c []byte) []byte {
			return editEntry(t, c, func(e *bundle.Entry) {
				e.Decoded = json.RawMessage(strings.Replace(string(e.Decoded), "question", "answer", 1))
			})
		}), nil), []string{bundle.CheckFiles, bundle.CheckDecoded}},
		{"checkpoint", rezip(t, good, only(bundle.CheckpointFile, func(c []byte) []byte {
			return bytes.Replace(c, []byte("\n9\n"), []byte("\n10\n"), 1)
		}), nil), []string{bundle.CheckFiles, bundle.CheckCheckpoint}},
		{"manifest", rezip(t, good, only(bundle.ManifestFile, func(c []byte) []byte {
			return bytes.Replace(c, []byte(`"tenant": "default"`), []byte(`"tenant": "defaulx"`), 1)
		}), nil), []string{bundle.CheckSignature}},
		{"signature", rezip(t, good, only(bundle.SignatureFile, func(c []byte) []byte {
			c = slices.Clone(c)
			c[len(c)-10] ^= 1
			return c
		}), nil), []string{bundle.CheckSignature}},
		{"missing file", rezip(t, good, only(spanFile, func([]byte) []byte { return nil }), nil), []string{bundle.CheckFiles, bundle.CheckHeaders}},
		{"missing version", rezip(t, good, only(bundle.EntryFile(0), func([]byte) []byte { return nil }), nil), []string{bundle.CheckFiles, bundle.CheckReferences}},
		{"extra file", rezip(t, good, func(_ string, c []byte) []byte { return c }, map[string][]byte{"entries/extra.json": []byte("{}")}), []string{bundle.CheckFiles}},
		{"report edited", rezip(t, good, only(bundle.ReportFile, func(c []byte) []byte {
			return bytes.Replace(c, []byte("gpt-4o"), []byte("gpt-5"), 1)
		}), nil), []string{bundle.CheckFiles}},
		{"consistency proof", rezip(t, good, only(bundle.ConsistencyFile, func(c []byte) []byte {
			var p bundle.ConsistencyProof
			json.Unmarshal(c, &p)
			p.Proof[0][0] ^= 1
			out, _ := json.Marshal(&p)
			return out
		}), nil), []string{bundle.CheckFiles, bundle.CheckConsistency}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := bundle.Verify(bytes.NewReader(tt.bundle), int64(len(tt.bundle)), key, pinned.Note)
			var out strings.Builder
			rep.Write(&out)
			if rep.OK() {
				t.Fatalf("mutated bundle verified:\n%s", out.String())
			}
			for _, c := range tt.want {
				if !slices.Contains(rep.Failed(), c) {
					t.Errorf("check %q did not fail; failed: %v\n%s", c, rep.Failed(), out.String())
				}
			}
		})
	}
	// A pinned checkpoint from another log (another key) is refused.
	other := newFixture(t)
	ocp, _ := other.l.Checkpoint(ctx, "default", true)
	if rep := bundle.Verify(bytes.NewReader(good), int64(len(good)), key, ocp.Note); !slices.Contains(rep.Failed(), bundle.CheckPinned) {
		t.Errorf("a foreign pinned checkpoint was accepted: %v", rep.Failed())
	}
}

// TestGoldenBundle regenerates the golden bundle under audit/bundle/testdata
// with -update; audit/bundle's own test verifies it without a ledger. It
// holds four traces selected by time: one erased (with its tombstone), one
// whose span's payload has no decoded form (an attribute value without a
// kind, as ingest accepted before it refused them), the versions they
// reference, and a consistency proof with its old checkpoint.
// golden-v1.zip, a format 1 bundle, is kept as it was.
func TestGoldenBundle(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate the golden bundle")
	}
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t)
	pinned, err := f.l.Checkpoint(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	rs := &retention.Service{L: f.l, SessionField: FieldSession, Log: slog.New(slog.DiscardHandler)}
	if _, err := rs.Erase(ctx, "default", retention.ErasureRequest{ID: "golden", TraceIDs: [][16]byte{traceID(3)}, LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}); err != nil {
		t.Fatal(err)
	}
	legacy := spanSpec{trace: 4, span: 1, kind: v1.SpanKind_SPAN_KIND_GENERATION, subject: "carol"}.record()
	legacy.Payload = withAttribute(t, legacy.Payload, "legacy.value", &structpb.Value{})
	if _, err := f.l.Append(ctx, "default", []ledger.Record{legacy}); err != nil {
		t.Fatal(err)
	}
	h, err := f.l.Header(ctx, "default", 2)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	q := Query{From: h.AppendedAt}
	if _, err := f.x.Export(ctx, ExportRequest{Tenant: "default", Selector: bundle.Selector{From: q.From}, Query: q, KnownSize: pinned.Size}, &buf); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("bundle", "testdata")
	os.MkdirAll(dir, 0o755)
	for name, content := range map[string][]byte{"golden.zip": buf.Bytes(), "golden.pub": []byte(f.vkey + "\n"), "golden-pinned.txt": pinned.Note} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGoldenReceipt regenerates, with -update, an erasure receipt and an
// evidence bundle of the erased trace exported with --known-size set to
// the receipt's tree size (golden-receipt.txt, golden-receipt.zip,
// golden-receipt.pub under audit/bundle/testdata). audit/bundle's and
// cmd/veritrace-verify's tests check them without a ledger.
func TestGoldenReceipt(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate the golden receipt")
	}
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t)
	rs := &retention.Service{L: f.l, SessionField: FieldSession, Log: slog.New(slog.DiscardHandler)}
	er, err := rs.Erase(ctx, "default", retention.ErasureRequest{ID: "golden-receipt", TraceIDs: [][16]byte{traceID(1)}, LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})
	if err != nil {
		t.Fatal(err)
	}
	receipt := []byte(string(er.Receipt) + "\n" + er.ReceiptSig)
	var rc struct {
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal(er.Receipt, &rc); err != nil {
		t.Fatal(err)
	}
	cp, err := format.OpenCheckpoint([]byte(rc.Checkpoint), f.verifier(t))
	if err != nil {
		t.Fatal(err)
	}
	// A later entry, so that the bundle proves the log grew from the
	// receipt's tree.
	if _, err := f.l.Append(ctx, "default", []ledger.Record{spanSpec{trace: 9, span: 1, kind: v1.SpanKind_SPAN_KIND_GENERATION, subject: "dave"}.record()}); err != nil {
		t.Fatal(err)
	}
	b := f.exportBundle(t, Query{TraceID: traceID(1)}, cp.Size)
	dir := filepath.Join("bundle", "testdata")
	for name, content := range map[string][]byte{"golden-receipt.txt": receipt, "golden-receipt.zip": b, "golden-receipt.pub": []byte(f.vkey + "\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// withAttribute returns a span payload with one more attribute, encoded
// as the ledger stores it.
func withAttribute(t testing.TB, payload []byte, name string, v *structpb.Value) []byte {
	t.Helper()
	sp := &v1.Span{}
	if err := proto.Unmarshal(payload, sp); err != nil {
		t.Fatal(err)
	}
	if sp.Attributes == nil {
		sp.Attributes = map[string]*structpb.Value{}
	}
	sp.Attributes[name] = v
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(sp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExportAfterErasure erases a trace, exports it and verifies the
// bundle: the erased entries carry no payload, and the tombstone that
// names them travels in the bundle.
func TestExportAfterErasure(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t)
	rs := &retention.Service{L: f.l, SessionField: FieldSession, Log: slog.New(slog.DiscardHandler)}
	er, err := rs.Erase(ctx, "default", retention.ErasureRequest{ID: "e1", TraceIDs: [][16]byte{traceID(1)}, LegalBasis: "GDPR Art. 17", Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	b := f.exportBundle(t, Query{TraceID: traceID(1)}, 0)
	rep := bundle.Verify(bytes.NewReader(b), int64(len(b)), f.verifier(t), nil)
	var out strings.Builder
	rep.Write(&out)
	if !rep.OK() || !strings.Contains(out.String(), "ok    erasures (3)") {
		t.Fatalf("bundle after erasure:\n%s", out.String())
	}
	// 3 erased spans, the version (not erased: versions are no one's) and the tombstone.
	if rep.Entries != 5 {
		t.Errorf("bundle holds %d entries, want 5", rep.Entries)
	}
	noTombstone := rezip(t, b, func(name string, c []byte) []byte {
		if name == bundle.EntryFile(*er.Tombstone) {
			return nil
		}
		return c
	}, nil)
	if rep := bundle.Verify(bytes.NewReader(noTombstone), int64(len(noTombstone)), f.verifier(t), nil); !slices.Contains(rep.Failed(), bundle.CheckErasures) {
		t.Errorf("a bundle without its tombstone passed the erasures check: %v", rep.Failed())
	}
	// The query index no longer finds the erased spans by subject.
	hits, _, err := f.x.S.Traces(ctx, "default", Query{SubjectID: "alice"}, 0, 10, 0)
	if err != nil || len(hits) != 1 || hits[0].TraceID != traceID(3) {
		t.Errorf("alice's traces after erasing trace 1 = %v, %v", hits, err)
	}
}
