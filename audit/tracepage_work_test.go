package audit

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"

	otlptrace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// readPages reads a trace with DecisionPathPage under a cap of maxBytes,
// page after page, and returns the pages.
func readPages(t *testing.T, s *Searcher, trace [16]byte, maxBytes, most int) []*Path {
	t.Helper()
	var out []*Path
	for from := uint64(0); ; {
		if len(out) > most {
			t.Fatalf("pages do not end after %d", len(out))
		}
		p, err := s.DecisionPathPage(context.Background(), "default", trace, from, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
		if p.Next == 0 {
			return out
		}
		if p.Next <= from {
			t.Fatalf("page from %d names %d as the next page's start", from, p.Next)
		}
		from = p.Next
	}
}

// Reading a trace page by page decrypts each of its entries about once,
// not the whole trace on every page (attack 31, D1): every page reads the
// trace's headers (no decryption) and decrypts only the payloads it gives
// and the one past its cap. A trace of n spans, one span's content a page
// (cap 1 byte), is n pages; it was n*n decryptions (200 spans: 40,000).
func TestDecisionPathPagesDecryptEachEntryAboutOnce(t *testing.T) {
	f := newFixture(t)
	const n = 200
	f.appendTrace(t, traceID(7), n)
	s := f.x.S
	before := s.decrypted.Load()
	pages := readPages(t, s, traceID(7), 1, n+1)
	decrypted := s.decrypted.Load() - before
	t.Logf("a trace of %d spans, read in %d pages, decrypted %d payloads", n, len(pages), decrypted)
	if len(pages) != n {
		t.Errorf("a trace of %d spans under a 1-byte cap came in %d pages, want %d (one span a page)", n, len(pages), n)
	}
	if decrypted > 2*n {
		t.Errorf("reading a %d-span trace page by page decrypted %d payloads; want at most %d (each entry, and the one past each page's cap)", n, decrypted, 2*n)
	}
	given := map[uint64]int{}
	for i, p := range pages {
		if len(p.Spans) != n {
			t.Errorf("page %d holds %d span entries, want all %d (headers)", i, len(p.Spans), n)
		}
		for _, e := range p.Spans {
			if e.Payload != nil {
				given[e.Header.Index]++
			} else if !p.Omitted[e.Header.Index] {
				t.Errorf("page %d: entry %d has no payload and is not omitted", i, e.Header.Index)
			}
		}
	}
	if len(given) != n {
		t.Errorf("the pages gave %d spans' payloads, want %d", len(given), n)
	}
	for i, c := range given {
		if c != 1 {
			t.Errorf("entry %d's payload was given on %d pages, want 1", i, c)
		}
	}
}

// resourceScope is an OTLP resource and scope as a resource entry holds it
// (one resource, one scope, no items), its attribute value v making it
// size bytes or so.
func resourceScope(t *testing.T, v string) []byte {
	t.Helper()
	rs := &otlptrace.ResourceSpans{SchemaUrl: v, ScopeSpans: []*otlptrace.ScopeSpans{{SchemaUrl: "s"}}}
	b, err := proto.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A page decrypts the OTLP resource entries of the spans it gives, looked
// up by the identity derived from each span's resource_scope_sha256, and
// no other, and counts their bytes against its cap (attack 31, D1: every
// resource entry of the trace was decrypted on every page and held outside
// the cap). Each page's first span comes with its resource entry.
func TestDecisionPathPageReadsOnlyTheResourceEntriesOfItsSpans(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	trace := traceID(9)
	const groups, perGroup, big = 6, 3, 4 << 10
	var recs []ledger.Record
	resIdx := map[uint64]bool{}
	maxRes, maxSpan := 0, 0
	for g := range groups {
		rsc := resourceScope(t, string(rune('a'+g))+string(make([]byte, big)))
		sum := sha256.Sum256(rsc)
		id := bundle.ResourceEntrySpanID(trace[:], sum[:])
		payload, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&v1.Span{
			TraceId: trace[:], SpanId: id[:], Name: bundle.ResourceEntryName, Kind: v1.SpanKind_SPAN_KIND_OTHER,
			Otlp: &v1.OtlpSource{ResourceScope: rsc},
		})
		r := ledger.Record{Kind: format.KindSpan, SubKind: uint8(v1.SpanKind_SPAN_KIND_OTHER), TraceID: trace, SpanID: id, Payload: payload}
		if !bundle.IsResourceEntry(&format.Header{Kind: r.Kind, SubKind: r.SubKind, TraceID: trace, SpanID: id}, payload) {
			t.Fatal("the test's resource entry is not one")
		}
		resIdx[uint64(len(recs))] = true
		maxRes = max(maxRes, len(payload))
		recs = append(recs, r)
		for k := range perGroup {
			sp := &v1.Span{TraceId: trace[:], SpanId: []byte{byte(g), byte(k), 0, 0, 0, 0, 0, 1}, Kind: v1.SpanKind_SPAN_KIND_GENERATION,
				Otlp: &v1.OtlpSource{Span: []byte{1, 2, 3}, ResourceScopeSha256: sum[:]}}
			payload, _ := proto.MarshalOptions{Deterministic: true}.Marshal(sp)
			r := ledger.Record{Kind: format.KindSpan, SubKind: uint8(sp.Kind), TraceID: trace, Payload: payload}
			maxSpan = max(maxSpan, len(payload))
			copy(r.SpanID[:], sp.SpanId)
			recs = append(recs, r)
		}
	}
	if _, err := f.l.Append(ctx, "default", recs); err != nil {
		t.Fatal(err)
	}
	s := f.x.S
	// Caps below one span with its resource entry, the second above
	// several spans without theirs: a span a page, if resource entries
	// count.
	for _, capBytes := range []int{1, 3 * maxSpan} {
		t.Run(fmt.Sprintf("cap %d", capBytes), func(t *testing.T) {
			before := s.decrypted.Load()
			pages := readPages(t, s, trace, capBytes, len(recs)+1)
			decrypted := s.decrypted.Load() - before
			spans := groups * perGroup
			t.Logf("%d spans, %d resource entries: %d pages, %d payloads decrypted", spans, groups, len(pages), decrypted)
			given := map[uint64]bool{}
			for i, p := range pages {
				var spanGiven []uint64
				held := 0
				for _, e := range p.Spans {
					if e.Payload == nil {
						continue
					}
					held += len(e.Payload)
					if p.Resources[e.Header.Index] {
						if !resIdx[e.Header.Index] {
							t.Errorf("page %d takes span %d for a resource entry", i, e.Header.Index)
						}
						continue
					}
					if resIdx[e.Header.Index] {
						t.Errorf("page %d gives resource entry %d as a span", i, e.Header.Index)
					}
					spanGiven = append(spanGiven, e.Header.Index)
					given[e.Header.Index] = true
				}
				if len(spanGiven) > 1 {
					t.Errorf("page %d gives spans %v under a 1-byte cap; want one", i, spanGiven)
				}
				// The page holds its span's resource entry, and no other.
				for _, e := range p.Spans {
					if e.Payload != nil && p.Resources[e.Header.Index] && !slices.ContainsFunc(spanGiven, func(x uint64) bool { return x > e.Header.Index && x <= e.Header.Index+perGroup }) {
						t.Errorf("page %d holds resource entry %d, which none of its spans %v refers to", i, e.Header.Index, spanGiven)
					}
				}
				if held > maxRes+maxSpan {
					t.Errorf("page %d holds %d bytes of payloads, more than a span and its resource entry (%d)", i, held, maxRes+maxSpan)
				}
			}
			if len(given) != spans {
				t.Errorf("the pages gave %d spans, want %d", len(given), spans)
			}
			// Each page: its span, its resource entry, and the span past its cap.
			if most := int64(3 * len(pages)); decrypted > most {
				t.Errorf("read in %d pages, decrypted %d payloads; want at most %d (each page's span, its resource entry, the span past the cap)", len(pages), decrypted, most)
			}
		})
	}
}
