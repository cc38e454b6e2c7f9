package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// signedReceipt returns a receipt file for rc, signed by signer, whose
// checkpoint is of an empty-rooted tree of the given size.
func signedReceipt(t testing.TB, signer note.Signer, rc map[string]any) []byte {
	t.Helper()
	cp, err := note.Sign(&note.Note{Text: format.CheckpointBody("test/default", 10, tlog.Hash{1})}, signer)
	if err != nil {
		t.Fatal(err)
	}
	rc["checkpoint"] = string(cp)
	b, err := json.Marshal(rc)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := note.Sign(&note.Note{Text: format.ReceiptSignatureBody("test/default", sha256.Sum256(b))}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return append(append(b, '\n'), sig...)
}

func receiptKeys(t testing.TB) (note.Signer, note.Verifier) {
	skey, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 64)), "test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func v2Receipt() map[string]any {
	return map[string]any{"format": ReceiptFormatV2, "request_id": "r1", "origin": "test/default", "tenant": "default",
		"selector": "subject", "legal_basis": "GDPR", "requested_at": "2026-01-01T00:00:00Z", "completed_at": "2026-01-01T00:00:01Z",
		"erased_count": 2, "held_count": 0, "tombstones": []any{map[string]any{"index": 3, "leaf_hash": strings.Repeat("ab", 32)}}}
}

// TestCheckReceiptStrict: a receipt's signature is checked over its exact
// bytes, its JSON strictly, and its checkpoint must cover its parts.
func TestCheckReceiptStrict(t *testing.T) {
	signer, verifier := receiptKeys(t)
	good := signedReceipt(t, signer, v2Receipt())
	if rep := CheckReceipt(good, verifier, nil); !rep.OK() || rep.PartsChecked || rep.Receipt == nil || rep.Receipt.ErasedCount != 2 {
		var w strings.Builder
		rep.Write(&w)
		t.Fatalf("CheckReceipt(good, no parts) not OK:\n%s", w.String())
	}
	tests := []struct {
		name, check string
		file        func() []byte
	}{
		{"changed count, not re-signed", CheckReceiptSignature, func() []byte { return bytes.Replace(good, []byte(`"erased_count":2`), []byte(`"erased_count":1`), 1) }},
		{"unknown member", CheckReceiptSignature, func() []byte { r := v2Receipt(); r["extra"] = 1; return signedReceipt(t, signer, r) }},
		{"v1 member in v2", CheckReceiptSignature, func() []byte { r := v2Receipt(); r["erased"] = []any{}; return signedReceipt(t, signer, r) }},
		{"unknown format", CheckReceiptSignature, func() []byte { r := v2Receipt(); r["format"] = "x"; return signedReceipt(t, signer, r) }},
		{"no parts", CheckReceiptSignature, func() []byte { r := v2Receipt(); r["tombstones"] = []any{}; return signedReceipt(t, signer, r) }},
		{"part past the checkpoint", CheckReceiptCheckpoint, func() []byte {
			r := v2Receipt()
			r["tombstones"] = []any{map[string]any{"index": 10, "leaf_hash": strings.Repeat("ab", 32)}}
			return signedReceipt(t, signer, r)
		}},
		{"other origin", CheckReceiptSignature, func() []byte { r := v2Receipt(); r["origin"] = "other/default"; return signedReceipt(t, signer, r) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := CheckReceipt(tc.file(), verifier, nil)
			var w strings.Builder
			rep.Write(&w)
			if rep.OK() || !strings.Contains(w.String(), "FAIL  "+tc.check) {
				t.Errorf("CheckReceipt = OK %v, want %s to fail:\n%s", rep.OK(), tc.check, w.String())
			}
		})
	}
}

// FuzzCheckReceipt: any receipt file is checked without a panic, within
// its bounds, and one that is not the signed original is never OK.
func FuzzCheckReceipt(f *testing.F) {
	signer, verifier := receiptKeys(f)
	good := signedReceipt(f, signer, v2Receipt())
	f.Add(good)
	f.Add([]byte(`{"receipt":{},"receipt_json":"{}","signature":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep := CheckReceipt(b, verifier, func(uint64, *format.Checkpoint) (*ReceiptPart, error) {
			return &ReceiptPart{}, nil
		})
		var w strings.Builder
		rep.Write(&w)
		if rep.OK() {
			t.Fatalf("CheckReceipt(%q) OK with no real tombstone", b)
		}
	})
}

// TestGoldenReceiptFile: the receipt a server signed (regenerate with `go
// test ./audit -run GoldenReceipt -update`) is checked from files alone:
// its signature and checkpoint, then its tombstone parts in a bundle of
// the erased trace; a bundle that does not hold them fails the parts.
func TestGoldenReceiptFile(t *testing.T) {
	const dir = "testdata/"
	var out strings.Builder
	rep, err := VerifyReceiptFile(dir+"golden-receipt.txt", dir+"golden-receipt.pub", "", &out)
	if err != nil || !rep.OK() || rep.PartsChecked || !strings.Contains(out.String(), "SIGNED:") {
		t.Fatalf("receipt alone = %v\n%s", err, out.String())
	}
	out.Reset()
	rep, err = VerifyReceiptFile(dir+"golden-receipt.txt", dir+"golden-receipt.pub", dir+"golden-receipt.zip", &out)
	if err != nil || !rep.OK() || !rep.PartsChecked || !strings.Contains(out.String(), "VERIFIED: every check passed") {
		t.Fatalf("receipt with its bundle = %v\n%s", err, out.String())
	}
	out.Reset()
	rep, err = VerifyReceiptFile(dir+"golden-receipt.txt", dir+"golden-receipt.pub", dir+"golden.zip", &out)
	if err != nil || rep.OK() || !slices.Contains(rep.Failed(), CheckReceiptParts) {
		t.Errorf("receipt with another log's bundle = %v, failed %v\n%s", err, rep.Failed(), out.String())
	}
	if rep, err := VerifyReceiptFile(dir+"golden-receipt.txt", dir+"golden.pub", "", &out); err != nil || !slices.Contains(rep.Failed(), CheckReceiptSignature) {
		t.Errorf("receipt under another log's key = %v, failed %v", err, rep.Failed())
	}
	if _, err := VerifyReceiptFile(dir+"no-such.txt", dir+"golden-receipt.pub", "", &out); err == nil {
		t.Error("a missing receipt file was read")
	}
}

// TestReceiptReportWording: the report says of each check whether it
// passed, failed or was not checked, and its last line names exactly the
// checks that failed and those that did not run, in the words of
// `veritrace verify` (Report.Summary): a check that did not run is never
// called failed.
func TestReceiptReportWording(t *testing.T) {
	const dir = "testdata/"
	tests := []struct {
		name, key, bundle string
		ok                bool
		lines             []string // each a whole line of the report
	}{
		{"no parts given", "golden-receipt.pub", "", true, []string{
			"ok    receipt signature (1)",
			"ok    receipt checkpoint (1)",
			"--    tombstone parts: not checked: needs the tombstone entries (an evidence bundle that carries them, or the server)",
			"--    counts: not checked: needs the tombstone entries (an evidence bundle that carries them, or the server)",
			"SIGNED: the log key signed this receipt and its checkpoint; its tombstone parts were not checked (give the tombstone entries: an evidence bundle or the server)",
		}},
		{"parts given, all hold", "golden-receipt.pub", "golden-receipt.zip", true, []string{
			"ok    tombstone parts (1)",
			"ok    counts (1)",
			"VERIFIED: every check passed",
		}},
		{"parts given, one fails", "golden-receipt.pub", "golden.zip", false, []string{
			"ok    receipt checkpoint (1)",
			"FAIL  tombstone parts (0 ok, 1 failed)",
			"--    counts: not checked: not every tombstone part holds",
			"NOT VERIFIED: tombstone parts failed; counts not checked (not every tombstone part holds)",
		}},
		{"signature fails, no parts given", "golden.pub", "", false, []string{
			"receipt of unknown content: its signature does not hold or it could not be read",
			"--    receipt checkpoint: not checked: the receipt's signature does not hold",
			"--    tombstone parts: not checked: the receipt's signature does not hold",
			"NOT VERIFIED: receipt signature failed; receipt checkpoint, tombstone parts, counts not checked (the receipt's signature does not hold)",
		}},
		{"signature fails, parts given", "golden.pub", "golden-receipt.zip", false, []string{
			"--    counts: not checked: the receipt's signature does not hold",
			"NOT VERIFIED: receipt signature failed; receipt checkpoint, tombstone parts, counts not checked (the receipt's signature does not hold)",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bundlePath := ""
			if tc.bundle != "" {
				bundlePath = dir + tc.bundle
			}
			var out strings.Builder
			rep, err := VerifyReceiptFile(dir+"golden-receipt.txt", dir+tc.key, bundlePath, &out)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() != tc.ok {
				t.Errorf("OK() = %v, want %v\n%s", rep.OK(), tc.ok, out.String())
			}
			lines := strings.Split(out.String(), "\n")
			for _, want := range tc.lines {
				if !slices.Contains(lines, want) {
					t.Errorf("the report has no line %q:\n%s", want, out.String())
				}
			}
		})
	}
}
