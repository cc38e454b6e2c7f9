package format

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sampleHeader() *Header {
	h := &Header{
		Kind:           KindSpan,
		SubKind:        1,
		Tenant:         "default",
		Index:          42,
		AppendedAt:     time.Date(2026, 11, 21, 9, 30, 0, 123456789, time.UTC),
		RetentionClass: "default",
	}
	for i := range h.TraceID {
		h.TraceID[i] = byte(0x10 + i)
	}
	for i := range h.SpanID {
		h.SpanID[i] = byte(0x20 + i)
	}
	h.ParentSpanID[7] = 0x01
	h.Refs[0][0] = 0xaa
	h.Refs[2][31] = 0xbb
	h.PrevLeafHash[0] = 0xcc
	h.Commitment[31] = 0xdd
	return h
}

// TestHeaderGolden pins the canonical encoding byte by byte
// (testdata/header-v1.hex; regenerate with -update).
func TestHeaderGolden(t *testing.T) {
	got := hex.EncodeToString(sampleHeader().Marshal()) + "\n"
	path := filepath.Join("testdata", "header-v1.hex")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("Marshal() = %s, want %s", got, want)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := sampleHeader()
	b := h.Marshal()
	if len(b) != headerFixedLen+len(h.Tenant)+len(h.RetentionClass) {
		t.Errorf("len(Marshal()) = %d", len(b))
	}
	got, err := ParseHeader(b)
	if err != nil {
		t.Fatalf("ParseHeader() = %v", err)
	}
	if diff := cmp.Diff(h, got); diff != "" {
		t.Errorf("ParseHeader(Marshal(h)) differs (-want +got):\n%s", diff)
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good := sampleHeader().Marshal()
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"format version", mut(func(b []byte) []byte { b[0] = 2; return b })},
		{"entry kind", mut(func(b []byte) []byte { b[1] = 9; return b })},
		{"span kind", mut(func(b []byte) []byte { b[2] = 0; return b })},
		{"tenant length", mut(func(b []byte) []byte { b[3] = 200; return b })},
		{"tenant chars", mut(func(b []byte) []byte { b[4] = 'D'; return b })},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"truncated", good[:len(good)-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseHeader(tt.b); !errors.Is(err, ErrMalformedHeader) {
				t.Errorf("ParseHeader() = %v, want ErrMalformedHeader", err)
			}
		})
	}
}

func TestCommitmentAndVersionID(t *testing.T) {
	salt := bytes.Repeat([]byte{1}, SaltSize)
	c := Commitment(salt, []byte("payload"))
	// SHA-256("veritrace/payload/v1" || 0x00 || salt || "payload"), computed by hand.
	if got := hex.EncodeToString(c[:]); got != testCommitment {
		t.Errorf("Commitment() = %s, want %s", got, testCommitment)
	}
	if Commitment(salt, []byte("payloaD")) == c {
		t.Error("Commitment does not depend on the payload")
	}
	salt2 := bytes.Repeat([]byte{2}, SaltSize)
	if Commitment(salt2, []byte("payload")) == c {
		t.Error("Commitment does not depend on the salt")
	}
	a := VersionID(VersionPrompt, "ab", "c", "text/plain", []byte("x"))
	b := VersionID(VersionPrompt, "a", "bc", "text/plain", []byte("x"))
	if a == b {
		t.Error("VersionID is ambiguous between name and label")
	}
	if VersionID(VersionPolicy, "ab", "c", "text/plain", []byte("x")) == a {
		t.Error("VersionID does not depend on the kind")
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(sampleHeader().Marshal())
	f.Add([]byte{1, 1, 1, 1, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		// What parses must re-encode to exactly the same bytes.
		if got := h.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("Marshal(ParseHeader(%x)) = %x", b, got)
		}
	})
}

// testCommitment was computed outside Go:
// python3 -c "import hashlib; print(hashlib.sha256(b'veritrace/payload/v1\x00'+b'\x01'*32+b'payload').hexdigest())"
const testCommitment = "0e2215e35821bfb1e68a7928d310ba0d2a5595d9369d78706b6f3bc04a5a2ca8"
