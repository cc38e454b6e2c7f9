package bundle

import (
	"bytes"
	stdflate "compress/flate"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	kflate "github.com/klauspost/compress/flate"
)

// inflateBoth inflates a deflate stream with the standard library's and
// klauspost/compress's inflaters, which must agree.
func inflateBoth(t testing.TB, z []byte) []byte {
	t.Helper()
	a, err := io.ReadAll(stdflate.NewReader(bytes.NewReader(z)))
	if err != nil {
		t.Fatalf("compress/flate: %v", err)
	}
	b, err := io.ReadAll(kflate.NewReader(bytes.NewReader(z)))
	if err != nil {
		t.Fatalf("klauspost/compress/flate: %v", err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("the inflaters disagree")
	}
	return a
}

func TestEntryCodeRoundTrips(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	every := make([]byte, 0, 512)
	for c := range 256 {
		every = append(every, byte(c), byte(255-c))
	}
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	entry := appendEntryJSON(nil, &Entry{Index: 42, Header: bytes.Repeat([]byte{1, 2, 3, 250}, 60), Payload: []byte("a payload of some text"),
		Salt: make([]byte, 32), InclusionProof: make([]Hex, 14), Decoded: []byte(`{"name":"step 2","model":{"provider":"openai"}}`)})
	for name, b := range map[string][]byte{
		"empty": {}, "one byte": {'a'}, "every byte": every, "random": random, "an entry file": entry,
		"text":           []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 500)),
		"one byte value": bytes.Repeat([]byte{0xff}, 10000),
	} {
		t.Run(name, func(t *testing.T) {
			z := entryCode.encode(nil, b)
			if got := len(z) * 8; got < entryCode.bits(b) || got >= entryCode.bits(b)+8 {
				t.Errorf("encode wrote %d bits, bits() says %d", got, entryCode.bits(b))
			}
			if got := inflateBoth(t, z); !bytes.Equal(got, b) {
				t.Fatalf("inflated %d bytes, want the %d encoded", len(got), len(b))
			}
			// Every byte costs at least a bit: the verifier's expansion bound.
			if len(b) > MaxExpansion*len(z)+expansionSlack {
				t.Errorf("%d bytes coded in %d: more than an entry file may expand", len(b), len(z))
			}
		})
	}
}

// TestUnusualEntryFilesGetTheirOwnCode: a file the shared code would
// compress badly (decoded text in a script the code is not built for) gets
// a code of its own; both kinds inflate to the file.
func TestUnusualEntryFilesGetTheirOwnCode(t *testing.T) {
	usual := appendEntryJSON(nil, &Entry{Index: 42, Header: bytes.Repeat([]byte{1, 0, 0, 0}, 60), Payload: []byte("a payload of some text"),
		Salt: bytes.Repeat([]byte{7}, 32), InclusionProof: make([]Hex, 14), Decoded: []byte(`{"name":"step 2","model":{"provider":"openai"}}`)})
	unusual := appendEntryJSON(nil, &Entry{Index: 42, Header: bytes.Repeat([]byte{1, 0, 0, 0}, 60),
		Decoded: []byte(`{"name":"` + strings.Repeat("証拠の検証", 2000) + `"}`)})
	for name, c := range map[string]struct {
		file   []byte
		shared bool
	}{"usual": {usual, true}, "unusual": {unusual, false}} {
		z, err := compressEntryFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		if got := inflateBoth(t, z); !bytes.Equal(got, c.file) {
			t.Errorf("%s: does not inflate to the file", name)
		}
		if shared := bytes.HasPrefix(z, entryCode.header); shared != c.shared {
			t.Errorf("%s: coded with the shared code = %v, want %v", name, shared, c.shared)
		}
		t.Logf("%s: %d bytes coded in %d", name, len(c.file), len(z))
	}
}

func FuzzEntryCode(f *testing.F) {
	f.Add([]byte(`{"index":1,"header":"AQEB","leaf_hash":"00ff"}`))
	f.Add([]byte{0, 1, 2, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		if got := inflateBoth(t, entryCode.encode(nil, b)); !bytes.Equal(got, b) {
			t.Fatalf("round trip changed %q to %q", b, got)
		}
	})
}
