package bundle

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/veritrace/veritrace/ledger/format"
)

// Regression tests from review attack19 (a lying server holding the log
// key, or anyone with a genuine manifest.sig, against the verifier's
// speed-ups of vfy50 and vfy15): the manifest read, and zip containers
// that the Go verifier and the console's must read alike.

// TestForeignSignatureManifestUnder16Fold: the one-pass manifest
// read (vfy50) reads manifest.json whole into memory before it knows that
// it is the signed one whenever it expands at most 16-fold. Any bundle's
// manifest.sig verifies with the key, so anyone (no key needed) can put a
// genuine manifest.sig beside a manifest of random white space, deflated
// about 4-fold: the verifier allocates its whole declared size (up to
// MaxManifestBytes, 512 MiB, from a 32 MiB zip) and only then finds that
// the signature is for another manifest. Before vfy50 the manifest was
// hashed as it streamed and read only once its digest was the signed one,
// so such a bundle cost no memory (TestAttackForeignSignatureBigManifest
// covers only manifests past the 16-fold bound).
func TestForeignSignatureManifestUnder16Fold(t *testing.T) {
	const size = 8 << 20
	l, sel, idxs := storedLog(t)
	honest := l.bundle(sel, []byte{1}, idxs...)
	pad := make([]byte, size)
	rand.NewChaCha8([32]byte{19}).Read(pad)
	for i, c := range pad {
		pad[i] = " \t\r\n"[c&3] // two bits a byte: deflates about 4-fold
	}
	content := append(member(t, honest, ManifestFile), pad...)
	var deflated bytes.Buffer // Huffman only: fast, and about 4-fold here
	fw, _ := flate.NewWriter(&deflated, flate.HuffmanOnly)
	fw.Write(content)
	fw.Close()
	evil := rewriteZip(t, honest, func(f *zip.File, _ []byte) *zipEdit {
		if f.Name != ManifestFile {
			return nil
		}
		return &zipEdit{raw: true, content: deflated.Bytes(), header: &zip.FileHeader{Name: ManifestFile, Method: zip.Deflate,
			CRC32: crc32.ChecksumIEEE(content), CompressedSize64: uint64(deflated.Len()), UncompressedSize64: uint64(len(content))}}
	})
	f := zipFile(t, evil, ManifestFile)
	if f.UncompressedSize64 > 16*f.CompressedSize64 { // the one-pass bound before this fix
		t.Fatalf("the padded manifest expands %d-fold, past the old one-pass bound", f.UncompressedSize64/f.CompressedSize64)
	}
	pad, content = nil, nil

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rep, out := l.verify(evil)
	runtime.ReadMemStats(&after)
	if rep.OK() || !strings.Contains(out, "the signature is for another manifest") {
		t.Fatalf("want the signature check to fail, got:\n%s", out)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
		t.Errorf("a %d MiB bundle with a genuine signature of another manifest (%d MiB, deflated %d-fold) made the verifier allocate %d MiB before refusing it",
			len(evil)>>20, f.UncompressedSize64>>20, f.UncompressedSize64/f.CompressedSize64, alloc>>20)
	}
}

// zipQuirkCase is a bundle crafted for the console's verifier, with the
// Go verifier's verdict (cmd/veritrace/internal/console/web/test/
// zipquirks.test.ts checks that the console gives the same).
type zipQuirkCase struct {
	Name   string   `json:"name"`
	File   string   `json:"file"`
	OK     bool     `json:"ok"`
	Failed []string `json:"failed"`
}

// zipQuirksDir is where the crafted bundles go for the console's tests.
const zipQuirksDir = "../../cmd/veritrace/internal/console/web/testdata/zipquirks"

// TestZipQuirks crafts bundles whose zip container the Go
// verifier (archive/zip) and the console's (web/src/verify/zip.ts) read
// differently, and checks the Go verdicts; with ZIPQUIRKS_WRITE=1 it writes
// them, the Go verdicts and the key under zipQuirksDir for the console's
// test, which fails on every case where the two disagree.
func TestZipQuirks(t *testing.T) {
	l, sel, idxs := storedLog(t)
	honest := l.bundle(sel, []byte{1}, idxs...)
	entry := EntryFile(idxs[1])

	// A stored entry file with a data descriptor (flag 0x8) whose CRC-32
	// is not the directory's: archive/zip reads the descriptor and
	// refuses the file; zip.ts ignores descriptors.
	badDescriptor := rewriteZip(t, honest, func(f *zip.File, c []byte) *zipEdit {
		if f.Name != entry {
			return nil
		}
		return &zipEdit{raw: true, content: c, header: &zip.FileHeader{Name: entry, Method: zip.Store, Flags: 0x8, CRC32: f.CRC32,
			CompressedSize64: uint64(len(c)), UncompressedSize64: uint64(len(c))}}
	})
	var desc [8]byte
	binary.LittleEndian.PutUint32(desc[:], 0x08074b50)
	binary.LittleEndian.PutUint32(desc[4:], zipFile(t, honest, entry).CRC32)
	at := bytes.Index(badDescriptor, desc[:])
	if at < 0 {
		t.Fatal("no data descriptor written")
	}
	badDescriptor[at+4] ^= 1

	// The end of central directory record followed, as its comment, by a
	// copy of itself whose own comment length runs past the end:
	// archive/zip takes the last record, finds its comment truncated and
	// refuses the zip; zip.ts takes the last record as it is.
	n := len(honest)
	eocd := bytes.Clone(honest[n-22:])
	truncatedEnd := bytes.Clone(honest)
	binary.LittleEndian.PutUint16(truncatedEnd[n-2:], 22)
	binary.LittleEndian.PutUint16(eocd[20:], 0x100)
	truncatedEnd = append(truncatedEnd, eocd...)

	// Bytes before the zip (as a self-extracting archive has): archive/zip
	// finds the directory where the end record says it ends and reads the
	// files at offsets moved by the prefix; our exporter never writes a
	// prefix, and both verifiers refuse a directory that does not end
	// where the end record begins.
	prefixed := append(bytes.Repeat([]byte{0}, 4096), honest...)

	// Bytes after the end record's comment: archive/zip finds the record
	// and ignores them; both verifiers refuse a comment that does not end
	// the file.
	trailing := append(bytes.Clone(honest), "trailing"...)

	// A data descriptor with the right CRC-32 and a wrong size:
	// archive/zip ignores the sizes; both verifiers refuse it.
	badDescriptorSize := bytes.Clone(badDescriptor)
	badDescriptorSize[at+4] ^= 1 // the CRC-32 right again
	badDescriptorSize[at+12] ^= 1

	// The honest bundle with a zip64 end record and locator, the end
	// record's values set to the zip64 markers (as archive/zip's Writer
	// writes a bundle of 65,535 files or more): both verifiers accept it.
	zip64 := zip64End(t, honest)

	// A manifest of 64 MiB and one byte (white space after the JSON),
	// deflated, signed with the log key: within the format's 512 MiB;
	// zip.ts refuses any file past 64 MiB (MAX_FILE).
	// (Made only when writing: it takes seconds under the race detector.)
	var bigManifest []byte
	write := os.Getenv("ZIPQUIRKS_WRITE") != ""
	if write {
		mb := append(member(t, honest, ManifestFile), bytes.Repeat([]byte(" "), 64<<20+1-len(member(t, honest, ManifestFile)))...)
		bigManifest = resignManifest(t, l, honest, mb)
	}

	// An entry file and the manifest, each after a UTF-8 byte-order mark,
	// the manifest's digests fixed and signed again: the Go parsers refuse
	// a file that does not begin with "{" (after white space); the
	// console's TextDecoder drops a leading byte-order mark.
	bom := []byte("\xef\xbb\xbf")
	ec := member(t, honest, entry)
	ecBOM := append(bytes.Clone(bom), ec...)
	oldSum, newSum := sha256.Sum256(ec), sha256.Sum256(ecBOM)
	mBOM := bytes.Replace(member(t, honest, ManifestFile), []byte(hex.EncodeToString(oldSum[:])), []byte(hex.EncodeToString(newSum[:])), 1)
	entryBOM := resignManifest(t, l, replaceMember(t, honest, entry, ecBOM, zip.Store), mBOM)
	manifestBOM := resignManifest(t, l, honest, append(bytes.Clone(bom), member(t, honest, ManifestFile)...))

	cases := []struct {
		zipQuirkCase
		b []byte
	}{
		{zipQuirkCase{Name: "entry file after a byte-order mark, re-signed", File: "entry-bom-resigned.zip"}, entryBOM},
		{zipQuirkCase{Name: "manifest after a byte-order mark, re-signed", File: "manifest-bom-resigned.zip"}, manifestBOM},
		{zipQuirkCase{Name: "honest synthetic bundle", File: "honest.zip", OK: true}, honest},
		{zipQuirkCase{Name: "stored entry file with a data descriptor whose CRC-32 differs", File: "bad-descriptor.zip"}, badDescriptor},
		{zipQuirkCase{Name: "end record followed by one with a truncated comment", File: "truncated-end.zip"}, truncatedEnd},
		{zipQuirkCase{Name: "4096 bytes before the zip", File: "prefixed.zip"}, prefixed},
		{zipQuirkCase{Name: "bytes after the end record", File: "trailing.zip"}, trailing},
		{zipQuirkCase{Name: "stored entry file with a data descriptor whose size differs", File: "bad-descriptor-size.zip"}, badDescriptorSize},
		{zipQuirkCase{Name: "zip64 end records", File: "zip64.zip", OK: true}, zip64},
		{zipQuirkCase{Name: "manifest of 64 MiB + 1 byte, deflated, re-signed", File: "big-manifest-resigned.zip", OK: true}, bigManifest},
	}
	var out []zipQuirkCase
	for _, c := range cases {
		if c.b == nil { // not made
			continue
		}
		rep, text := l.verify(c.b)
		if rep.OK() != c.OK {
			t.Errorf("%s: the Go verifier says OK %v, want %v:\n%s", c.Name, rep.OK(), c.OK, text)
		}
		c.Failed = rep.Failed()
		if c.Failed == nil {
			c.Failed = []string{}
		}
		out = append(out, c.zipQuirkCase)
	}
	if !write {
		return
	}
	if err := os.MkdirAll(zipQuirksDir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 64)), "synth-log") // newSynthLog's key
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"synth.pub": []byte(vkey + "\n")}
	for _, c := range cases {
		files[c.File] = c.b
	}
	js, _ := json.MarshalIndent(out, "", " ")
	files["cases.json"] = append(js, '\n')
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(zipQuirksDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// entryVector is an entry file crafted for the JSON scanning of vfy50
// (byte searches, the eight-bytes-at-a-time control check, hashes decoded
// directly), with whether the Go parser accepts it.
type entryVector struct {
	Name  string `json:"name"`
	File  []byte `json:"file"` // base64 in JSON
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// TestEntryJSONVectors runs parseEntry on entry files with control
// characters at every offset modulo 8 of a string, escapes next to
// eight-byte boundaries, hashes in upper case, escaped, of 63 and 65
// digits, invalid UTF-8 and the like, each checked against encoding/json's
// verdict; with ZIPQUIRKS_WRITE=1 it writes them, with the Go verdicts, for
// the console's parser (web/test/zipquirks.test.ts).
func TestEntryJSONVectors(t *testing.T) {
	l, sel, idxs := storedLog(t)
	honest := member(t, l.bundle(sel, []byte{1}, idxs...), EntryFile(idxs[1]))
	var e Entry
	if err := parseEntry(honest, &e); err != nil {
		t.Fatal(err)
	}
	leaf := hex.EncodeToString(e.LeafHash[:])
	replace := func(old, new string) []byte {
		if !bytes.Contains(honest, []byte(old)) {
			t.Fatalf("no %q", old)
		}
		return bytes.Replace(honest, []byte(old), []byte(new), 1)
	}
	var cases []entryVector
	add := func(name string, b []byte) { cases = append(cases, entryVector{Name: name, File: b}) }
	add("honest", honest)
	und := func(s string) []byte { return replace(`"inclusion_proof"`, `"undecodable":"`+s+`","inclusion_proof"`) }
	for off := range 17 {
		for _, c := range []string{"\x00", "\x1f", "\x7f", "\x80", "\xff", "\\\"", "\\\\", "\\u0000", "\\u001f", "\\ud800", "\\ud83d\\ude00", "\t", "\\/"} {
			add(fmt.Sprintf("undecodable with %q at offset %d", c, off), und(strings.Repeat("a", off)+c+"bcdefghijklmnop"))
		}
	}
	for _, c := range []struct{ name, s string }{
		{"upper case", strings.ToUpper(leaf)},
		{"63 digits", leaf[:63]},
		{"65 digits", leaf + "0"},
		{"first digit escaped", `\u00` + hex.EncodeToString([]byte{leaf[0]}) + leaf[1:]},
		{"last digit escaped", leaf[:63] + `\u00` + hex.EncodeToString([]byte{leaf[63]})},
		{"a solidus escaped inside", leaf[:32] + `\/` + leaf[32:]},
		{"a space inside", leaf[:32] + " " + leaf[33:]},
		{"a NUL at the end", leaf[:63] + "\x00"},
		{"g for the last digit", leaf[:63] + "g"},
		{"a quote escaped at the end", leaf[:63] + `\"`},
	} {
		add("leaf_hash "+c.name, replace(`"leaf_hash":"`+leaf+`"`, `"leaf_hash":"`+c.s+`"`))
	}
	add("inclusion_proof null", replace(`"inclusion_proof":[`, `"inclusion_proof":null,"x":[`))
	add("header with a line break", replace(`"header":"AQEB`, `"header":"AQ\nEB`))
	add("header with an escaped line break", replace(`"header":"AQEB`, `"header":"AQ\\nEB`))
	add("header with an escaped letter", replace(`"header":"AQEB`, `"header":"\u0041QEB`))
	add("a member name escaped", replace(`"index"`, `"\u0069ndex"`))
	add("a member twice", replace(`{"index":1,`, `{"index":1,"index":1,`))
	add("a byte-order mark", append([]byte("\xef\xbb\xbf"), honest...))
	add("decoded with invalid UTF-8", replace(`"inclusion_proof"`, "\"decoded\":\"\xc3\x28\",\"inclusion_proof\""))
	add("decoded with a control character", replace(`"inclusion_proof"`, "\"decoded\":{\"a\":\"b\x01\"},\"inclusion_proof\""))
	add("decoded with a lone surrogate escape", replace(`"inclusion_proof"`, `"decoded":"\ud800","inclusion_proof"`))
	add("erased false", replace(`"inclusion_proof"`, `"erased":false,"inclusion_proof"`))
	add("index as 1.0", replace(`"index":1,`, `"index":1.0,`))
	add("index with a leading zero", replace(`"index":1,`, `"index":01,`))

	for i := range cases {
		c := &cases[i]
		var e Entry
		err := parseEntry(c.File, &e)
		c.OK = err == nil
		if err != nil {
			c.Error = err.Error()
		}
		// encoding/json's verdict, where it has the same rules (it takes a
		// member twice, a lone surrogate and "erased": false, which the
		// strict parser refuses, and decoded's content is any value).
		var std Entry
		dec := json.NewDecoder(bytes.NewReader(c.File))
		dec.DisallowUnknownFields()
		stdErr := dec.Decode(&std)
		if stdErr == nil && dec.More() {
			stdErr = errors.New("data after the value")
		}
		if c.OK && stdErr != nil {
			t.Errorf("%s: parseEntry accepts what encoding/json refuses (%v)", c.Name, stdErr)
		}
		if c.OK && (std.Index != e.Index || !bytes.Equal(std.Header, e.Header) || std.LeafHash != e.LeafHash || std.Undecodable != e.Undecodable || len(std.InclusionProof) != len(e.InclusionProof)) {
			t.Errorf("%s: parseEntry and encoding/json read different entries", c.Name)
		}
	}
	if os.Getenv("ZIPQUIRKS_WRITE") == "" {
		return
	}
	js, _ := json.MarshalIndent(cases, "", " ")
	if err := os.WriteFile(filepath.Join(zipQuirksDir, "entries.json"), append(js, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// zip64End rewrites a zip's end (no comment) as archive/zip's Writer
// writes it for a zip64 archive: a zip64 end record, its locator, and an
// end record holding the zip64 markers.
func zip64End(t *testing.T, b []byte) []byte {
	t.Helper()
	le := binary.LittleEndian
	p := len(b) - 22
	if le.Uint32(b[p:]) != 0x06054b50 {
		t.Fatal("no end record where expected")
	}
	count, size, off := le.Uint16(b[p+10:]), le.Uint32(b[p+12:]), le.Uint32(b[p+16:])
	out := bytes.Clone(b[:p])
	rec := make([]byte, 56)
	le.PutUint32(rec[0:], 0x06064b50)
	le.PutUint64(rec[4:], 44)
	le.PutUint16(rec[12:], 45)
	le.PutUint16(rec[14:], 45)
	le.PutUint64(rec[24:], uint64(count))
	le.PutUint64(rec[32:], uint64(count))
	le.PutUint64(rec[40:], uint64(size))
	le.PutUint64(rec[48:], uint64(off))
	loc := make([]byte, 20)
	le.PutUint32(loc[0:], 0x07064b50)
	le.PutUint64(loc[8:], uint64(p))
	le.PutUint32(loc[16:], 1)
	end := make([]byte, 22)
	le.PutUint32(end[0:], 0x06054b50)
	le.PutUint16(end[8:], 0xffff)
	le.PutUint16(end[10:], 0xffff)
	le.PutUint32(end[12:], 0xffffffff)
	le.PutUint32(end[16:], 0xffffffff)
	out = append(append(append(out, rec...), loc...), end...)
	if zr, err := zip.NewReader(bytes.NewReader(out), int64(len(out))); err != nil || len(zr.File) != int(count) {
		t.Fatalf("archive/zip does not read the zip64 end: %v", err)
	}
	return out
}

// resignManifest replaces a bundle's manifest.json with manifest and
// signs it with the log key.
func resignManifest(t *testing.T, l *synthLog, b, manifest []byte) []byte {
	t.Helper()
	sig, err := note.Sign(&note.Note{Text: format.BundleSignatureBody(synthOrigin, sha256.Sum256(manifest))}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return replaceMember(t, replaceMember(t, b, ManifestFile, manifest, zip.Deflate), SignatureFile, sig, zip.Deflate)
}
