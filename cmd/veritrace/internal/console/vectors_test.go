package console

// Golden vectors for the console's verification code (web/src/verify),
// produced by the Go implementation that the server and the offline
// verifier use:
//
//   - web/testdata/vectors.json: Merkle trees and proofs (tlog), signed
//     notes and checkpoints (sumdb/note, a key from a fixed seed), headers,
//     commitments and version ids (ledger/format). Deterministic: this test
//     regenerates it and fails if the committed file differs.
//   - web/testdata/bundles/*.zip and bundles.json: evidence bundles exported
//     by a real server, valid and tampered, with the verdict of the Go
//     verifier (audit/bundle) on each. Made once with -update (they hold
//     random keys and times); this test re-verifies the committed bundles
//     with the Go verifier and fails if a verdict changed.
//
// Regenerate both with: go test ./cmd/veritrace/internal/console -run Vectors -update

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	ologs "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	oresource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	otrace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit/bundle"
	"github.com/veritrace/veritrace/audit/bundle/bundletest"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/rpc"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
)

var update = flag.Bool("update", false, "rewrite the golden vectors and bundles under web/testdata")

const (
	vectorsFile = "web/testdata/vectors.json"
	bundlesDir  = "web/testdata/bundles"
	bundlesFile = "web/testdata/bundles.json"
)

func hexes[T ~[32]byte](hs []T) []string {
	out := make([]string, len(hs))
	for i := range hs {
		out[i] = hex.EncodeToString(hs[i][:])
	}
	return out
}

// memHashes is an in-memory tlog.HashReader over stored hashes.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m[x]
	}
	return out, nil
}

type merkleVectors struct {
	LeafData    []string             `json:"leaf_data"`
	Leaves      []string             `json:"leaves"`
	Roots       []string             `json:"roots"` // roots[n] is the root of the first n leaves
	Inclusion   []inclusionVector    `json:"inclusion"`
	Consistency []consistencyVectors `json:"consistency"`
}

type inclusionVector struct {
	Index int64    `json:"index"`
	Size  int64    `json:"size"`
	Proof []string `json:"proof"`
}

type consistencyVectors struct {
	Old   int64    `json:"old"`
	New   int64    `json:"new"`
	Proof []string `json:"proof"`
}

func makeMerkle(t *testing.T) merkleVectors {
	const n = 21
	var m merkleVectors
	var stored memHashes
	for i := range int64(n) {
		data := []byte(fmt.Sprintf("leaf %d", i))
		leaf := tlog.RecordHash(data)
		m.LeafData = append(m.LeafData, hex.EncodeToString(data))
		m.Leaves = append(m.Leaves, hex.EncodeToString(leaf[:]))
		hs, err := tlog.StoredHashes(i, data, stored)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	for size := range int64(n + 1) {
		root, err := tlog.TreeHash(size, stored)
		if err != nil {
			t.Fatal(err)
		}
		m.Roots = append(m.Roots, hex.EncodeToString(root[:]))
		for idx := range size {
			p, err := tlog.ProveRecord(size, idx, stored)
			if err != nil {
				t.Fatal(err)
			}
			m.Inclusion = append(m.Inclusion, inclusionVector{idx, size, hexes(p)})
		}
		for old := int64(1); old < size; old++ {
			p, err := tlog.ProveTree(size, old, stored)
			if err != nil {
				t.Fatal(err)
			}
			m.Consistency = append(m.Consistency, consistencyVectors{old, size, hexes(p)})
		}
	}
	return m
}

type noteVectors struct {
	Key      string       `json:"key"`       // the verifier key the notes are checked with
	OtherKey string       `json:"other_key"` // a key with another name
	BadKeys  []string     `json:"bad_keys"`  // verifier keys that must be refused
	Valid    []noteVector `json:"valid"`
	Invalid  []noteVector `json:"invalid"`
}

type noteVector struct {
	Msg  string `json:"msg"`
	Text string `json:"text,omitempty"` // the signed body of a valid note
	Why  string `json:"why,omitempty"`
}

// fixedSigner returns a note signer and verifier key from a fixed seed.
func fixedSigner(t *testing.T, name, seed string) (note.Signer, string) {
	s := sha256.Sum256([]byte(seed))
	priv := ed25519.NewKeyFromSeed(s[:])
	vkey, err := note.NewEd25519VerifierKey(name, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	hash := strings.Split(vkey, "+")[1]
	skey := "PRIVATE+KEY+" + name + "+" + hash + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, s[:]...))
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return signer, vkey
}

func sign(t *testing.T, text string, signers ...note.Signer) string {
	b, err := note.Sign(&note.Note{Text: text}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type checkpointVector struct {
	Note   string `json:"note"`
	Origin string `json:"origin"`
	Size   string `json:"size"`
	Root   string `json:"root"`
}

func makeNotes(t *testing.T, m merkleVectors) (noteVectors, []checkpointVector, []noteVector) {
	signer, vkey := fixedSigner(t, "veritrace-c0ffee00", "console vectors: log key")
	other, otherKey := fixedSigner(t, "someone-else", "console vectors: other key")
	sameName, _ := fixedSigner(t, "veritrace-c0ffee00", "console vectors: same name, other key")
	nv := noteVectors{Key: vkey, OtherKey: otherKey}
	parts := strings.Split(vkey, "+")
	keyBytes, _ := base64.StdEncoding.DecodeString(parts[2])
	nv.BadKeys = []string{
		parts[0] + "+" + parts[1],                      // two fields
		parts[0] + "+00000000+" + parts[2],             // wrong hash
		"bad name+" + parts[1] + "+" + parts[2],        // space in name
		parts[0] + "+" + parts[1] + "+" + "AAAA",       // short key
		parts[0] + "+" + parts[1][:7] + "+" + parts[2], // short hash
		parts[0] + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString(append([]byte{2}, keyBytes[1:]...)), // other algorithm
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range nv.BadKeys {
		if _, err := note.NewVerifier(bad); err == nil {
			t.Fatalf("note.NewVerifier(%q) accepted a bad key", bad)
		}
	}
	text := "veritrace evidence bundle v1\nveritrace-c0ffee00/default\n" + strings.Repeat("ab", 32) + "\n"
	nv.Valid = []noteVector{
		{Msg: sign(t, text, signer), Text: text},
		{Msg: sign(t, text, other, signer), Text: text}, // another key's signature first
		{Msg: sign(t, "a note\nwith unicode: é 🔏\n", signer), Text: "a note\nwith unicode: é 🔏\n"},
	}
	good := nv.Valid[0].Msg
	flipSig := func(msg string) string {
		i := strings.LastIndex(msg, " ")
		sig, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(msg[i+1:]))
		sig[10] ^= 1
		return msg[:i+1] + base64.StdEncoding.EncodeToString(sig) + "\n"
	}
	nv.Invalid = []noteVector{
		{Msg: strings.Replace(good, "default", "defaulT", 1), Why: "body changed"},
		{Msg: flipSig(good), Why: "signature changed"},
		{Msg: sign(t, text, other), Why: "signed by another key only"},
		{Msg: sign(t, text, sameName), Why: "signed by another key of the same name"},
		{Msg: strings.Replace(good, "\n\n", "\n", 1), Why: "no blank line"},
		{Msg: strings.TrimSuffix(good, "\n"), Why: "no final newline"},
		{Msg: strings.Replace(good, "— ", "- ", 1), Why: "no em dash"},
		{Msg: strings.Replace(good, "veritrace evidence", "veritrace\tevidence", 1), Why: "control character"},
		{Msg: "", Why: "empty"},
	}
	for _, v := range nv.Valid {
		if n, err := note.Open([]byte(v.Msg), note.VerifierList(verifier)); err != nil || n.Text != v.Text {
			t.Fatalf("valid note does not open: %v", err)
		}
	}
	for _, v := range nv.Invalid {
		if _, err := note.Open([]byte(v.Msg), note.VerifierList(verifier)); err == nil {
			t.Fatalf("invalid note (%s) opens", v.Why)
		}
	}

	var cps []checkpointVector
	for _, size := range []int{0, 1, 7, 21} {
		root, _ := hex.DecodeString(m.Roots[size])
		body := format.CheckpointBody("veritrace-c0ffee00/default", uint64(size), tlog.Hash(root))
		cps = append(cps, checkpointVector{Note: sign(t, body, signer), Origin: "veritrace-c0ffee00/default", Size: strconv.Itoa(size), Root: m.Roots[size]})
	}
	root, _ := hex.DecodeString(m.Roots[7])
	b64 := base64.StdEncoding.EncodeToString(root)
	var badBodies []noteVector
	for why, body := range map[string]string{
		"extension line": "o\n7\n" + b64 + "\nextra\n",
		"leading zero":   "o\n07\n" + b64 + "\n",
		"negative size":  "o\n-7\n" + b64 + "\n",
		"short root":     "o\n7\n" + base64.StdEncoding.EncodeToString(root[:31]) + "\n",
		"empty origin":   "\n7\n" + b64 + "\n",
		"no newline":     "o\n7\n" + b64,
		"size overflow":  "o\n18446744073709551616\n" + b64 + "\n",
	} {
		if _, err := format.ParseCheckpointBody(body); err == nil {
			t.Fatalf("bad checkpoint body (%s) parses", why)
		}
		badBodies = append(badBodies, noteVector{Msg: body, Why: why})
	}
	slices.SortFunc(badBodies, func(a, b noteVector) int { return strings.Compare(a.Why, b.Why) })
	return nv, cps, badBodies
}

type headerVector struct {
	Bytes          string    `json:"bytes"`
	Kind           int       `json:"kind"`
	SubKind        int       `json:"sub_kind"`
	Tenant         string    `json:"tenant"`
	Index          string    `json:"index"`
	AppendedAt     string    `json:"appended_at_nanos"`
	TraceID        string    `json:"trace_id"`
	SpanID         string    `json:"span_id"`
	ParentSpanID   string    `json:"parent_span_id"`
	Refs           [3]string `json:"refs"`
	RetentionClass string    `json:"retention_class"`
	PrevLeafHash   string    `json:"prev_leaf_hash"`
	Commitment     string    `json:"commitment"`
	LeafHash       string    `json:"leaf_hash"`
}

type formatVectors struct {
	Headers     []headerVector `json:"headers"`
	BadHeaders  []noteVector   `json:"bad_headers"` // msg: hex bytes
	Commitments []struct {
		Salt, Payload, Commitment string
	} `json:"commitments"`
	VersionIDs []versionIDVector `json:"version_ids"`
}

type versionIDVector struct {
	Kind      int    `json:"kind"`
	Name      string `json:"name"`
	Label     string `json:"label"`
	MediaType string `json:"media_type"`
	Content   string `json:"content"` // hex
	ID        string `json:"id"`
}

func headerVec(h *format.Header) headerVector {
	b := h.Marshal()
	leaf := format.LeafHash(b)
	return headerVector{
		Bytes: hex.EncodeToString(b), Kind: int(h.Kind), SubKind: int(h.SubKind), Tenant: h.Tenant,
		Index: strconv.FormatUint(h.Index, 10), AppendedAt: strconv.FormatInt(h.AppendedAt.UnixNano(), 10),
		TraceID: hex.EncodeToString(h.TraceID[:]), SpanID: hex.EncodeToString(h.SpanID[:]), ParentSpanID: hex.EncodeToString(h.ParentSpanID[:]),
		Refs:           [3]string{hex.EncodeToString(h.Refs[0][:]), hex.EncodeToString(h.Refs[1][:]), hex.EncodeToString(h.Refs[2][:])},
		RetentionClass: h.RetentionClass, PrevLeafHash: hex.EncodeToString(h.PrevLeafHash[:]), Commitment: hex.EncodeToString(h.Commitment[:]),
		LeafHash: hex.EncodeToString(leaf[:]),
	}
}

func makeFormat(t *testing.T) formatVectors {
	var fv formatVectors
	golden, err := os.ReadFile("../../../../ledger/format/testdata/header-v1.hex")
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := hex.DecodeString(strings.TrimSpace(string(golden)))
	gh, err := format.ParseHeader(gb)
	if err != nil {
		t.Fatal(err)
	}
	fv.Headers = append(fv.Headers, headerVec(gh))
	at := time.Date(2026, 11, 21, 9, 30, 0, 1, time.UTC)
	for _, h := range []format.Header{
		{Kind: format.KindVersion, SubKind: 3, Tenant: "acme.eu-1", Index: 0, AppendedAt: at, RetentionClass: "versions", Refs: format.Refs{{}, {}, {9, 9}}},
		{Kind: format.KindAccess, SubKind: 2, Tenant: "system", Index: 1<<53 + 1, AppendedAt: at, RetentionClass: "access"},
		{Kind: format.KindTombstone, SubKind: 1, Tenant: "t", Index: 7, AppendedAt: time.Unix(0, 0).UTC(), RetentionClass: "records", PrevLeafHash: tlog.Hash{1}},
		{Kind: format.KindHold, SubKind: 2, Tenant: strings.Repeat("a", 63), Index: 1<<64 - 1, AppendedAt: at, RetentionClass: strings.Repeat("r", 32)},
		{Kind: format.KindSpan, SubKind: 8, Tenant: "0", Index: 3, AppendedAt: at, TraceID: [16]byte{255}, SpanID: [8]byte{1}, ParentSpanID: [8]byte{2}, RetentionClass: "default", Commitment: tlog.Hash{3}},
	} {
		if _, err := format.ParseHeader(h.Marshal()); err != nil {
			t.Fatalf("header vector does not parse: %v", err)
		}
		fv.Headers = append(fv.Headers, headerVec(&h))
	}
	mut := func(why string, f func(b []byte) []byte) {
		b := f(bytes.Clone(gb))
		if _, err := format.ParseHeader(b); err == nil {
			t.Fatalf("bad header (%s) parses", why)
		}
		fv.BadHeaders = append(fv.BadHeaders, noteVector{Msg: hex.EncodeToString(b), Why: why})
	}
	mut("empty", func([]byte) []byte { return nil })
	mut("truncated", func(b []byte) []byte { return b[:len(b)-1] })
	mut("trailing byte", func(b []byte) []byte { return append(b, 0) })
	mut("format version 2", func(b []byte) []byte { b[0] = 2; return b })
	mut("entry kind 7", func(b []byte) []byte { b[1] = 7; return b })
	mut("entry kind 0", func(b []byte) []byte { b[1] = 0; return b })
	mut("span kind 9", func(b []byte) []byte { b[2] = 9; return b })
	mut("upper-case tenant", func(b []byte) []byte { b[4] = 'D'; return b })
	mut("tenant starting with a dot", func(b []byte) []byte { b[4] = '.'; return b })
	mut("tenant length past the end", func(b []byte) []byte { b[3] = 200; return b })
	mut("retention class length off by one", func(b []byte) []byte { b[4+7+8+8+16+8+8+96]++; return b })
	mut("empty retention class", func(b []byte) []byte {
		off := 4 + 7 + 8 + 8 + 16 + 8 + 8 + 96
		return append(append(b[:off:off], 0), b[off+1+7:]...)
	})
	for i, c := range []struct{ salt, payload string }{{strings.Repeat("\x01", 32), ""}, {strings.Repeat("s", 32), "payload bytes"}, {"", "no salt"}} {
		sum := format.Commitment([]byte(c.salt), []byte(c.payload))
		fv.Commitments = append(fv.Commitments, struct{ Salt, Payload, Commitment string }{hex.EncodeToString([]byte(c.salt)), hex.EncodeToString([]byte(c.payload)), hex.EncodeToString(sum[:])})
		_ = i
	}
	for _, v := range []versionIDVector{
		{Kind: 1, Name: "support-answer", Label: "v1", MediaType: "text/plain", Content: hex.EncodeToString([]byte("You are a helpful support agent.\n"))},
		{Kind: 2, Name: "refunds", Label: "2026-11", MediaType: "", Content: ""},
		{Kind: 3, Name: "rag pipeline é", Label: "sha-1a2b", MediaType: "application/json", Content: hex.EncodeToString([]byte(`{"k":4}`))},
	} {
		c, _ := hex.DecodeString(v.Content)
		id := format.VersionID(format.VersionKind(v.Kind), v.Name, v.Label, v.MediaType, c)
		v.ID = hex.EncodeToString(id[:])
		fv.VersionIDs = append(fv.VersionIDs, v)
	}
	return fv
}

// strictVector is a text and what the Go verifier makes of it: an entry
// file it accepts or refuses, or a time and its nanoseconds ("" when
// refused).
type strictVector struct {
	Text  string `json:"text"`
	OK    bool   `json:"ok"`
	Nanos string `json:"nanos,omitempty"`
}

// makeStrict gives the Go verifier's reading of entry files and times at
// the edges of the strict JSON rules (docs/BUNDLE.md), which the browser
// verifier must read alike.
func makeStrict(t *testing.T) (entries, times []strictVector) {
	leaf := `"leaf_hash":"` + strings.Repeat("ab", 32) + `"`
	entry := func(members string) string {
		return `{"index":1,"header":"AQ==",` + leaf + `,"inclusion_proof":[]` + members + `}`
	}
	for _, text := range []string{
		entry(""), entry(`,"erased":true`), entry(`,"erased":false`), entry(`,"undecodable":null`), entry(`,"index":1`),
		strings.Replace(entry(""), `"index"`, `"INDEX"`, 1), strings.Replace(entry(""), `"index":1`, `"index":null`, 1),
		strings.Replace(entry(""), `"index":1`, `"index":9007199254740991`, 1), strings.Replace(entry(""), `"index":1`, `"index":9007199254740992`, 1),
		strings.Replace(entry(""), `"index":1`, `"index":1.0`, 1), strings.Replace(entry(""), `"index":1`, `"index":1e0`, 1),
		strings.Replace(entry(""), `"index":1`, `"index":-0`, 1), strings.Replace(entry(""), `"index":1`, `"index":01`, 1),
		strings.Replace(entry(""), `"header":"AQ=="`, `"header":"AR=="`, 1), strings.Replace(entry(""), `"header":"AQ=="`, `"header":"AQ\n=="`, 1),
		strings.Replace(entry(""), `"header":"AQ=="`, `"h\u0065ader":"AQ=="`, 1),
		entry(`,"undecodable":"\ud800x"`), entry(`,"undecodable":"\udc00\ud800"`), entry(`,"undecodable":"\ud83d\ude00"`),
		entry(`,"decoded":{"a":{"b":1,"b":2}}`), entry(`,"decoded":null`), entry(`,"decoded":[1,{"x":"ſ"}]`),
		entry("") + " \n", entry("") + "x", `{"index":1,"header":"AQ==",` + leaf + `}`,
		strings.Replace(entry(""), `"inclusion_proof":[]`, `"inclusion_proof":null`, 1),
		strings.Replace(entry(""), `"inclusion_proof":[]`, `"inclusion_proof":["`+strings.Repeat("AB", 32)+`"]`, 1),
	} {
		_, err := bundle.ParseEntry([]byte(text))
		entries = append(entries, strictVector{Text: text, OK: err == nil})
	}
	for _, text := range []string{
		"2026-11-21T09:00:05Z", "2026-11-21T09:00:05.000000001Z", "2026-11-21T09:00:05.5+01:30", "2026-11-21T00:00:00-23:59",
		"2024-02-29T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "1969-12-31T23:59:59.1Z",
		"2025-02-29T00:00:00Z", "2026-11-21T24:00:00Z", "2026-11-21T23:59:60Z", "2026-11-21t09:00:05Z", "2026-11-21T09:00:05z",
		"2026-11-21 09:00:05Z", "2026-11-21T09:00:05", "2026-11-21T09:00:05.Z", "2026-11-21T09:00:05.1234567890Z",
		"2026-11-21T09:00:05+0100", "2026-11-21T09:00:05+24:00", "2026-1-21T09:00:05Z", "+2026-11-21T09:00:05Z",
	} {
		v := strictVector{Text: text}
		if tm, err := bundle.ParseTime(text); err == nil {
			v.OK = true
			// Nanoseconds since the epoch, exactly (UnixNano overflows
			// beyond 2262): seconds and nanoseconds in big arithmetic.
			n := new(big.Int).Mul(big.NewInt(tm.Unix()), big.NewInt(1e9))
			v.Nanos = n.Add(n, big.NewInt(int64(tm.Nanosecond()))).String()
		}
		times = append(times, v)
	}
	return entries, times
}

// vectors is the content of vectors.json.
type vectors struct {
	Comment        string        `json:"comment"`
	Merkle         merkleVectors `json:"merkle"`
	Notes          noteVectors   `json:"notes"`
	Checkpoints    []checkpointVector
	BadCheckpoints []noteVector    `json:"bad_checkpoint_bodies"`
	Format         formatVectors   `json:"format"`
	EntryFiles     []strictVector  `json:"entry_files"`
	Times          []strictVector  `json:"times"`
	Decoded        []decodedVector `json:"decoded"`
}

// decodedVector is a payload of any entry kind and the Go verifier's
// reading of it (audit/bundle.DecodePayload): its decoded form, the
// canonical proto JSON the console must write byte for byte, or why it
// has none.
type decodedVector struct {
	Kind        format.Kind `json:"kind"`
	Payload     []byte      `json:"payload"`
	Decoded     string      `json:"decoded,omitempty"`
	Undecodable string      `json:"undecodable,omitempty"`
}

// makeDecoded gives the decoded forms of payloads of every kind: the rich
// spans of the bundles, spans at the edges of proto JSON (map and Struct
// key order, -0, exponents, escapes, Timestamps), and random spans and
// versions and access records (bundletest.FillRandom), some of them not
// decodable, and JSON payloads.
func makeDecoded(t *testing.T) []decodedVector {
	var msgs []proto.Message
	for i, k := range []v1.SpanKind{v1.SpanKind_SPAN_KIND_AGENT, v1.SpanKind_SPAN_KIND_RETRIEVAL, v1.SpanKind_SPAN_KIND_GENERATION, v1.SpanKind_SPAN_KIND_TOOL, v1.SpanKind_SPAN_KIND_GUARDRAIL} {
		msgs = append(msgs, richSpan(1, byte(i+1), 1, k))
	}
	keys := []string{"10", "2", "b", "a", "", "é", "e\u0301", "😀", "\uffff", "\ue000", "<&>", "\u2028", "A", "1e3", "-1"}
	attrs := map[string]*structpb.Value{}
	fields := map[string]*structpb.Value{}
	for i, k := range keys {
		attrs[k] = structpb.NewNumberValue([]float64{0, math.Copysign(0, -1), 1e21, 1e-7, 1.5e-7, 123456789.125, 0.1, 5e-324, math.MaxFloat64, -2.5e-300, 1e20, 1e-6, 1.0 / 3, 9007199254740993, -1}[i])
		fields[k] = structpb.NewStringValue("\x00\x1f\x7f\b\f\n\r\t\"\\/<>&\u2028\u2029😀\ufffd" + k)
	}
	attrs["nested"] = structpb.NewStructValue(&structpb.Struct{Fields: fields})
	attrs["list"] = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNullValue(), structpb.NewBoolValue(false), structpb.NewNumberValue(math.Copysign(0, -1)), structpb.NewStructValue(&structpb.Struct{})}})
	for _, ns := range []int{0, 1, 1_000, 1_000_000, 120_000_000, 999_999_999} {
		msgs = append(msgs, &v1.Span{
			TraceId: bytes.Repeat([]byte{7}, 16), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Name: "edges", Kind: v1.SpanKind(99),
			StartTime: &timestamppb.Timestamp{Seconds: -62135596800, Nanos: int32(ns)}, EndTime: &timestamppb.Timestamp{Seconds: 253402300799, Nanos: int32(ns)},
			Usage:      &v1.Usage{InputTokens: math.MaxInt64, OutputTokens: math.MinInt64, Cost: math.Copysign(0, -1)},
			Model:      &v1.Model{Temperature: proto.Float64(0), TopP: proto.Float64(math.Copysign(0, -1)), MaxTokens: proto.Int64(0), Seed: proto.Int64(1<<53 + 1)},
			Attributes: attrs,
		})
	}
	msgs = append(msgs, &v1.Span{}, &v1.Version{}, &v1.Version{Kind: v1.VersionKind_VERSION_KIND_PIPELINE, Name: "rag", Label: "7", Content: []byte(`{"k":4}`), MediaType: "application/json", Index: math.MaxUint64})
	r := rand.New(rand.NewPCG(13, 2))
	for i := range 160 {
		var m proto.Message = &v1.Span{}
		if i%4 == 3 {
			m = &v1.Version{}
		}
		bundletest.FillRandom(r, m.ProtoReflect(), 0)
		msgs = append(msgs, m)
	}
	// Access records (docs/FORMAT.md §2.2: an access entry's payload is an
	// AccessRecord, not a Version), and random ones.
	at := &timestamppb.Timestamp{Seconds: 1767225600, Nanos: 5000}
	msgs = append(msgs, &v1.AccessRecord{}, &v1.AccessRecord{KeyId: "3f2a9c1d5e6b7a80", Role: v1.Role_ROLE_AUDITOR, Procedure: "/veritrace.v1.LedgerService/GetEntry",
		Tenant: "acme", Target: "entry 42", Outcome: v1.AccessOutcome_ACCESS_OUTCOME_DENIED, Code: "permission_denied", Reason: "<not this tenant's key>",
		Peer: "203.0.113.7", Time: at, Summary: &v1.RefusalSummary{Count: 1 << 60, FirstTime: at, LastTime: at, Procedures: []string{"/a", "/b"}, OtherProcedures: 3}})
	for range 40 {
		m := &v1.AccessRecord{}
		bundletest.FillRandom(r, m.ProtoReflect(), 0)
		msgs = append(msgs, m)
	}
	var out []decodedVector
	for _, m := range msgs {
		kind := format.KindSpan
		switch m.(type) {
		case *v1.Version:
			kind = format.KindVersion
		case *v1.AccessRecord:
			kind = format.KindAccess
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		v := decodedVector{Kind: kind, Payload: b}
		if d, err := bundle.DecodePayload(kind, b); err != nil {
			v.Undecodable = err.Error()
		} else {
			v.Decoded = string(d)
		}
		out = append(out, v)
	}
	// JSON payloads (tombstone, retention, hold): compacted, or not
	// decodable when not UTF-8 JSON.
	for _, c := range []struct {
		kind    format.Kind
		payload string
	}{
		{format.KindTombstone, `{"reason": "erasure",` + "\n\t" + `"erased": [ {"index": 3, "leaf_hash": "ab"} ], "why": "<a & b>"}`},
		{format.KindRetention, `{"default":{"days":30}}`},
		{format.KindHold, ` {"id":"h1","scope":{"tenant":true},"note":"\u00e9 é"} `},
		{format.KindHold, `{"id":`},
		{format.KindTombstone, "{\"reason\":\"\xff\"}"},
	} {
		v := decodedVector{Kind: c.kind, Payload: []byte(c.payload)}
		if d, err := bundle.DecodePayload(c.kind, v.Payload); err != nil {
			v.Undecodable = err.Error()
		} else {
			v.Decoded = string(d)
		}
		out = append(out, v)
	}
	return out
}

func makeVectors(t *testing.T) []byte {
	v := vectors{Comment: "Generated by go test ./cmd/veritrace/internal/console -run Vectors -update; do not edit."}
	v.Merkle = makeMerkle(t)
	v.Notes, v.Checkpoints, v.BadCheckpoints = makeNotes(t, v.Merkle)
	v.Format = makeFormat(t)
	v.EntryFiles, v.Times = makeStrict(t)
	v.Decoded = makeDecoded(t)
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// bundleCase is a bundle and the Go verifier's verdict on it.
type bundleCase struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Key    string `json:"key"`              // file of the verifier key to verify with
	Pinned string `json:"pinned,omitempty"` // file of the pinned checkpoint, if any
	OK     bool   `json:"ok"`
	// Summary is the report's first line (Report.Headline), which the
	// console's report must state too.
	Summary string `json:"summary"`
	// Verdict is the report's last line (Report.Write): VERIFIED, or NOT
	// VERIFIED and what failed and what was not checked (Report.Summary).
	Verdict string        `json:"verdict"`
	Checks  []bundleCheck `json:"checks"`
}

type bundleCheck struct {
	Name    string `json:"name"`
	Passed  int    `json:"passed"`
	Failed  int    `json:"failed"`
	Skipped bool   `json:"skipped"`
	// Notes are the facts the report states without failing the check,
	// word for word: the console must show the same.
	Notes []string `json:"notes,omitempty"`
}

// verdict runs the Go verifier on a committed case.
func verdict(t *testing.T, c bundleCase) bundleCase {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(bundlesDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(read(c.Key))))
	if err != nil {
		t.Fatal(err)
	}
	var pinned []byte
	if c.Pinned != "" {
		pinned = read(c.Pinned)
	}
	b := read(c.File)
	rep := bundle.Verify(bytes.NewReader(b), int64(len(b)), v, pinned)
	c.OK, c.Summary, c.Checks = rep.OK(), rep.Headline(), nil
	c.Verdict = "VERIFIED: every check passed"
	if !rep.OK() {
		c.Verdict = "NOT VERIFIED: " + rep.Summary()
	}
	for _, ch := range rep.Checks {
		failed := 0
		if !ch.OK() && ch.Skipped == "" {
			failed = max(len(ch.Failures), 1)
			var out strings.Builder
			rep.Write(&out)
			// The report prints "(N ok, M failed)": take M.
			for _, line := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(line, "FAIL  "+ch.Name+" (") {
					fmt.Sscanf(strings.TrimPrefix(line, "FAIL  "+ch.Name+" ("), "%d ok, %d failed", new(int), &failed)
				}
			}
		}
		c.Checks = append(c.Checks, bundleCheck{Name: ch.Name, Passed: ch.Passed, Failed: failed, Skipped: ch.Skipped != "", Notes: ch.Notes})
	}
	return c
}

func TestVectors(t *testing.T) {
	got := makeVectors(t)
	if *update {
		if err := os.MkdirAll(filepath.Dir(vectorsFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		makeBundles(t)
	}
	want, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go test ./cmd/veritrace/internal/console -run Vectors -update and commit the result", vectorsFile)
	}
	var cases []bundleCase
	b, err := os.ReadFile(bundlesFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("%s holds %d cases", bundlesFile, len(cases))
	}
	for _, c := range cases {
		if diff := cmp.Diff(c, verdict(t, c)); diff != "" {
			t.Errorf("bundle case %s: the Go verifier's verdict changed (-committed +now); rerun with -update:\n%s", c.Name, diff)
		}
	}
}

// zipMethods says how each file of a zip is compressed.
func zipMethods(t *testing.T, b []byte) map[string]uint16 {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]uint16{}
	for _, f := range zr.File {
		methods[f.Name] = f.Method
	}
	return methods
}

// rezip rewrites a bundle, editing or dropping (nil) files and adding some.
func rezip(t *testing.T, b []byte, edit func(name string, content []byte) []byte, add map[string][]byte) []byte {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	write := func(name string, content []byte) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(content)
	}
	for _, f := range zr.File {
		rc, _ := f.Open()
		content, _ := io.ReadAll(rc)
		rc.Close()
		if content = edit(f.Name, content); content != nil {
			write(f.Name, content)
		}
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range add {
			if !yield(k) {
				return
			}
		}
	}) {
		write(name, add[name])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// resign edits entry files of a bundle, then fixes the manifest's digests
// and signs it again with the log key: a bundle made by someone holding
// the key, whose content no longer matches the log.
func resign(t *testing.T, b []byte, signer note.Signer, edit func(name string, content []byte) []byte) []byte {
	return resignManifest(t, b, signer, edit, nil)
}

// resignManifest is resign that also changes the manifest (before its
// digests are fixed): a lie about what the bundle holds.
func resignManifest(t *testing.T, b []byte, signer note.Signer, edit func(name string, content []byte) []byte, change func(m *bundle.Manifest)) []byte {
	if edit == nil {
		edit = func(_ string, c []byte) []byte { return c }
	}
	edited := rezip(t, b, edit, nil)
	zr, _ := zip.NewReader(bytes.NewReader(edited), int64(len(edited)))
	sums := map[string]string{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		c, _ := io.ReadAll(rc)
		rc.Close()
		s := sha256.Sum256(c)
		sums[f.Name] = hex.EncodeToString(s[:])
	}
	var manifest []byte
	edited = rezip(t, edited, func(name string, c []byte) []byte {
		if name != bundle.ManifestFile {
			return c
		}
		var m bundle.Manifest
		if err := json.Unmarshal(c, &m); err != nil {
			t.Fatal(err)
		}
		var files []bundle.FileDigest
		for _, fd := range m.Files {
			if sums[fd.Name] != "" {
				files = append(files, bundle.FileDigest{Name: fd.Name, SHA256: sums[fd.Name]})
			}
		}
		m.Files = files
		if change != nil {
			change(&m)
		}
		manifest, _ = json.MarshalIndent(&m, "", "  ")
		return manifest
	}, nil)
	digest := sha256.Sum256(manifest)
	var origin string
	var m bundle.Manifest
	json.Unmarshal(manifest, &m)
	origin = m.Origin
	return rezip(t, edited, func(name string, c []byte) []byte {
		if name == bundle.SignatureFile {
			return []byte(sign(t, format.BundleSignatureBody(origin, digest), signer))
		}
		return c
	}, nil)
}

// resignRaw replaces manifest.json's bytes and signs them again.
func resignRaw(t *testing.T, b []byte, signer note.Signer, edit func(manifest []byte) []byte) []byte {
	var manifest []byte
	out := rezip(t, b, func(name string, c []byte) []byte {
		if name == bundle.ManifestFile {
			manifest = edit(c)
			return manifest
		}
		return c
	}, nil)
	var m bundle.Manifest
	json.Unmarshal(manifest, &m)
	return rezip(t, out, func(name string, c []byte) []byte {
		if name == bundle.SignatureFile {
			return []byte(sign(t, format.BundleSignatureBody(m.Origin, sha256.Sum256(manifest)), signer))
		}
		return c
	}, nil)
}

func editEntry(t *testing.T, c []byte, change func(e *bundle.Entry)) []byte {
	var e bundle.Entry
	if err := json.Unmarshal(c, &e); err != nil {
		t.Fatal(err)
	}
	change(&e)
	out, _ := json.MarshalIndent(&e, "", "  ")
	return out
}

// richSpan is a span with every kind of content the decoded check must
// compare: enums, optional fields, maps of structured values, bytes, times.
func richSpan(trace byte, n byte, parent byte, kind v1.SpanKind) *v1.Span {
	start := time.Date(2026, 11, 21, 9, 0, 0, int(n)*1_000_000, time.UTC)
	sp := &v1.Span{
		TraceId: bytes.Repeat([]byte{trace}, 16), SpanId: []byte{0, 0, 0, 0, 0, 0, trace, n}, Name: fmt.Sprintf("step %d", n), Kind: kind,
		StartTime: timestamppb.New(start), EndTime: timestamppb.New(start.Add(time.Duration(n) * 150 * time.Millisecond)),
		Status: &v1.Status{Code: v1.StatusCode_STATUS_CODE_OK}, SessionId: "session-" + string('a'+rune(trace)), SubjectId: "customer-" + strconv.Itoa(int(trace)),
		Attributes: map[string]*structpb.Value{
			"gen_ai.agent.name": structpb.NewStringValue("support"),
			"retry":             structpb.NewNumberValue(float64(n % 2)),
			"tags":              structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("é"), structpb.NewBoolValue(true), structpb.NewNullValue()}}),
		},
	}
	if parent != 0 {
		sp.ParentSpanId = []byte{0, 0, 0, 0, 0, 0, trace, parent}
	}
	switch kind {
	case v1.SpanKind_SPAN_KIND_GENERATION:
		sp.Model = &v1.Model{Provider: "openai", RequestModel: "gpt-4o", ResponseModel: "gpt-4o-2024-08-06", Temperature: proto.Float64(0.2), MaxTokens: proto.Int64(512), Seed: proto.Int64(-7), StopSequences: []string{"\n\n"}, FinishReasons: []string{"stop"}}
		sp.Usage = &v1.Usage{InputTokens: 812, OutputTokens: 95, Cost: 0.0041, Currency: "USD"}
		sp.Content = &v1.Content{
			SystemInstructions: "Answer from the refund policy.",
			InputMessages:      []*v1.Message{{Role: "user", Parts: []*v1.MessagePart{{Part: &v1.MessagePart_Text{Text: "Can I get a refund?"}}, {Part: &v1.MessagePart_Blob{Blob: &v1.Blob{MimeType: "image/png", Data: []byte{0x89, 'P', 'N', 'G'}}}}}}},
			OutputMessages:     []*v1.Message{{Role: "assistant", FinishReason: "stop", Parts: []*v1.MessagePart{{Part: &v1.MessagePart_ToolCall{ToolCall: &v1.ToolCallRequest{Id: "c1", Name: "lookup_order", Arguments: `{"order":"A-1"}`}}}}}},
		}
	case v1.SpanKind_SPAN_KIND_RETRIEVAL:
		sp.Content = &v1.Content{Retrieval: &v1.Retrieval{DataSource: "kb", Query: "refund policy", Documents: []*v1.Document{{Id: "refunds.md#2", SourceUri: "s3://kb/refunds.md", Version: "7", ContentDigest: "sha256:" + strings.Repeat("0f", 32), Score: 0.87, Text: "Refunds within 30 days."}}}}
	case v1.SpanKind_SPAN_KIND_GUARDRAIL:
		sp.Content = &v1.Content{Guardrail: &v1.Guardrail{Name: "pii", Outcome: v1.GuardrailOutcome_GUARDRAIL_OUTCOME_MODIFIED, Detail: "email masked"}}
	case v1.SpanKind_SPAN_KIND_TOOL:
		sp.Content = &v1.Content{ToolCall: &v1.ToolCall{Name: "lookup_order", CallId: "c1", Type: "function", Arguments: `{"order":"A-1"}`, Result: `{"status":"shipped"}`}}
		sp.Status = &v1.Status{Code: v1.StatusCode_STATUS_CODE_ERROR, Message: "timeout after 3s"}
	}
	return sp
}

// makeBundles exports bundles from a real server and writes them, their
// tampered variants and the Go verifier's verdicts under web/testdata.
func makeBundles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, _, err := ledger.LoadOrCreateKeys(ledger.KeyPaths{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(ctx, ledger.Options{Dir: dir, Keys: keys, Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rpc.NewHandler(l, rpc.Options{Logger: slog.New(slog.DiscardHandler)})}
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)
	url := "http://" + ln.Addr().String()
	client := func(role policy.Role) (veritracev1connect.IngestServiceClient, veritracev1connect.LedgerServiceClient, veritracev1connect.AuditServiceClient, veritracev1connect.RetentionServiceClient) {
		token, rec := rpc.NewKey(role, []string{"default"}, "vectors", time.Time{}, "", time.Now())
		if err := l.PutAPIKey(ctx, rec); err != nil {
			t.Fatal(err)
		}
		o := connect.WithInterceptors(rpc.ClientHeaders("default", token))
		return veritracev1connect.NewIngestServiceClient(http.DefaultClient, url, o), veritracev1connect.NewLedgerServiceClient(http.DefaultClient, url, o),
			veritracev1connect.NewAuditServiceClient(http.DefaultClient, url, o), veritracev1connect.NewRetentionServiceClient(http.DefaultClient, url, o)
	}
	ing, _, _, _ := client(policy.Ingester)
	_, led, aud, ret := client(policy.ComplianceOfficer)
	var refs v1.VersionRefs
	for _, v := range []*v1.RegisterVersionRequest{
		{Kind: v1.VersionKind_VERSION_KIND_PROMPT, Name: "support-answer", Label: "v3", Content: []byte("You are a support agent. Cite the policy."), MediaType: "text/plain"},
		{Kind: v1.VersionKind_VERSION_KIND_POLICY, Name: "refunds", Label: "2026-11", Content: []byte("Refunds within 30 days."), MediaType: "text/markdown"},
		{Kind: v1.VersionKind_VERSION_KIND_PIPELINE, Name: "rag", Label: "7", Content: []byte(`{"retriever":"kb","k":4}`), MediaType: "application/json"},
	} {
		r, err := ing.RegisterVersion(ctx, connect.NewRequest(v))
		if err != nil {
			t.Fatal(err)
		}
		switch v.Kind {
		case v1.VersionKind_VERSION_KIND_PROMPT:
			refs.Prompt = r.Msg.GetId()
		case v1.VersionKind_VERSION_KIND_POLICY:
			refs.Policy = r.Msg.GetId()
		default:
			refs.Pipeline = r.Msg.GetId()
		}
	}
	appendTrace := func(trace byte) {
		spans := []*v1.Span{
			richSpan(trace, 1, 0, v1.SpanKind_SPAN_KIND_AGENT), richSpan(trace, 2, 1, v1.SpanKind_SPAN_KIND_RETRIEVAL),
			richSpan(trace, 3, 1, v1.SpanKind_SPAN_KIND_GENERATION), richSpan(trace, 4, 1, v1.SpanKind_SPAN_KIND_TOOL),
			richSpan(trace, 5, 1, v1.SpanKind_SPAN_KIND_GUARDRAIL),
		}
		spans[2].Versions = proto.Clone(&refs).(*v1.VersionRefs)
		if trace == 1 { // for the decoded-form cases: an int64 past 2^53, and text that HTML escaping changes
			spans[2].Usage.InputTokens = 1<<53 + 1
			spans[2].Content.SystemInstructions = "Answer from the <refund policy> & cite it."
		}
		if _, err := ing.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: spans})); err != nil {
			t.Fatal(err)
		}
	}
	appendTrace(1)
	pinned, err := led.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{Fresh: true}))
	if err != nil {
		t.Fatal(err)
	}
	mid := time.Now() // traces 2 and 3 are appended after it
	appendTrace(2)
	appendTrace(3)
	exportQuery := func(q *v1.TraceQuery, known uint64) []byte {
		st, err := aud.ExportBundle(ctx, connect.NewRequest(&v1.ExportBundleRequest{Selector: q, KnownTreeSize: known}))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		for st.Receive() {
			buf.Write(st.Msg().GetChunk())
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	// The time range holds traces 2 and 3 (format 3, range.bin).
	timeRange := exportQuery(&v1.TraceQuery{From: timestamppb.New(mid)}, 0)
	// Trace 4 arrives over OpenTelemetry: two spans and an event, under
	// one resource and scope, so that the bundle holds a resource entry.
	otlpToken, otlpKey := rpc.NewKey(policy.Ingester, []string{"default"}, "vectors otlp", time.Time{}, "", time.Now())
	if err := l.PutAPIKey(ctx, otlpKey); err != nil {
		t.Fatal(err)
	}
	postOTLP(t, url+otlp.TracesPath, otlpToken, otlpVectorTraces())
	postOTLP(t, url+otlp.LogsPath, otlpToken, otlpVectorLogs())
	export := func(trace byte, known uint64) []byte {
		return exportQuery(&v1.TraceQuery{TraceId: bytes.Repeat([]byte{trace}, 16)}, known)
	}
	valid := export(1, pinned.Msg.GetCheckpoint().GetSize())
	otlpValid := export(4, 0)
	if _, err := ret.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: "dsr-1", TraceIds: [][]byte{bytes.Repeat([]byte{3}, 16)}, LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})); err != nil {
		t.Fatal(err)
	}
	erased := export(3, pinned.Msg.GetCheckpoint().GetSize())
	newer, err := led.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{Fresh: true}))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(keys.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey := fixedSigner(t, strings.Split(l.VerifierKey(), "+")[0], "console vectors: an impostor with the log's key name")

	os.RemoveAll(bundlesDir)
	if err := os.MkdirAll(bundlesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"log.pub": []byte(l.VerifierKey() + "\n"), "impostor.pub": []byte(otherKey + "\n"),
		"pinned.txt": []byte(pinned.Msg.GetCheckpoint().GetNote()), "newer.txt": []byte(newer.Msg.GetCheckpoint().GetNote()),
		"valid.zip": valid, "erased.zip": erased, "not-a-zip.zip": []byte("PK\x03\x04 this is not a zip file"),
		"otlp.zip": otlpValid,
	}
	// The OTLP bundle without its resource entry, manifest and signature
	// made anew: only the check of OTLP sources can tell.
	files["otlp-resource-missing-resigned.zip"] = dropEntry(t, otlpValid, signer, func(c []byte) bool {
		return bytes.Contains(c, []byte(`"resourceScope"`))
	})
	firstSpan := bundle.EntryFile(3) // the agent span of trace 1 (entries 0-2 are versions)
	files["decoded-changed.zip"] = rezip(t, valid, func(name string, c []byte) []byte {
		if name == firstSpan {
			return bytes.Replace(c, []byte(`"step 1"`), []byte(`"step X"`), 1)
		}
		return c
	}, nil)
	// The manifest edited and not signed anew: nothing can be trusted.
	files["manifest-changed.zip"] = rezip(t, valid, func(name string, c []byte) []byte {
		if name == bundle.ManifestFile {
			return bytes.Replace(c, []byte(`"created_at": "2`), []byte(`"created_at": "1`), 1)
		}
		return c
	}, nil)
	// Decoded forms that read as the payload in protojson but are not its
	// canonical text (attack13 D2, D3), and the ones that are.
	genSpan := bundle.EntryFile(5) // the generation span of trace 1
	editDecoded := func(change func(d []byte) []byte) func(string, []byte) []byte {
		return func(name string, c []byte) []byte {
			if name != genSpan {
				return c
			}
			var e struct {
				Decoded json.RawMessage `json:"decoded"`
			}
			if err := json.Unmarshal(c, &e); err != nil {
				t.Fatal(err)
			}
			d := change(slices.Clone(e.Decoded))
			if bytes.Equal(d, e.Decoded) {
				t.Fatalf("the edit leaves the decoded form of %s as it is", name)
			}
			return bytes.Replace(c, e.Decoded, d, 1)
		}
	}
	replace := func(old, new string) func(d []byte) []byte {
		return func(d []byte) []byte { return bytes.Replace(d, []byte(old), []byte(new), 1) }
	}
	htmlEscaped := func(d []byte) []byte {
		var b bytes.Buffer
		json.HTMLEscape(&b, d)
		return b.Bytes()
	}
	files["decoded-int64-lossy-number-resigned.zip"] = resign(t, valid, signer, editDecoded(replace(`"inputTokens":"9007199254740993"`, `"inputTokens":9007199254740993`)))
	files["decoded-int64-exponent-resigned.zip"] = resign(t, valid, signer, editDecoded(replace(`"outputTokens":"95"`, `"outputTokens":"9.5e1"`)))
	files["decoded-indented-resigned.zip"] = resign(t, valid, signer, editDecoded(func(d []byte) []byte {
		var b bytes.Buffer
		if err := json.Indent(&b, d, "", "\t"); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}))
	files["decoded-html-escaped-format-2-resigned.zip"] = resignManifest(t, valid, signer, editDecoded(htmlEscaped), func(m *bundle.Manifest) { m.Format = bundle.FormatV2 })
	files["decoded-html-escaped-resigned.zip"] = resign(t, valid, signer, editDecoded(htmlEscaped))
	// Exporters store entry files (zip method 0); the same bundle with
	// every member deflated, as older exporters and any zip tool write it,
	// verifies too.
	if methods := zipMethods(t, valid); methods[bundle.EntryFile(3)] != zip.Store {
		t.Fatalf("valid.zip: entry files are not stored: %v", methods)
	}
	files["valid-deflated.zip"] = rezip(t, valid, func(_ string, c []byte) []byte { return c }, nil)
	files["extra-file.zip"] = rezip(t, valid, func(_ string, c []byte) []byte { return c }, map[string][]byte{"entries/readme.txt": []byte("not evidence")})
	files["payload-changed-resigned.zip"] = resign(t, valid, signer, func(name string, c []byte) []byte {
		if name == firstSpan {
			return editEntry(t, c, func(e *bundle.Entry) { e.Payload[len(e.Payload)-1] ^= 1 })
		}
		return c
	})
	files["proof-changed-resigned.zip"] = resign(t, valid, signer, func(name string, c []byte) []byte {
		if name == firstSpan {
			return editEntry(t, c, func(e *bundle.Entry) { e.InclusionProof[0][0] ^= 1 })
		}
		return c
	})
	files["decoded-changed-resigned.zip"] = resign(t, valid, signer, func(name string, c []byte) []byte {
		if name == bundle.EntryFile(5) {
			return bytes.Replace(c, []byte(`"gpt-4o"`), []byte(`"gpt-5"`), 1)
		}
		return c
	})
	files["version-missing-resigned.zip"] = resign(t, valid, signer, func(name string, c []byte) []byte {
		if name == bundle.EntryFile(1) {
			return nil
		}
		return c
	})
	zr, _ := zip.NewReader(bytes.NewReader(erased), int64(len(erased)))
	var tombstone string
	for _, f := range zr.File {
		rc, _ := f.Open()
		c, _ := io.ReadAll(rc)
		rc.Close()
		if strings.Contains(string(c), `"reason": "erasure"`) || strings.Contains(string(c), `\"reason\":\"erasure\"`) || strings.Contains(string(c), `"reason":"erasure"`) {
			tombstone = f.Name
		}
	}
	if tombstone == "" {
		t.Fatal("the erased bundle holds no tombstone")
	}
	files["tombstone-missing-resigned.zip"] = resign(t, erased, signer, func(name string, c []byte) []byte {
		if name == tombstone {
			return nil
		}
		return c
	})
	// Format 3 and the checks of issue 9's review: the time range and
	// selector checks, the strict manifest, the bound on expansion.
	files["time-range.zip"] = timeRange
	trace3 := strings.Repeat("03", 16)
	files["time-range-trace-left-out-resigned.zip"] = resignManifest(t, timeRange, signer, func(name string, c []byte) []byte {
		if strings.HasPrefix(name, bundle.EntryDir) && bytes.Contains(c, []byte(`"traceId":"AwMDAwMDAwMDAwMDAwMDAw=="`)) {
			return nil
		}
		return c
	}, func(m *bundle.Manifest) {
		m.Traces = slices.DeleteFunc(m.Traces, func(s string) bool { return s == trace3 })
		var keep []bundle.EntryRef
		for _, e := range m.Entries {
			for _, fd := range m.Files {
				if fd.Name == e.File {
					keep = append(keep, e)
				}
			}
		}
		m.Entries = keep
	})
	files["time-range-as-format-2-resigned.zip"] = resignManifest(t, timeRange, signer, func(name string, c []byte) []byte {
		if name == bundle.RangeFile {
			return nil
		}
		return c
	}, func(m *bundle.Manifest) { m.Format, m.Range = bundle.FormatV2, nil })
	files["selector-relabeled-resigned.zip"] = resignManifest(t, valid, signer, nil, func(m *bundle.Manifest) {
		m.Selector = bundle.Selector{SubjectID: "customer-2"}
	})
	files["manifest-member-upper-case-resigned.zip"] = resignRaw(t, valid, signer, func(mb []byte) []byte {
		return bytes.Replace(mb, []byte(`"tree_size"`), []byte(`"TREE_SIZE"`), 1)
	})
	files["entry-file-padded-resigned.zip"] = resign(t, valid, signer, func(name string, c []byte) []byte {
		if name == firstSpan {
			return append(slices.Clip(c), bytes.Repeat([]byte(" "), 1<<20)...)
		}
		return c
	})
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(bundlesDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []bundleCase{
		{Name: "valid, pinned", File: "valid.zip", Key: "log.pub", Pinned: "pinned.txt"},
		{Name: "valid", File: "valid.zip", Key: "log.pub"},
		{Name: "valid, pinned checkpoint newer", File: "valid.zip", Key: "log.pub", Pinned: "newer.txt"},
		{Name: "valid, another key of the same name", File: "valid.zip", Key: "impostor.pub", Pinned: "pinned.txt"},
		{Name: "erased trace with its tombstone", File: "erased.zip", Key: "log.pub", Pinned: "pinned.txt"},
		{Name: "not a zip", File: "not-a-zip.zip", Key: "log.pub"},
		{Name: "decoded content changed", File: "decoded-changed.zip", Key: "log.pub"},
		{Name: "extra file", File: "extra-file.zip", Key: "log.pub"},
		{Name: "manifest changed, not re-signed", File: "manifest-changed.zip", Key: "log.pub"},
		{Name: "payload changed, re-signed", File: "payload-changed-resigned.zip", Key: "log.pub"},
		{Name: "proof changed, re-signed", File: "proof-changed-resigned.zip", Key: "log.pub", Pinned: "pinned.txt"},
		{Name: "decoded content changed, re-signed", File: "decoded-changed-resigned.zip", Key: "log.pub"},
		{Name: "decoded int64 as a JSON number past 2^53 (reads as another value), re-signed", File: "decoded-int64-lossy-number-resigned.zip", Key: "log.pub"},
		{Name: "decoded int64 with an exponent, re-signed", File: "decoded-int64-exponent-resigned.zip", Key: "log.pub"},
		{Name: "decoded form indented, re-signed (verifies)", File: "decoded-indented-resigned.zip", Key: "log.pub"},
		{Name: "decoded form HTML-escaped in format 2, as encoding/json wrote it, re-signed (verifies)", File: "decoded-html-escaped-format-2-resigned.zip", Key: "log.pub"},
		{Name: "decoded form HTML-escaped in format 3, re-signed", File: "decoded-html-escaped-resigned.zip", Key: "log.pub"},
		{Name: "version missing, re-signed", File: "version-missing-resigned.zip", Key: "log.pub"},
		{Name: "tombstone missing, re-signed", File: "tombstone-missing-resigned.zip", Key: "log.pub"},
		{Name: "valid, every member deflated", File: "valid-deflated.zip", Key: "log.pub", Pinned: "pinned.txt"},
		{Name: "time range with its headers", File: "time-range.zip", Key: "log.pub"},
		{Name: "time range as format 2, re-signed (verifies, with a note)", File: "time-range-as-format-2-resigned.zip", Key: "log.pub"},
		{Name: "time range, a trace left out, re-signed", File: "time-range-trace-left-out-resigned.zip", Key: "log.pub"},
		{Name: "selector relabeled, re-signed", File: "selector-relabeled-resigned.zip", Key: "log.pub"},
		{Name: "manifest member in upper case, re-signed", File: "manifest-member-upper-case-resigned.zip", Key: "log.pub"},
		{Name: "entry file padded with whitespace, re-signed", File: "entry-file-padded-resigned.zip", Key: "log.pub"},
		{Name: "OpenTelemetry trace", File: "otlp.zip", Key: "log.pub"},
		{Name: "OpenTelemetry trace without its resource entry, re-signed", File: "otlp-resource-missing-resigned.zip", Key: "log.pub"},
	}
	for i := range cases {
		cases[i] = verdict(t, cases[i])
	}
	// The bundles that verify; every other one must not. The first five
	// cases are valid bundles: the third is checked against a pinned
	// checkpoint newer than its own, the fourth with a key that did not
	// sign it, and both must fail.
	verifies := map[string]bool{"valid.zip": true, "valid-deflated.zip": true, "erased.zip": true, "time-range.zip": true,
		"time-range-as-format-2-resigned.zip": true, "otlp.zip": true, "decoded-indented-resigned.zip": true, "decoded-html-escaped-format-2-resigned.zip": true}
	if !cases[0].OK || !cases[1].OK || !cases[4].OK || cases[2].OK || cases[3].OK {
		t.Fatalf("unexpected verdicts on the valid bundles: %+v", cases[:5])
	}
	otlpMissing := cases[len(cases)-1]
	for _, c := range cases[5:] {
		if c.OK != verifies[c.File] {
			t.Fatalf("bundle %s: verifies %v, want %v", c.Name, c.OK, verifies[c.File])
		}
	}
	for _, c := range cases {
		if !strings.HasPrefix(c.File, "decoded-") || !strings.HasSuffix(c.File, "-resigned.zip") || c.OK {
			continue
		}
		for _, ch := range c.Checks {
			if (ch.Failed > 0) != (ch.Name == bundle.CheckDecoded) {
				t.Fatalf("bundle %s: check %s failed %d times; want only %s to fail", c.Name, ch.Name, ch.Failed, bundle.CheckDecoded)
			}
		}
	}
	for _, ch := range otlpMissing.Checks {
		if (ch.Failed > 0) != (ch.Name == bundle.CheckOTLP) {
			t.Fatalf("the OTLP bundle without its resource entry: check %s failed %d times; want only %s to fail", ch.Name, ch.Failed, bundle.CheckOTLP)
		}
	}
	b, _ := json.MarshalIndent(cases, "", " ")
	if err := os.WriteFile(bundlesFile, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// otlpVectorTraces is an OTLP export of two GenAI spans of trace 4.
func otlpVectorTraces() *coltrace.ExportTraceServiceRequest {
	str := func(k, v string) *common.KeyValue {
		return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
	}
	start := uint64(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC).UnixNano())
	traceID := bytes.Repeat([]byte{4}, 16)
	return &coltrace.ExportTraceServiceRequest{ResourceSpans: []*otrace.ResourceSpans{{
		Resource: &oresource.Resource{Attributes: []*common.KeyValue{str("service.name", "support-agent"), str("deployment.environment", "prod")}},
		ScopeSpans: []*otrace.ScopeSpans{{Scope: &common.InstrumentationScope{Name: "vectors", Version: "1"}, Spans: []*otrace.Span{
			{TraceId: traceID, SpanId: []byte{4, 0, 0, 0, 0, 0, 0, 1}, Name: "invoke_agent support", StartTimeUnixNano: start, EndTimeUnixNano: start + 2e9,
				Attributes: []*common.KeyValue{str("gen_ai.operation.name", "invoke_agent"), str("user.id", "customer-4")}},
			{TraceId: traceID, SpanId: []byte{4, 0, 0, 0, 0, 0, 0, 2}, ParentSpanId: []byte{4, 0, 0, 0, 0, 0, 0, 1}, Name: "chat gpt-4o",
				StartTimeUnixNano: start + 1e8, EndTimeUnixNano: start + 1e9, Kind: otrace.Span_SPAN_KIND_CLIENT,
				Attributes: []*common.KeyValue{str("gen_ai.operation.name", "chat"), str("gen_ai.request.model", "gpt-4o"),
					str("gen_ai.input.messages", `[{"role":"user","parts":[{"type":"text","content":"Where is my refund?"}]}]`)}},
		}}},
	}}}
}

// otlpVectorLogs is an OTLP export of one GenAI event of the chat span.
func otlpVectorLogs() *collogs.ExportLogsServiceRequest {
	tr := otlpVectorTraces().ResourceSpans[0]
	chat := tr.ScopeSpans[0].Spans[1]
	return &collogs.ExportLogsServiceRequest{ResourceLogs: []*ologs.ResourceLogs{{
		Resource: tr.Resource,
		ScopeLogs: []*ologs.ScopeLogs{{Scope: tr.ScopeSpans[0].Scope, LogRecords: []*ologs.LogRecord{{
			TimeUnixNano: chat.EndTimeUnixNano, TraceId: chat.TraceId, SpanId: chat.SpanId, EventName: "gen_ai.client.inference.operation.details",
			Attributes: []*common.KeyValue{{Key: "gen_ai.output.messages", Value: &common.AnyValue{Value: &common.AnyValue_StringValue{
				StringValue: `[{"role":"assistant","parts":[{"type":"text","content":"It was paid today."}],"finish_reason":"stop"}]`}}}},
		}}}},
	}}}
}

// postOTLP sends an OTLP/HTTP protobuf export and fails unless every item
// was taken.
func postOTLP(t *testing.T, url, token string, m proto.Message) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", otlp.ContentProtobuf)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || bytes.Contains(body, []byte("rejected")) {
		t.Fatalf("OTLP export to %s = %d %q", url, resp.StatusCode, body)
	}
}

// dropEntry removes from a bundle the entry file whose content matches,
// and its place in the manifest, and signs the manifest anew.
func dropEntry(t *testing.T, b []byte, signer note.Signer, match func(content []byte) bool) []byte {
	t.Helper()
	var dropped string
	edited := rezip(t, b, func(name string, c []byte) []byte {
		if strings.HasPrefix(name, "entries/") && match(c) {
			dropped = name
			return nil
		}
		return c
	}, nil)
	if dropped == "" {
		t.Fatal("dropEntry: no entry matches")
	}
	edited = rezip(t, edited, func(name string, c []byte) []byte {
		if name != bundle.ManifestFile {
			return c
		}
		var m bundle.Manifest
		if err := json.Unmarshal(c, &m); err != nil {
			t.Fatal(err)
		}
		m.Entries = slices.DeleteFunc(m.Entries, func(e bundle.EntryRef) bool { return e.File == dropped })
		out, _ := json.MarshalIndent(&m, "", "  ")
		return out
	}, nil)
	return resign(t, edited, signer, func(_ string, c []byte) []byte { return c })
}
