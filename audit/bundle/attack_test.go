package bundle

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"io"
	"runtime"
	"testing"
)

// TestAttackForeignSignatureBigManifest (review of issue 9, item 6: "Check
// the signature before costly work ... bound total work"): manifest.sig is
// not secret (every bundle of the log carries one), and the verifier
// checks only that it verifies with the key before it reads manifest.json
// into memory whole, up to MaxManifestBytes (512 MiB), to compare its
// digest with the signed one. So any real manifest.sig next to a
// manifest.json of spaces, deflated to about a thousandth of its size,
// makes the verifier allocate the whole declared size before it finds
// that the signature is for another manifest. The manifest could be
// hashed as it streams and read into memory only once its digest is the
// signed one.
func TestAttackForeignSignatureBigManifest(t *testing.T) {
	b, key := golden(t, "golden")
	const size = 64 << 20
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	for _, zf := range zr.File {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: zf.Name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if zf.Name == ManifestFile {
			chunk := bytes.Repeat([]byte(" "), 1<<20)
			for i := 0; i < size>>20; i++ {
				w.Write(chunk)
			}
			continue
		}
		rc, _ := zf.Open()
		io.Copy(w, rc)
		rc.Close()
	}
	zw.Close()
	evil := out.Bytes()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rep := Verify(bytes.NewReader(evil), int64(len(evil)), key, nil)
	runtime.ReadMemStats(&after)
	if rep.OK() {
		t.Fatal("a bundle whose manifest is not the signed one verified")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("a %d KiB bundle with a valid signature of another manifest made the verifier allocate %d MiB before refusing it (failed: %v)",
			len(evil)>>10, alloc>>20, rep.Failed())
	}
}
