package bundle

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/mod/sumdb/note"

	"github.com/veritrace/veritrace/ledger/format"
)

// fuzzBundle is the golden bundle taken apart and signed again with a
// test key of the same name, so that the fuzzer can change any part and
// sign the result: its inputs then reach every check, not only the
// signature.
type fuzzBundle struct {
	names    []string          // in zip order, manifest and signature last
	parts    map[string][]byte // file contents
	signer   note.Signer
	verifier note.Verifier
	pinned   []byte
	// The original headers and payloads by entry index: a bundle that
	// verifies must hold exactly these.
	headers, payloads map[uint64][]byte
}

func newFuzzBundle(t testing.TB) *fuzzBundle {
	t.Helper()
	b, gv := golden(t, "golden")
	skey, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)), gv.Name())
	if err != nil {
		t.Fatal(err)
	}
	fb := &fuzzBundle{parts: map[string][]byte{}, headers: map[uint64][]byte{}, payloads: map[uint64][]byte{}}
	if fb.signer, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if fb.verifier, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	// resign returns a signed note of the same body, signed by the test key.
	resign := func(msg []byte) []byte {
		n, err := note.Open(msg, note.VerifierList(gv))
		if err != nil {
			t.Fatal(err)
		}
		out, err := note.Sign(&note.Note{Text: n.Text}, fb.signer)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, zf := range zr.File {
		rc, _ := zf.Open()
		c, _ := io.ReadAll(rc)
		rc.Close()
		switch {
		case zf.Name == CheckpointFile:
			c = resign(c)
		case zf.Name == ConsistencyFile:
			var p ConsistencyProof
			if err := json.Unmarshal(c, &p); err != nil {
				t.Fatal(err)
			}
			p.OldCheckpoint = string(resign([]byte(p.OldCheckpoint)))
			c, _ = json.Marshal(&p)
		case strings.HasPrefix(zf.Name, EntryDir):
			var e Entry
			if err := json.Unmarshal(c, &e); err != nil {
				t.Fatal(err)
			}
			fb.headers[e.Index], fb.payloads[e.Index] = e.Header, e.Payload
		case zf.Name == ManifestFile, zf.Name == SignatureFile:
			continue
		}
		fb.names = append(fb.names, zf.Name)
		fb.parts[zf.Name] = c
	}
	m, _ := fb.manifest(zr)
	fb.names = append(fb.names, ManifestFile)
	fb.parts[ManifestFile] = m
	pinned, err := readTestdata("golden-pinned.txt")
	if err != nil {
		t.Fatal(err)
	}
	fb.pinned = resign(pinned)
	return fb
}

// manifest reads the manifest of the golden zip.
func (fb *fuzzBundle) manifest(zr *zip.Reader) ([]byte, error) {
	for _, zf := range zr.File {
		if zf.Name == ManifestFile {
			rc, _ := zf.Open()
			defer rc.Close()
			return io.ReadAll(rc)
		}
	}
	return nil, nil
}

// build zips the parts; with fix, the manifest's digests are recomputed
// first, and with sign the manifest is signed by the test key.
func (fb *fuzzBundle) build(parts map[string][]byte, names []string, fix, sign bool) []byte {
	mb := parts[ManifestFile]
	if fix {
		var m map[string]any
		if json.Unmarshal(mb, &m) == nil {
			if files, ok := m["files"].([]any); ok {
				for _, f := range files {
					if fd, ok := f.(map[string]any); ok {
						if name, ok := fd["name"].(string); ok && parts[name] != nil {
							sum := sha256.Sum256(parts[name])
							fd["sha256"] = hex.EncodeToString(sum[:])
						}
					}
				}
			}
			mb, _ = json.MarshalIndent(m, "", "  ")
		}
	}
	var sig []byte
	if sign {
		origin := ""
		var m struct{ Origin string }
		json.Unmarshal(mb, &m)
		origin = m.Origin
		sig, _ = note.Sign(&note.Note{Text: format.BundleSignatureBody(origin, sha256.Sum256(mb))}, fb.signer)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	// Stored, not deflated: compressing would take most of the time of an
	// input; the verifier reads both methods alike.
	create := func(name string) io.Writer {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		return w
	}
	for _, name := range names {
		c := parts[name]
		if name == ManifestFile {
			c = mb
		}
		create(name).Write(c)
	}
	if sig != nil {
		create(SignatureFile).Write(sig)
	}
	zw.Close()
	return out.Bytes()
}

// The mutations FuzzVerify applies to the part it picks.
const (
	opReplace    = iota // overwrite bytes at an offset
	opInsert            // insert bytes at an offset
	opTruncate          // cut the part at an offset
	opJSONValue         // replace a JSON leaf with data (as JSON, or as a string)
	opJSONDelete        // delete the object member or array element holding a JSON leaf
	opJSONDup           // duplicate an array element
	opDrop              // remove the part
	opDupFile           // add the part again under the same name
	opRename            // rename the part to data
	opRaw               // data is the whole bundle
	numOps
)

// mutate returns the bundle with one part changed. op's high bits say
// whether the digests are recomputed and the manifest signed again.
func (fb *fuzzBundle) mutate(pick, op uint8, at uint32, data []byte) (b []byte, changed bool) {
	kind := int(op) % numOps
	if kind == opRaw {
		return data, true
	}
	name := fb.names[int(pick)%len(fb.names)]
	parts := make(map[string][]byte, len(fb.parts))
	for k, v := range fb.parts {
		parts[k] = v
	}
	names := slices.Clone(fb.names)
	c := parts[name]
	off := int(at) % (len(c) + 1)
	switch kind {
	case opReplace:
		c = append(slices.Clone(c[:off]), data...)
		if off+len(data) < len(parts[name]) {
			c = append(c, parts[name][off+len(data):]...)
		}
	case opInsert:
		c = slices.Concat(c[:off], data, c[off:])
	case opTruncate:
		c = c[:off]
	case opJSONValue, opJSONDelete, opJSONDup:
		c = mutateJSON(c, kind, int(at), data)
	case opDrop:
		c = nil
		names = slices.DeleteFunc(names, func(n string) bool { return n == name })
	case opDupFile:
		names = append(names, name)
	case opRename:
		names = slices.DeleteFunc(names, func(n string) bool { return n == name })
		newName := string(data)
		names = append(names, newName)
		parts[newName] = c
		c = nil
	}
	if c != nil {
		parts[name] = c
	}
	changed = kind == opDrop || kind == opDupFile || kind == opRename || !bytes.Equal(c, fb.parts[name])
	return fb.build(parts, names, op&0x40 == 0, op&0x80 == 0), changed
}

// mutateJSON changes one member or element of a JSON document, chosen by
// at: replaces it with data, deletes it, or duplicates it in its array.
func mutateJSON(c []byte, kind, at int, data []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(c))
	dec.UseNumber()
	var root any
	if dec.Decode(&root) != nil {
		return c
	}
	type slot struct{ set, del, dup func() }
	var val any
	if json.Unmarshal(data, &val) != nil {
		val = string(data)
	}
	var slots []slot
	// walk lists v's members and elements; set replaces v in its parent.
	var walk func(v any, set func(any))
	walk = func(v any, set func(any)) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				slots = append(slots, slot{
					set: func() { x[k] = val },
					del: func() { delete(x, k) },
					dup: func() {
						if arr, ok := x[k].([]any); ok && len(arr) > 0 {
							x[k] = append(slices.Clone(arr), arr[at%len(arr)])
						}
					},
				})
				walk(x[k], func(nv any) { x[k] = nv })
			}
		case []any:
			for i := range x {
				slots = append(slots, slot{
					set: func() { x[i] = val },
					del: func() { set(slices.Delete(slices.Clone(x), i, i+1)) },
					dup: func() { set(append(slices.Clone(x), x[i])) },
				})
				walk(x[i], func(nv any) { x[i] = nv })
			}
		}
	}
	walk(root, func(nv any) { root = nv })
	if len(slots) == 0 {
		return c
	}
	s := slots[at%len(slots)]
	switch kind {
	case opJSONValue:
		s.set()
	case opJSONDelete:
		s.del()
	case opJSONDup:
		s.dup()
	}
	out, err := json.Marshal(root)
	if err != nil {
		return c
	}
	return out
}

func readTestdata(name string) ([]byte, error) { return os.ReadFile("testdata/" + name) }

// FuzzVerify changes one part of a valid, signed bundle at a time (bytes,
// JSON values, files), fixes the digests and signs the manifest again
// unless told not to, and checks that the verifier never panics, prints
// only plain text, accepts the unchanged bundle, and accepts a changed one
// only if it still holds exactly the original headers and payloads.
//
//	go test -fuzz FuzzVerify -fuzztime 60s ./audit/bundle
func FuzzVerify(f *testing.F) {
	fb := newFuzzBundle(f)
	f.Add(uint8(0), uint8(opReplace), uint32(0), []byte{})
	for pick := range len(fb.names) {
		for op := range uint8(numOps - 1) {
			f.Add(uint8(pick), op, uint32(pick*37+int(op)), []byte(`"00"`))
		}
	}
	f.Add(uint8(len(fb.names)-1), uint8(opJSONDup), uint32(3), []byte(nil))
	f.Add(uint8(0), uint8(opRaw), uint32(0), []byte("PK\x03\x04"))
	f.Fuzz(func(t *testing.T, pick, op uint8, at uint32, data []byte) {
		b, changed := fb.mutate(pick, op, at, data)
		rep := Verify(bytes.NewReader(b), int64(len(b)), fb.verifier, fb.pinned)
		var out strings.Builder
		rep.Write(&out)
		for _, r := range out.String() {
			if r != '\n' && !unicode.IsGraphic(r) {
				t.Fatalf("the report prints %q:\n%q", r, out.String())
			}
		}
		if !changed && op&0xc0 == 0 && !rep.OK() {
			t.Fatalf("the unchanged bundle, signed again, does not verify:\n%s", out.String())
		}
		if rep.OK() {
			fb.checkSound(t, b, out.String())
		}
	})
}

// checkSound fails unless a bundle that verified holds the original
// headers and payloads.
func (fb *fuzzBundle) checkSound(t *testing.T, b []byte, report string) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("a bundle that is not a zip verified:\n%s", report)
	}
	for _, zf := range zr.File {
		if !strings.HasPrefix(zf.Name, EntryDir) {
			continue
		}
		rc, _ := zf.Open()
		c, _ := io.ReadAll(rc)
		rc.Close()
		var e Entry
		if err := json.Unmarshal(c, &e); err != nil {
			t.Fatalf("%s does not parse, yet the bundle verified:\n%s", zf.Name, report)
		}
		if !bytes.Equal(e.Header, fb.headers[e.Index]) || (!e.Erased && !bytes.Equal(e.Payload, fb.payloads[e.Index])) {
			t.Fatalf("entry %d was changed, yet the bundle verified:\n%s", e.Index, report)
		}
	}
}

// BenchmarkFuzzVerifyInput measures one FuzzVerify input (mutate, sign,
// verify), which bounds the fuzzer's speed.
func BenchmarkFuzzVerifyInput(b *testing.B) {
	fb := newFuzzBundle(b)
	for i := 0; b.Loop(); i++ {
		bb, _ := fb.mutate(uint8(i), uint8(i%numOps), uint32(i*7), []byte(`"x"`))
		Verify(bytes.NewReader(bb), int64(len(bb)), fb.verifier, fb.pinned)
	}
}

// FuzzParseEntry checks the verifier's entry file parser against
// encoding/json: whatever it accepts, encoding/json (unknown fields
// disallowed) accepts with the same result.
func FuzzParseEntry(f *testing.F) {
	fb := newFuzzBundle(f)
	for _, name := range fb.names {
		if strings.HasPrefix(name, EntryDir) {
			f.Add(fb.parts[name])
		}
	}
	f.Add([]byte(`{"index":1,"header":"AQ==","leaf_hash":"` + strings.Repeat("ab", 32) + `","inclusion_proof":null,"decoded":null,"undecodable":"a\u00e9\ud83d\ude00\\\"x"}`))
	f.Add([]byte(`{"ind\u0065x":0,"erased":true}  `))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow, deferred Entry
		err := parseEntry(b, &fast)
		// The verifier's parse that defers the decoded value's syntax
		// (parseEntryDeferred, then checkDeferred) must reach parseEntry's
		// verdict, and its error when it refuses, and the same Entry.
		at, derr := parseEntryDeferred(b, &deferred)
		if derr == nil && at >= 0 {
			derr = checkDeferred(b, at, deferred.Decoded)
		}
		switch {
		case derr != nil && err == nil:
			t.Fatalf("the deferred parse refuses (%v) what parseEntry accepts: %q", derr, b)
		case derr == nil && err != nil:
			t.Fatalf("the deferred parse accepts what parseEntry refuses (%v): %q", err, b)
		case at >= 0 && derr != nil && derr.Error() != err.Error():
			t.Fatalf("the deferred check says %q, parseEntry %q: %q", derr, err, b)
		}
		if err != nil {
			return
		}
		if dj, fj := mustJSON(t, &deferred), mustJSON(t, &fast); !bytes.Equal(dj, fj) || !bytes.Equal(deferred.Decoded, fast.Decoded) {
			t.Fatalf("the deferred parse and parseEntry differ on %q:\n%s\n%s", b, dj, fj)
		}
		if err := strictJSON(b, &slow); err != nil {
			t.Fatalf("parseEntry accepts what encoding/json refuses (%v): %q", err, b)
		}
		fj, _ := json.Marshal(&fast)
		sj, _ := json.Marshal(&slow)
		if !bytes.Equal(fj, sj) || !bytes.Equal(fast.Decoded, slow.Decoded) {
			t.Fatalf("parseEntry and encoding/json differ on %q:\n%s\n%s", b, fj, sj)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// strictJSON decodes one JSON value into out, refusing unknown fields and
// trailing data.
func strictJSON(b []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// FuzzParseManifest checks the verifier's manifest parser against
// encoding/json, as FuzzParseEntry does: whatever parseManifest accepts,
// encoding/json accepts with the same result (times compared as instants).
func FuzzParseManifest(f *testing.F) {
	fb := newFuzzBundle(f)
	f.Add(fb.parts[ManifestFile])
	f.Add([]byte(`{"format":"f","origin":"o","tenant":"t","log_key":"k","created_at":"2026-11-21T09:00:05.5+01:00","selector":{"from":"0001-01-01T00:00:00Z","errors_only":true},"tree_size":9007199254740991,"traces":[],"entries":[{"index":0,"kind":"span","file":"x"}],"files":[],"consistency":{"old_size":1,"file":"consistency.json"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow Manifest
		if err := parseManifest(b, &fast); err != nil {
			return
		}
		if err := strictJSON(b, &slow); err != nil {
			t.Fatalf("parseManifest accepts what encoding/json refuses (%v): %q", err, b)
		}
		for _, tm := range []struct{ a, b *time.Time }{{&fast.CreatedAt, &slow.CreatedAt}, {&fast.Selector.From, &slow.Selector.From}, {&fast.Selector.To, &slow.Selector.To}} {
			if !tm.a.Equal(*tm.b) {
				t.Fatalf("parseManifest and encoding/json read %q differently: %v, %v", b, *tm.a, *tm.b)
			}
			*tm.a, *tm.b = time.Time{}, time.Time{}
		}
		if diff := cmp.Diff(slow, fast, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("parseManifest and encoding/json differ on %q (-json +strict):\n%s", b, diff)
		}
	})
}

// FuzzParseConsistency: the same for consistency.json.
func FuzzParseConsistency(f *testing.F) {
	fb := newFuzzBundle(f)
	f.Add(fb.parts[ConsistencyFile])
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow ConsistencyProof
		if err := parseConsistency(b, &fast); err != nil {
			return
		}
		if err := strictJSON(b, &slow); err != nil {
			t.Fatalf("parseConsistency accepts what encoding/json refuses (%v): %q", err, b)
		}
		if diff := cmp.Diff(slow, fast, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("parseConsistency and encoding/json differ on %q (-json +strict):\n%s", b, diff)
		}
	})
}
