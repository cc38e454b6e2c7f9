package bundle

import (
	"archive/zip"
	"bytes"
	"hash/crc32"
	"io"
	"strings"
	"testing"
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

// TestEntryFilesStoredOrDeflated: the Writer stores entry files and the
// manifest (zip method 0) unless DeflateEntries is set, and the verifier
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
		if m[EntryFile(idxs[1])] != c.entryMethod || m[ManifestFile] != zip.Store || m[CheckpointFile] != zip.Deflate {
			t.Errorf("%s bundle: methods %v, want entry files %d, the manifest stored, other files deflated", c.name, m, c.entryMethod)
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

// rewriteMembers copies a zip, each member with the method method(name)
// gives, its content unchanged (so the manifest's digests and signature
// still hold).
func rewriteMembers(t *testing.T, b []byte, method func(name string) uint16) []byte {
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
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: method(f.Name)})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(content)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
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

// rawMember copies a zip with one member written raw: its content stored
// as it is, under the given method, its declared size changed by extra.
func rawMember(t *testing.T, b []byte, name string, method uint16, extra uint64) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		if f.Name != name {
			if err := zw.Copy(f); err != nil {
				t.Fatal(err)
			}
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		content, _ := io.ReadAll(rc)
		rc.Close()
		w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: method, CRC32: crc32.ChecksumIEEE(content),
			CompressedSize64: uint64(len(content)), UncompressedSize64: uint64(len(content)) + extra})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(content)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
