package audit

// Attacks on the evidence path (review of issue 9): bundles a lying
// server holding the log key can build, and that the verifier accepts
// although they say something other than what is true. Each test states
// the rule it holds the verifier to, from docs/BUNDLE.md.

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/retention"
)

// unzipAll returns every file of a zip by name.
func unzipAll(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		c, _ := io.ReadAll(rc)
		rc.Close()
		out[zf.Name] = c
	}
	return out
}

// docSelectorHolds is an independent check written from docs/BUNDLE.md
// alone: "selector holds the conditions the auditor gave ... all of them
// held of at least one span of each selected trace", with each member's
// condition as the table there defines it. It reads the bundle with the
// standard library only and returns why the selector does not hold, or "".
// A span whose payload was erased satisfies no payload condition (the
// bundle cannot show that it did).
func docSelectorHolds(t *testing.T, b []byte) string {
	t.Helper()
	files := unzipAll(t, b)
	var m bundle.Manifest
	if err := json.Unmarshal(files[bundle.ManifestFile], &m); err != nil {
		t.Fatal(err)
	}
	s := m.Selector
	matched := map[string]bool{}
	for _, ref := range m.Entries {
		if ref.Kind != "span" {
			continue
		}
		var e struct {
			Header  []byte `json:"header"`
			Payload []byte `json:"payload"`
			Erased  bool   `json:"erased"`
		}
		if err := json.Unmarshal(files[ref.File], &e); err != nil {
			t.Fatal(err)
		}
		h, err := format.ParseHeader(e.Header)
		if err != nil {
			t.Fatal(err)
		}
		ok := true
		if s.TraceID != "" {
			ok = ok && hex.EncodeToString(h.TraceID[:]) == s.TraceID
		}
		if !s.From.IsZero() {
			ok = ok && !h.AppendedAt.Before(s.From)
		}
		if !s.To.IsZero() {
			ok = ok && h.AppendedAt.Before(s.To)
		}
		if s.Kind != "" {
			ok = ok && bundle.SpanKindName(h.SubKind) == s.Kind
		}
		if s.VersionID != "" {
			found := false
			for _, r := range h.Refs {
				found = found || hex.EncodeToString(r[:]) == s.VersionID
			}
			ok = ok && found
		}
		if s.SessionID != "" || s.SubjectID != "" || s.Model != "" || s.ErrorsOnly {
			sp := &v1.Span{}
			if e.Erased || proto.Unmarshal(e.Payload, sp) != nil {
				ok = false
			} else {
				if s.SessionID != "" {
					ok = ok && sp.GetSessionId() == s.SessionID
				}
				if s.SubjectID != "" {
					ok = ok && sp.GetSubjectId() == s.SubjectID
				}
				if s.Model != "" {
					ok = ok && (sp.GetModel().GetRequestModel() == s.Model || sp.GetModel().GetResponseModel() == s.Model)
				}
				if s.ErrorsOnly {
					ok = ok && sp.GetStatus().GetCode() == v1.StatusCode_STATUS_CODE_ERROR
				}
			}
		}
		if ok {
			matched[hex.EncodeToString(h.TraceID[:])] = true
		}
	}
	var bad []string
	for _, tr := range m.Traces {
		if !matched[tr] {
			bad = append(bad, tr[:8])
		}
	}
	if len(bad) > 0 {
		sel, _ := json.Marshal(s)
		return fmt.Sprintf("no span of trace(s) %s satisfies the selector %s", strings.Join(bad, ","), sel)
	}
	return ""
}

// TestAttackSelectorNotChecked: the manifest's selector is what an
// auditor reads as "what this bundle is" (the report prints it; the
// auditor asked for "subject alice"). docs/BUNDLE.md says every condition
// held of at least one span of each selected trace, and most conditions
// can be checked from the headers alone (trace, time, kind, version) or
// from the payloads the bundle holds (session, subject, model, errors).
// A lying server re-signs a bundle of bob's trace as "subject alice" (and
// the like), and `veritrace verify` says VERIFIED.
func TestAttackSelectorNotChecked(t *testing.T) {
	f := newFixture(t)
	v1ID, _ := f.seed(t)
	key := f.verifier(t)
	// Trace 2: bob's, session s2, an agent span and a generation span on
	// model "claude" with prompt v2, no errors, appended in 2026 or later.
	bob := f.exportBundle(t, Query{TraceID: traceID(2)}, 0)
	if why := docSelectorHolds(t, bob); why != "" {
		t.Fatalf("the honest bundle fails the independent check: %s", why)
	}
	tests := []struct {
		name string
		lie  func(s *bundle.Selector)
	}{
		{"subject", func(s *bundle.Selector) { s.SubjectID = "alice" }},
		{"session", func(s *bundle.Selector) { s.SessionID = "s1" }},
		{"trace_id", func(s *bundle.Selector) { s.TraceID = hex.EncodeToString(bytes.Repeat([]byte{1}, 16)) }},
		{"from", func(s *bundle.Selector) { s.From = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"to", func(s *bundle.Selector) { s.To = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"kind", func(s *bundle.Selector) { s.Kind = "tool" }},
		{"version_id", func(s *bundle.Selector) { s.VersionID = hex.EncodeToString(v1ID[:]) }},
		{"model", func(s *bundle.Selector) { s.Model = "gpt-4o" }},
		{"errors_only", func(s *bundle.Selector) { s.ErrorsOnly = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lying := f.resign(t, bob, nil, nil, func(m *bundle.Manifest) {
				m.Selector = bundle.Selector{}
				tt.lie(&m.Selector)
			})
			why := docSelectorHolds(t, lying)
			if why == "" {
				t.Fatal("the independent check accepts the lie: the test is wrong")
			}
			rep := bundle.Verify(bytes.NewReader(lying), int64(len(lying)), key, nil)
			if rep.OK() {
				var out strings.Builder
				rep.Write(&out)
				t.Errorf("a bundle whose traces do not match its selector verified (%s):\n%s", why, out.String())
			}
		})
	}
}

// TestAttackTimeRangeExportOmitsATrace: docs/BUNDLE.md ("What a bundle
// proves") tells an auditor who needs to know that nothing was left out to
// "export by time range and inspect the whole range". A lying server drops
// a whole trace of the range from such an export and re-signs the
// manifest; the verifier accepts it, and nothing in the bundle lets any
// verifier tell: the bundle holds no entry between the selected spans
// (access, version and other entries interleave, so gaps in the indices
// are normal) and no proof of where the range begins and ends.
func TestAttackTimeRangeExportOmitsATrace(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t)
	h, err := f.l.Header(ctx, "default", 2)
	if err != nil {
		t.Fatal(err)
	}
	q := Query{From: h.AppendedAt}
	var buf bytes.Buffer
	if _, err := f.x.Export(ctx, ExportRequest{Tenant: "default", Selector: bundle.Selector{From: q.From}, Query: q}, &buf); err != nil {
		t.Fatal(err)
	}
	honest := buf.Bytes()
	// Trace 3 (alice's second; entry 7, prompt v1 which trace 1 also uses)
	// lies in the range.
	drop := bundle.EntryFile(7)
	lying := f.resign(t, honest, func(name string, c []byte) []byte {
		if name == drop {
			return nil
		}
		return c
	}, nil, func(m *bundle.Manifest) {
		m.Traces = slices.DeleteFunc(m.Traces, func(s string) bool { return s == hex.EncodeToString(bytes.Repeat([]byte{3}, 16)) })
		m.Entries = slices.DeleteFunc(m.Entries, func(e bundle.EntryRef) bool { return e.File == drop })
		m.Files = slices.DeleteFunc(m.Files, func(fd bundle.FileDigest) bool { return fd.Name == drop })
	})
	key := f.verifier(t)
	rep := bundle.Verify(bytes.NewReader(lying), int64(len(lying)), key, nil)
	if rep.OK() {
		var out strings.Builder
		rep.Write(&out)
		t.Errorf("a time-range bundle that omits trace 3 of its range verified (%d of 3 traces):\n%s", rep.Traces, out.String())
	}
}

// TestAttackManifestParsedLooserThanSpecified: docs/BUNDLE.md: "The
// verifier reads manifest.json, the entry files and consistency.json
// strictly: a member the format does not define, a member named twice in
// one object, or data after the top-level value fails the check that
// reads the file", and "Every JSON file of a bundle is UTF-8 JSON". The Go
// verifier reads manifest.json and consistency.json with encoding/json,
// which matches member names case-insensitively (and folds U+017F to s,
// U+212A to k), lets a later member overwrite an earlier one that differs
// only in case, and replaces invalid UTF-8. An independent verifier that
// follows the spec (the console's browser verifier compares member names
// exactly) refuses these bundles, or reads a different selector; the Go
// verifier says VERIFIED.
func TestAttackManifestParsedLooserThanSpecified(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t)
	pinned, _ := f.l.Checkpoint(ctx, "default", true)
	f.append(t, spanSpec{trace: 4, span: 1, kind: v1.SpanKind_SPAN_KIND_GENERATION, subject: "dave"})
	good := f.exportBundle(t, Query{TraceID: traceID(1)}, pinned.Size)
	key := f.verifier(t)
	if rep := bundle.Verify(bytes.NewReader(good), int64(len(good)), key, nil); !rep.OK() {
		t.Fatalf("the honest bundle does not verify: %v", rep.Failed())
	}
	tests := []struct {
		name   string
		bundle []byte
		want   string // the check that must fail
	}{
		{"manifest member in upper case", rezipManifest(t, f, good, func(mb []byte) []byte {
			return bytes.Replace(mb, []byte(`"tree_size"`), []byte(`"TREE_SIZE"`), 1)
		}), bundle.CheckManifest},
		{"manifest member with a long s", rezipManifest(t, f, good, func(mb []byte) []byte {
			return bytes.Replace(mb, []byte(`"selector"`), []byte("\"\u017felector\""), 1)
		}), bundle.CheckManifest},
		{"a second selector differing in case overrides the first", rezipManifest(t, f, good, func(mb []byte) []byte {
			return bytes.Replace(mb, []byte(`"tree_size"`), []byte(`"Selector": {"subject_id": "mallory"}, "tree_size"`), 1)
		}), bundle.CheckManifest},
		{"invalid UTF-8 in the manifest", rezipManifest(t, f, good, func(mb []byte) []byte {
			return bytes.Replace(mb, []byte(`"selector": {`), []byte("\"selector\": {\"session_id\": \"s\xff1\","), 1)
		}), bundle.CheckManifest},
		{"consistency.json member named twice", f.resign(t, good, func(name string, c []byte) []byte {
			if name == bundle.ConsistencyFile {
				return bytes.Replace(c, []byte(`"old_size"`), []byte(`"old_size": 1, "old_size"`), 1)
			}
			return c
		}, nil, nil), bundle.CheckConsistency},
		{"consistency.json member in upper case", f.resign(t, good, func(name string, c []byte) []byte {
			if name == bundle.ConsistencyFile {
				return bytes.Replace(c, []byte(`"new_size"`), []byte(`"NEW_SIZE"`), 1)
			}
			return c
		}, nil, nil), bundle.CheckConsistency},
		// "erased": "present, and true, only when the payload was erased
		// ... absent otherwise (never false)".
		{"entry file with erased false", f.resign(t, good, func(name string, c []byte) []byte {
			if name == bundle.EntryFile(4) {
				return bytes.Replace(c, []byte(`{"index":4,`), []byte(`{"index":4,"erased":false,`), 1)
			}
			return c
		}, nil, nil), bundle.CheckHeaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := bundle.Verify(bytes.NewReader(tt.bundle), int64(len(tt.bundle)), key, nil)
			if !slices.Contains(rep.Failed(), tt.want) {
				var out strings.Builder
				rep.Write(&out)
				t.Errorf("check %q did not fail on a file the spec says fails it; failed: %v\n%s", tt.want, rep.Failed(), out.String())
			}
		})
	}
}

// TestAttackTombstoneMembersMatchedCaseInsensitively: check 12 reads a
// tombstone's payload with encoding/json, so a member "Erased" (or
// "ERASED", or "\u017frased"-style foldings) fills the list of erased
// entries, and a later one overrides "erased". docs/FORMAT.md §2.2 gives
// the members exactly ("no others") and BUNDLE.md check 10 says members
// not listed are ignored, so by the spec this tombstone names nothing: its
// "erased" is empty. A server appends such a tombstone, points the erased
// spans of trace 1 at it, and exports trace 1 without the real tombstone
// (hiding the request id, legal basis and requester of the real erasure);
// the Go verifier accepts it, a verifier written from the docs refuses it.
func TestAttackTombstoneMembersMatchedCaseInsensitively(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t)
	rs := &retention.Service{L: f.l, SessionField: FieldSession, Log: slog.New(slog.DiscardHandler)}
	er, err := rs.Erase(ctx, "default", retention.ErasureRequest{ID: "real", TraceIDs: [][16]byte{traceID(1)}, LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})
	if err != nil {
		t.Fatal(err)
	}
	var names []format.TombstoneEntry
	for _, i := range er.Erase {
		e, err := f.l.GetEntry(ctx, "default", i)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, format.TombstoneEntry{Index: i, LeafHash: hex.EncodeToString(e.LeafHash[:])})
	}
	hidden, _ := json.Marshal(names)
	payload := []byte(`{"reason":"erasure","request_id":"cover","legal_basis":"none","erased":[],"Erased":` + string(hidden) + `}`)
	rec := ledger.Record{Kind: format.KindTombstone, SubKind: format.TombstoneErasure, RetentionClass: "records", ID: sha256.Sum256([]byte("cover")), Payload: payload}
	rcpt, err := f.l.Append(ctx, "default", []ledger.Record{rec})
	if err != nil {
		t.Fatal(err)
	}
	cover := rcpt[0].Index
	if err := f.l.MarkErased(ctx, "default", er.Erase, cover); err != nil {
		t.Fatal(err)
	}
	b := f.exportBundle(t, Query{TraceID: traceID(1)}, 0)
	files := unzipAll(t, b)
	if _, ok := files[bundle.EntryFile(*er.Tombstone)]; ok {
		t.Fatal("the bundle carries the real tombstone: the test is wrong")
	}
	// The spec's reading: the tombstone's member "erased", exactly.
	var e struct{ Payload []byte }
	json.Unmarshal(files[bundle.EntryFile(cover)], &e)
	var members map[string]json.RawMessage
	if err := json.Unmarshal(e.Payload, &members); err != nil || string(members["erased"]) != "[]" {
		t.Fatalf("the cover tombstone's erased member = %s, %v; want []", members["erased"], err)
	}
	rep := bundle.Verify(bytes.NewReader(b), int64(len(b)), f.verifier(t), nil)
	if rep.OK() || !slices.Contains(rep.Failed(), bundle.CheckErasures) {
		var out strings.Builder
		rep.Write(&out)
		t.Errorf("erased entries %v named only by a tombstone member %q (its \"erased\" is empty) passed the erasures check:\n%s", er.Erase, "Erased", out.String())
	}
}
