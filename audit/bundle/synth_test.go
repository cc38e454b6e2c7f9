package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// synthLog is a log built in memory by a test, with a key of its own:
// what a server holding the log key could write, including what the
// ledger never would (a span before the version it references). Bundles
// of it are made with the package's own Writer.
type synthLog struct {
	t        testing.TB
	signer   note.Signer
	verifier note.Verifier
	headers  [][]byte
	payloads [][]byte
	salts    [][]byte
	hashes   []tlog.Hash // tlog's stored hashes
	// deflateEntries writes entry files deflated (Writer.DeflateEntries).
	deflateEntries bool
}

const synthOrigin = "synth-log/default"

func newSynthLog(t testing.TB) *synthLog {
	skey, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 64)), "synth-log")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return &synthLog{t: t, signer: s, verifier: v}
}

func (l *synthLog) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = l.hashes[x]
	}
	return out, nil
}

// add appends an entry: h's index, tenant, previous leaf hash and
// commitment are filled in.
func (l *synthLog) add(h format.Header, payload []byte) uint64 {
	i := uint64(len(l.headers))
	h.Index, h.Tenant = i, "default"
	if h.RetentionClass == "" {
		h.RetentionClass = "default"
	}
	if h.AppendedAt.IsZero() {
		h.AppendedAt = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	}
	if i > 0 {
		h.PrevLeafHash = format.LeafHash(l.headers[i-1])
	}
	salt := sha256.Sum256([]byte(fmt.Sprint("salt", i)))
	h.Commitment = format.Commitment(salt[:], payload)
	hb := h.Marshal()
	hs, err := tlog.StoredHashes(int64(i), hb, l)
	if err != nil {
		l.t.Fatal(err)
	}
	l.hashes = append(l.hashes, hs...)
	l.headers, l.payloads, l.salts = append(l.headers, hb), append(l.payloads, payload), append(l.salts, salt[:])
	return i
}

// version adds a prompt version and returns its index and id.
func (l *synthLog) version(label string) (uint64, [32]byte) {
	v := &v1.Version{Kind: v1.VersionKind_VERSION_KIND_PROMPT, Name: "p", Label: label, Content: []byte(label), MediaType: "text/plain"}
	id := format.VersionID(format.VersionPrompt, v.Name, v.Label, v.MediaType, v.Content)
	payload, _ := proto.MarshalOptions{Deterministic: true}.Marshal(v)
	var refs format.Refs
	refs[0] = id
	return l.add(format.Header{Kind: format.KindVersion, SubKind: 1, Refs: refs, RetentionClass: "versions"}, payload), id
}

// span adds a span of trace (a byte repeated) with a prompt reference.
func (l *synthLog) span(trace, n byte, subject string, prompt [32]byte) uint64 {
	sp := &v1.Span{TraceId: bytes.Repeat([]byte{trace}, 16), SpanId: []byte{0, 0, 0, 0, 0, 0, trace, n}, Name: "s", Kind: v1.SpanKind_SPAN_KIND_GENERATION, SubjectId: subject}
	h := format.Header{Kind: format.KindSpan, SubKind: uint8(sp.Kind)}
	if prompt != ([32]byte{}) {
		sp.Versions = &v1.VersionRefs{Prompt: hex.EncodeToString(prompt[:])}
		h.Refs[0] = prompt
	}
	copy(h.TraceID[:], sp.TraceId)
	copy(h.SpanID[:], sp.SpanId)
	payload, _ := proto.MarshalOptions{Deterministic: true}.Marshal(sp)
	return l.add(h, payload)
}

// bundle writes a format 3 bundle of the entries idxs at the log's size.
func (l *synthLog) bundle(sel Selector, traces []byte, idxs ...uint64) []byte {
	t := l.t
	size := int64(len(l.headers))
	root, err := tlog.TreeHash(size, l)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := note.Sign(&note.Note{Text: format.CheckpointBody(synthOrigin, uint64(size), root)}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w := NewWriter(&out, Manifest{Origin: synthOrigin, Tenant: "default", LogKey: "synth", CreatedAt: time.Now().UTC(), Selector: sel, TreeSize: uint64(size)})
	w.DeflateEntries = l.deflateEntries
	for _, tr := range traces {
		w.AddTrace([16]byte(bytes.Repeat([]byte{tr}, 16)))
	}
	for _, i := range idxs {
		p, err := tlog.ProveRecord(size, int64(i), l)
		if err != nil {
			t.Fatal(err)
		}
		proof := make([]Hex, len(p))
		for k := range p {
			proof[k] = Hex(p[k])
		}
		if err := w.AddEntry(&Entry{Index: i, Header: l.headers[i], LeafHash: Hex(format.LeafHash(l.headers[i])), Payload: l.payloads[i], Salt: l.salts[i], InclusionProof: proof}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.AddCheckpoint(cp); err != nil {
		t.Fatal(err)
	}
	if err := w.AddReport(func(w io.Writer) error { _, err := io.WriteString(w, "<!doctype html>"); return err }); err != nil {
		t.Fatal(err)
	}
	err = w.Close(func(d [32]byte) ([]byte, error) {
		return note.Sign(&note.Note{Text: format.BundleSignatureBody(synthOrigin, d)}, l.signer)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func (l *synthLog) verify(b []byte) (*Report, string) {
	rep := Verify(bytes.NewReader(b), int64(len(b)), l.verifier, nil)
	var out strings.Builder
	rep.Write(&out)
	return rep, out.String()
}

// TestVersionPrecedesItsSpans: docs/FORMAT.md §2.1: "Each version
// reference of a span names a version entry of that kind in the same
// tenant's log at a lower index." The ledger refuses anything else, but a
// log written by whoever holds the key need not: the verifier checks it.
func TestVersionPrecedesItsSpans(t *testing.T) {
	l := newSynthLog(t)
	_, id := l.version("v1")
	before := l.span(1, 1, "alice", id)
	l.version("v2") // not in the bundle
	sel := Selector{TraceID: strings.Repeat("01", 16)}
	honest := l.bundle(sel, []byte{1}, before, 0)
	if rep, out := l.verify(honest); !rep.OK() {
		t.Fatalf("the honest synthetic bundle does not verify:\n%s", out)
	}

	// A span naming a version the log registered after it.
	l2 := newSynthLog(t)
	var future [32]byte
	{
		v := &v1.Version{Kind: v1.VersionKind_VERSION_KIND_PROMPT, Name: "p", Label: "later", Content: []byte("later"), MediaType: "text/plain"}
		future = format.VersionID(format.VersionPrompt, v.Name, v.Label, v.MediaType, v.Content)
	}
	span := l2.span(2, 1, "bob", future)
	ver, got := l2.version("later")
	if got != future {
		t.Fatal("the test's version id is wrong")
	}
	b := l2.bundle(Selector{TraceID: strings.Repeat("02", 16)}, []byte{2}, span, ver)
	rep, out := l2.verify(b)
	if !slices.Contains(rep.Failed(), CheckReferences) || !strings.Contains(out, "which was registered after it (entry 1)") {
		t.Errorf("a span that references a version registered after it passed:\n%s", out)
	}
}
