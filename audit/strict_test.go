package audit

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"github.com/veritrace/veritrace/ledger"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// resign rewrites a bundle as a lying server holding the log key could:
// edit changes, drops (nil) or adds files; manifest changes the manifest;
// then every file digest is recomputed and the manifest signed again with
// the log's own key, so that only the checks beyond the signature can
// catch the lie.
func (f *fixture) resign(t *testing.T, b []byte, edit func(name string, content []byte) []byte, add map[string][]byte, manifest func(m *bundle.Manifest)) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	type file struct {
		name    string
		content []byte
	}
	var files []file
	var m bundle.Manifest
	for _, zf := range zr.File {
		rc, _ := zf.Open()
		content, _ := io.ReadAll(rc)
		rc.Close()
		switch zf.Name {
		case bundle.ManifestFile:
			if err := json.Unmarshal(content, &m); err != nil {
				t.Fatal(err)
			}
			continue
		case bundle.SignatureFile:
			continue
		}
		if edit != nil {
			if content = edit(zf.Name, content); content == nil {
				continue
			}
		}
		files = append(files, file{zf.Name, content})
	}
	for name, content := range add {
		files = append(files, file{name, content})
	}
	digests := map[string]string{}
	for _, fl := range files {
		sum := sha256.Sum256(fl.content)
		digests[fl.name] = hex.EncodeToString(sum[:])
	}
	for i, fd := range m.Files {
		if d, ok := digests[fd.Name]; ok {
			m.Files[i].SHA256 = d
		}
	}
	if manifest != nil {
		manifest(&m)
	}
	mb, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	mb = append(mb, '\n')
	sig, err := f.l.SignBundle(context.Background(), "default", sha256.Sum256(mb))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, fl := range append(files, file{bundle.ManifestFile, mb}, file{bundle.SignatureFile, sig}) {
		w, _ := zw.Create(fl.name)
		w.Write(fl.content)
	}
	zw.Close()
	return out.Bytes()
}

// TestVerifierRefusesWhatALyingServerBuilds (issue 9, item 6): bundles
// re-signed with the log key that are not what an honest export is.
func TestVerifierRefusesWhatALyingServerBuilds(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t)
	pinned, _ := f.l.Checkpoint(ctx, "default", true) // size 8
	f.append(t, spanSpec{trace: 4, span: 1, kind: v1.SpanKind_SPAN_KIND_GENERATION, subject: "dave"})
	good := f.exportBundle(t, Query{TraceID: traceID(1)}, pinned.Size)
	key := f.verifier(t)
	if rep := bundle.Verify(bytes.NewReader(good), int64(len(good)), key, nil); !rep.OK() {
		t.Fatalf("the honest bundle does not verify: %v", rep.Failed())
	}
	if again := f.resign(t, good, nil, nil, nil); !bundle.Verify(bytes.NewReader(again), int64(len(again)), key, nil).OK() {
		t.Fatal("resigning an honest bundle unchanged broke it: the test helper is wrong")
	}
	tests := []struct {
		name   string
		bundle []byte
		want   string // a check that must fail
	}{
		{"entry listed twice", f.resign(t, good, nil, nil, func(m *bundle.Manifest) {
			m.Entries = append(m.Entries, m.Entries[0])
		}), bundle.CheckManifest},
		{"extra file listed in the manifest", f.resign(t, good, nil, map[string][]byte{"notes.txt": []byte("trust me")}, func(m *bundle.Manifest) {
			sum := sha256.Sum256([]byte("trust me"))
			m.Files = append(m.Files, bundle.FileDigest{Name: "notes.txt", SHA256: hex.EncodeToString(sum[:])})
		}), bundle.CheckManifest},
		{"file listed twice", f.resign(t, good, nil, nil, func(m *bundle.Manifest) {
			m.Files = append(m.Files, m.Files[0])
		}), bundle.CheckManifest},
		{"trace listed with no spans", f.resign(t, good, nil, nil, func(m *bundle.Manifest) {
			m.Traces = append(m.Traces, strings.Repeat("09", 16))
		}), bundle.CheckTraces},
		{"trace listed twice", f.resign(t, good, nil, nil, func(m *bundle.Manifest) {
			m.Traces = append(m.Traces, m.Traces[0])
		}), bundle.CheckManifest},
		{"span of an unlisted trace", f.resign(t, good, nil, nil, func(m *bundle.Manifest) {
			m.Traces = nil
		}), bundle.CheckTraces},
		{"corrupted consistency proof, no pin", f.resign(t, good, func(name string, c []byte) []byte {
			if name != bundle.ConsistencyFile {
				return c
			}
			var p map[string]any
			json.Unmarshal(c, &p)
			proof := p["proof"].([]any)
			h := []byte(proof[0].(string))
			h[0] ^= 1 // still hex
			if h[0] > 'f' || (h[0] > '9' && h[0] < 'a') {
				h[0] = '0'
			}
			proof[0] = string(h)
			out, _ := json.Marshal(p)
			return out
		}, nil, nil), bundle.CheckConsistency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := bundle.Verify(bytes.NewReader(tt.bundle), int64(len(tt.bundle)), key, nil)
			var out strings.Builder
			rep.Write(&out)
			if rep.OK() || !slices.Contains(rep.Failed(), tt.want) {
				t.Errorf("check %q did not fail; failed: %v\n%s", tt.want, rep.Failed(), out.String())
			}
		})
	}
}

// TestVerifierChecksTheSignatureFirst: a bundle whose manifest is not
// signed by the key gets no further work; every other check says why it
// did not run.
func TestVerifierChecksTheSignatureFirst(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	good := f.exportBundle(t, Query{TraceID: traceID(1)}, 0)
	bad := rezip(t, good, func(name string, c []byte) []byte {
		if name == bundle.SignatureFile {
			c = slices.Clone(c)
			c[len(c)-10] ^= 1
		}
		return c
	}, nil)
	rep := bundle.Verify(bytes.NewReader(bad), int64(len(bad)), f.verifier(t), nil)
	var out strings.Builder
	rep.Write(&out)
	for _, c := range rep.Checks {
		if c.Name == bundle.CheckSignature {
			if c.OK() {
				t.Errorf("the bad signature passed:\n%s", out.String())
			}
			continue
		}
		if c.Passed != 0 || c.Skipped == "" {
			t.Errorf("check %q ran on a bundle whose signature does not verify (passed %d, skipped %q)\n%s", c.Name, c.Passed, c.Skipped, out.String())
		}
	}
}

// TestVerifierEscapesWhatItPrints: names and origins come from the bundle;
// printing them must not let a bundle drive the auditor's terminal.
func TestVerifierEscapesWhatItPrints(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	good := f.exportBundle(t, Query{TraceID: traceID(1)}, 0)
	evil := "entries/\x1b[2J\x1b]0;owned\x07\u202e.json"
	var out strings.Builder
	for _, b := range [][]byte{
		f.resign(t, good, nil, map[string][]byte{evil: []byte("{}")}, nil),
		f.resign(t, good, nil, nil, func(m *bundle.Manifest) { m.Origin += "\x1b[31m\r" }),
		rezip(t, good, func(_ string, c []byte) []byte { return c }, map[string][]byte{evil: []byte("{}")}),
	} {
		rep := bundle.Verify(bytes.NewReader(b), int64(len(b)), f.verifier(t), nil)
		rep.Write(&out)
		if rep.OK() {
			t.Fatalf("bundle verified:\n%s", out.String())
		}
	}
	for _, bad := range []string{"\x1b", "\x07", "\r", "\u202e"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("the report prints %q raw:\n%q", bad, out.String())
		}
	}
	if !strings.Contains(out.String(), `\x1b[2J`) {
		t.Errorf("the report does not show the escaped name:\n%s", out.String())
	}
}

// TestVerifierBoundsWork: files past the limits are refused from the zip
// directory, without being read; proofs past their length are refused
// before they are checked.
func TestVerifierBoundsWork(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	good := f.exportBundle(t, Query{TraceID: traceID(1)}, 0)
	key := f.verifier(t)
	span := bundle.EntryFile(4)
	tests := []struct {
		name, want, text string
		bundle           []byte
	}{
		{"entry file over the limit", bundle.CheckFiles, "more than the limit", f.resign(t, good, func(name string, c []byte) []byte {
			if name == span {
				return bytes.Repeat([]byte(" "), bundle.MaxEntryFileBytes+1)
			}
			return c
		}, nil, nil)},
		// Whitespace after the object is valid JSON; a megabyte of it
		// deflates to a few kilobytes, more than a Huffman-only entry file
		// ever expands: refused from the zip directory.
		{"entry file that expands more than an entry file can", bundle.CheckFiles, "more than an entry file expands", f.resign(t, good, func(name string, c []byte) []byte {
			if name == span {
				return append(slices.Clip(c), bytes.Repeat([]byte(" "), 1<<20)...)
			}
			return c
		}, nil, nil)},
		{"inclusion proof too long", bundle.CheckHeaders, "inclusion proof of 65 hashes", f.resign(t, good, func(name string, c []byte) []byte {
			if name == span {
				return editEntry(t, c, func(e *bundle.Entry) {
					for len(e.InclusionProof) <= bundle.MaxInclusionHashes {
						e.InclusionProof = append(e.InclusionProof, e.InclusionProof[0])
					}
				})
			}
			return c
		}, nil, nil)},
		{"unknown field in an entry file", bundle.CheckHeaders, "unknown field", f.resign(t, good, func(name string, c []byte) []byte {
			if name == span {
				return bytes.Replace(c, []byte(`{`), []byte(`{"trust":"me",`), 1)
			}
			return c
		}, nil, nil)},
		{"unknown field in the manifest", bundle.CheckManifest, "unknown field", rezipManifest(t, f, good, func(mb []byte) []byte {
			return bytes.Replace(mb, []byte(`"format"`), []byte(`"verified_by": "the server", "format"`), 1)
		})},
		{"a manifest member twice", bundle.CheckManifest, `member "tree_size" appears twice`, rezipManifest(t, f, good, func(mb []byte) []byte {
			return bytes.Replace(mb, []byte(`"format"`), []byte(`"tree_size": 1, "format"`), 1)
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := bundle.Verify(bytes.NewReader(tt.bundle), int64(len(tt.bundle)), key, nil)
			var out strings.Builder
			rep.Write(&out)
			if !slices.Contains(rep.Failed(), tt.want) || !strings.Contains(out.String(), tt.text) {
				t.Errorf("check %q did not fail naming %q; failed: %v\n%s", tt.want, tt.text, rep.Failed(), out.String())
			}
		})
	}
}

// rezipManifest replaces manifest.json's bytes and signs them again.
func rezipManifest(t *testing.T, f *fixture, b []byte, edit func([]byte) []byte) []byte {
	t.Helper()
	var mb []byte
	out := rezip(t, b, func(name string, c []byte) []byte {
		switch name {
		case bundle.ManifestFile:
			mb = edit(c)
			return mb
		case bundle.SignatureFile:
			return nil
		}
		return c
	}, nil)
	sig, err := f.l.SignBundle(context.Background(), "default", sha256.Sum256(mb))
	if err != nil {
		t.Fatal(err)
	}
	return rezip(t, out, func(_ string, c []byte) []byte { return c }, map[string][]byte{bundle.SignatureFile: sig})
}

// TestVerifierChecksHeaderAgainstPayload: a server that appended an entry
// whose header names other ids or versions than its payload cannot pass it
// off in a bundle (docs/BUNDLE.md, check "header matches payload").
func TestVerifierChecksHeaderAgainstPayload(t *testing.T) {
	f := newFixture(t)
	prompt := f.registerPrompt(t, "v1")
	other := f.registerPrompt(t, "v2")
	honest := spanSpec{trace: 5, span: 1, kind: v1.SpanKind_SPAN_KIND_GENERATION, subject: "erin", prompt: prompt}
	tests := []struct {
		name   string
		change func(r *ledgerRecord)
	}{
		{"span id", func(r *ledgerRecord) { r.SpanID[0] ^= 1 }},
		{"parent span id", func(r *ledgerRecord) { r.ParentSpanID[7] = 9 }},
		{"span kind", func(r *ledgerRecord) { r.SubKind = uint8(v1.SpanKind_SPAN_KIND_TOOL) }},
		{"version reference", func(r *ledgerRecord) { r.Refs[0] = other }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := honest
			s.trace = byte(10 + i)
			r := s.record()
			tt.change(&r)
			if _, err := f.l.Append(context.Background(), "default", []ledgerRecord{r}); err != nil {
				t.Fatal(err)
			}
			b := f.exportBundle(t, Query{TraceID: r.TraceID}, 0)
			rep := bundle.Verify(bytes.NewReader(b), int64(len(b)), f.verifier(t), nil)
			var out strings.Builder
			rep.Write(&out)
			if !slices.Contains(rep.Failed(), bundle.CheckIdentity) {
				t.Errorf("a header that disagrees with its payload (%s) passed:\n%s", tt.name, out.String())
			}
		})
	}
}

type ledgerRecord = ledger.Record
