package bundle

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/veritrace/veritrace/ledger/format"
)

// storedLog is a synthetic log of a version and two spans of one trace,
// and the selector of that trace.
func storedLog(t *testing.T) (*synthLog, Selector, []uint64) {
	l := newSynthLog(t)
	v, id := l.version("v1")
	a, b := l.span(1, 1, "alice", id), l.span(1, 2, "alice", id)
	return l, Selector{TraceID: strings.Repeat("01", 16)}, []uint64{v, a, b}
}

// methods says how each member of a zip is compressed.
func methods(t *testing.T, b []byte) map[string]uint16 {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint16{}
	for _, f := range zr.File {
		m[f.Name] = f.Method
	}
	return m
}

// TestEntryFilesStoredOrDeflated: the Writer stores entry files (zip
// method 0) unless DeflateEntries is set, and the verifier
// accepts both forms, and every member of either form rewritten as the
// other (docs/BUNDLE.md, "What an exporter writes").
func TestEntryFilesStoredOrDeflated(t *testing.T) {
	l, sel, idxs := storedLog(t)
	stored := l.bundle(sel, []byte{1}, idxs...)
	l.deflateEntries = true
	deflated := l.bundle(sel, []byte{1}, idxs...)
	for _, c := range []struct {
		name        string
		b           []byte
		entryMethod uint16
	}{{"stored", stored, zip.Store}, {"deflated", deflated, zip.Deflate}} {
		m := methods(t, c.b)
		if m[EntryFile(idxs[1])] != c.entryMethod || m[ManifestFile] != zip.Deflate || m[CheckpointFile] != zip.Deflate {
			t.Errorf("%s bundle: methods %v, want entry files %d, other files deflated", c.name, m, c.entryMethod)
		}
		for _, as := range []uint16{zip.Store, zip.Deflate} {
			b := rewriteMembers(t, c.b, func(string) uint16 { return as })
			if rep, out := l.verify(b); !rep.OK() {
				t.Errorf("%s bundle, every member rewritten with method %d: does not verify:\n%s", c.name, as, out)
			}
		}
		if rep, out := l.verify(c.b); !rep.OK() {
			t.Errorf("%s bundle does not verify:\n%s", c.name, out)
		}
	}
	if len(stored) <= len(deflated) {
		t.Errorf("the stored bundle (%d bytes) is not larger than the deflated one (%d bytes)", len(stored), len(deflated))
	}
}

// TestStoredMemberSizesMustAgree: a stored member's size in the zip's
// directory and the bytes it has must be the same, and no method but
// stored and deflated is read: the verifier refuses either before reading
// the member, naming it.
func TestStoredMemberSizesMustAgree(t *testing.T) {
	l, sel, idxs := storedLog(t)
	honest := l.bundle(sel, []byte{1}, idxs...)
	entry := EntryFile(idxs[1])
	for _, c := range []struct {
		name, file string
		method     uint16
		extra      uint64 // added to the declared size
		want       string
	}{
		{"entry file declared longer", entry, zip.Store, 1 << 20, entry + ": stored (zip method 0) with a size of"},
		{"entry file declared shorter", entry, zip.Store, ^uint64(0), entry + ": stored (zip method 0) with a size of"},
		{"manifest declared longer", ManifestFile, zip.Store, 100, ManifestFile + ": stored (zip method 0) with a size of"},
		{"entry file with method 12 (bzip2)", entry, 12, 0, entry + ": zip method 12, neither stored (0) nor deflated (8)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := rawMember(t, honest, c.file, c.method, c.extra)
			rep, out := l.verify(b)
			if rep.OK() || !strings.Contains(out, c.want) {
				t.Errorf("verify: want a failure saying %q, got:\n%s", c.want, out)
			}
		})
	}
}

// TestManifestReadInOneOrTwoPasses: a manifest that deflates more than
// manifestExpansion-fold is hashed before it is read (a foreign signature
// beside a huge one costs no memory: TestAttackForeignSignatureBigManifest),
// others are read once; either way a signed one verifies, and one that is
// not the signed one fails the signature check.
func TestManifestReadInOneOrTwoPasses(t *testing.T) {
	l, sel, idxs := storedLog(t)
	honest := l.bundle(sel, []byte{1}, idxs...)
	mb := member(t, honest, ManifestFile)
	padded := append(bytes.Clone(mb), bytes.Repeat([]byte(" "), 1<<20)...) // JSON may end in white space
	for _, c := range []struct {
		name    string
		content []byte
		method  uint16
		resign  bool
		ok      bool
	}{
		{"deflated, read once", mb, zip.Deflate, false, true},
		{"stored, read once", mb, zip.Store, false, true},
		{"deflated past the bound, hashed first", padded, zip.Deflate, true, true},
		{"deflated past the bound, another manifest", padded, zip.Deflate, false, false},
		{"stored, another manifest", padded, zip.Store, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := replaceMember(t, honest, ManifestFile, c.content, c.method)
			if c.method == zip.Deflate && c.resign {
				f := zipFile(t, b, ManifestFile)
				if f.UncompressedSize64 <= manifestExpansion*f.CompressedSize64+expansionSlack {
					t.Fatalf("the padded manifest expands only %d-fold", f.UncompressedSize64/f.CompressedSize64)
				}
			}
			if c.resign {
				sig, err := note.Sign(&note.Note{Text: format.BundleSignatureBody(synthOrigin, sha256.Sum256(c.content))}, l.signer)
				if err != nil {
					t.Fatal(err)
				}
				b = replaceMember(t, b, SignatureFile, sig, zip.Deflate)
			}
			rep, out := l.verify(b)
			if rep.OK() != c.ok {
				t.Fatalf("verifies %v, want %v:\n%s", rep.OK(), c.ok, out)
			}
			if !c.ok && !strings.Contains(out, "the signature is for another manifest") {
				t.Errorf("want the signature check to fail on another manifest, got:\n%s", out)
			}
		})
	}
}

// member returns a zip member's content.
func member(t *testing.T, b []byte, name string) []byte {
	t.Helper()
	rc, err := zipFile(t, b, name).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	c, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func zipFile(t *testing.T, b []byte, name string) *zip.File {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no %s", name)
	return nil
}

// rewriteZip copies a zip; edit says how to write each member (nil: a
// copy of it as it is) given its content.
func rewriteZip(t *testing.T, b []byte, edit func(f *zip.File, content []byte) *zipEdit) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		e := edit(f, content)
		if e == nil {
			if err := zw.Copy(f); err != nil {
				t.Fatal(err)
			}
			continue
		}
		create := zw.CreateHeader
		if e.raw {
			create = zw.CreateRaw
		}
		w, err := create(e.header)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.content)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// zipEdit is how rewriteZip writes a member: with header, holding
// content, raw (header's sizes and CRC-32 as they are, content not
// compressed) or not.
type zipEdit struct {
	header  *zip.FileHeader
	content []byte
	raw     bool
}

// rewriteMembers copies a zip, each member with the method method(name)
// gives, its content unchanged (so the manifest's digests and signature
// still hold).
func rewriteMembers(t *testing.T, b []byte, method func(name string) uint16) []byte {
	return rewriteZip(t, b, func(f *zip.File, c []byte) *zipEdit {
		return &zipEdit{header: &zip.FileHeader{Name: f.Name, Method: method(f.Name)}, content: c}
	})
}

// rawMember copies a zip with one member written raw: its content stored
// as it is, under the given method, its declared size changed by extra.
func rawMember(t *testing.T, b []byte, name string, method uint16, extra uint64) []byte {
	return rewriteZip(t, b, func(f *zip.File, c []byte) *zipEdit {
		if f.Name != name {
			return nil
		}
		return &zipEdit{raw: true, content: c, header: &zip.FileHeader{Name: name, Method: method, CRC32: crc32.ChecksumIEEE(c),
			CompressedSize64: uint64(len(c)), UncompressedSize64: uint64(len(c)) + extra}}
	})
}

// replaceMember copies a zip with one member's content replaced, written
// with method.
func replaceMember(t *testing.T, b []byte, name string, content []byte, method uint16) []byte {
	return rewriteZip(t, b, func(f *zip.File, _ []byte) *zipEdit {
		if f.Name != name {
			return nil
		}
		return &zipEdit{header: &zip.FileHeader{Name: name, Method: method}, content: content}
	})
}
