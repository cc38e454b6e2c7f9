package audit

import (
	"bytes"
	"context"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
)

// TestExportBatchesBoundedByBytes: every batch of entry files an export
// prepares holds at most maxBatchBytes of files (or is one entry whose
// file alone is larger) and maxExportBatch entries, whatever the sizes of
// the spans before it (docs/ARCHITECTURE.md); the bundle is the same,
// byte for byte, whatever the cap. The cap is lowered to 64 KiB so that a
// span of 16 KiB is large.
func TestExportBatchesBoundedByBytes(t *testing.T) {
	gen := v1.SpanKind_SPAN_KIND_GENERATION
	// n small spans in traces of 100 from trace on.
	small := func(trace byte, n int) []ledger.Record {
		var out []ledger.Record
		for i := range n {
			out = append(out, spanSpec{trace: trace + byte(i/100), span: byte(i%100 + 1), kind: gen, subject: "alice", model: "m"}.record())
		}
		return out
	}
	large := func(trace byte, n, size int) []ledger.Record {
		r := rand.New(rand.NewPCG(uint64(trace), 13))
		var out []ledger.Record
		for i := range n {
			out = append(out, bigSpan(t, spanSpec{trace: trace, span: byte(i + 1), kind: gen, subject: "alice", model: "m"}, r, size))
		}
		return out
	}
	tests := []struct {
		name   string
		groups [][]ledger.Record
	}{
		{"large spans alone", [][]ledger.Record{large(2, 8, 16<<10)}},
		// The attack13 case: a trace of small spans, then one of large.
		{"small spans then large ones", [][]ledger.Record{small(3, 150), large(2, 8, 16<<10)}},
		{"large, small, large", [][]ledger.Record{large(2, 4, 16<<10), small(3, 150), large(9, 4, 16<<10)}},
		{"spans larger than the cap", [][]ledger.Record{small(3, 20), large(2, 3, 48<<10), small(4, 20)}},
		{"small spans alone", [][]ledger.Record{small(3, 300)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			at := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
			f.x.Now = func() time.Time { return at }
			entries := 0
			for _, g := range tt.groups {
				if _, err := f.l.Append(context.Background(), "default", g); err != nil {
					t.Fatal(err)
				}
				entries += len(g)
			}
			want := f.exportBundle(t, Query{SubjectID: "alice"}, 0)

			defer func(saved int) { maxBatchBytes = saved }(maxBatchBytes)
			maxBatchBytes = 64 << 10
			batches, seen := 0, 0
			f.x.onBatch = func(files []*bundle.PreparedEntry) {
				bytes := 0
				for _, fl := range files {
					bytes += fl.Size()
				}
				seen += len(files)
				batches++
				if len(files) > maxExportBatch || (len(files) > 1 && bytes > maxBatchBytes) {
					t.Errorf("batch %d: %d entries, %d bytes of entry files; want at most %d entries and %d bytes, or a single entry",
						batches, len(files), bytes, maxExportBatch, maxBatchBytes)
				}
			}
			got := f.exportBundle(t, Query{SubjectID: "alice"}, 0)
			if seen != entries {
				t.Errorf("batches held %d entries, want %d", seen, entries)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("bundle with 64 KiB batches (%d bytes) differs from the one with %d MiB batches (%d bytes)", len(got), 4, len(want))
			}
			t.Logf("%d batches", batches)
		})
	}
}

// TestExportMemoryOfLargeSpansAfterSmallOnes: the heap an export takes for
// large spans does not grow when small spans of other traces come before
// them. Batches used to be sized on the previous batch's mean file only:
// after 300 small spans, one batch took all 24 spans of 512 KiB at once
// (the heap grew 50 MB, against 22 MB for the large spans alone; now about
// 20 MB both).
// TestExportBatchesBoundedByBytes checks the batches themselves.
func TestExportMemoryOfLargeSpansAfterSmallOnes(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 24 MiB of spans")
	}
	ctx := context.Background()
	gen := v1.SpanKind_SPAN_KIND_GENERATION
	const large = 24
	r := rand.New(rand.NewPCG(13, 13))
	bigs := func(trace byte, subject string) []ledger.Record {
		var out []ledger.Record
		for i := range large {
			out = append(out, bigSpan(t, spanSpec{trace: trace, span: byte(i + 1), kind: gen, subject: subject, model: "m"}, r, 512<<10))
		}
		return out
	}
	f := newFixture(t)
	// bob: the large spans alone (the control); alice: traces 3 to 5, 300
	// small spans, then as many large ones.
	var small []ledger.Record
	for i := range 300 {
		small = append(small, spanSpec{trace: byte(3 + i/100), span: byte(i%100 + 1), kind: gen, subject: "alice", model: "m"}.record())
	}
	for _, g := range [][]ledger.Record{bigs(2, "bob"), small, bigs(6, "alice")} {
		// One span an append, as apps send large ones.
		for _, rec := range g {
			if _, err := f.l.Append(ctx, "default", []ledger.Record{rec}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A tight GC target, so that the peak follows what is live rather than
	// the garbage the pacer allows (by default as much as the heap in use).
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	control := exportGrowth(t, f, "bob")
	mixed := exportGrowth(t, f, "alice")
	t.Logf("heap growth: %d large spans alone %.0f MB; after 300 small spans of other traces %.0f MB", large, control, mixed)
	if mixed > control+12 {
		t.Errorf("export memory: the heap grew by %.0f MB exporting 300 small spans of three traces then %d spans of 512 KiB, %.0f MB for the same large spans alone; want about the same (docs/ARCHITECTURE.md: two batches of at most 4 MiB of entry files)", mixed, large, control)
	}
}

// bigSpan is spanSpec's record with a system instruction of n random
// printable characters (about n bytes of payload, 2.3·n of entry file).
func bigSpan(t testing.TB, s spanSpec, r *rand.Rand, n int) ledger.Record {
	t.Helper()
	rec := s.record()
	sp := &v1.Span{}
	if err := proto.Unmarshal(rec.Payload, sp); err != nil {
		t.Fatal(err)
	}
	text := make([]byte, n)
	for i := 0; i < n; i += 8 {
		x := r.Uint64()
		for j := i; j < min(n, i+8); j++ {
			text[j] = byte('!' + x%94) // '!'..'~'
			x >>= 8
		}
	}
	sp.Content.SystemInstructions = string(text)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(sp)
	if err != nil {
		t.Fatal(err)
	}
	rec.Payload = b
	return rec
}

// heapNow is the heap in use after a GC, in MB, as peakHeap counts it.
func heapNow() float64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	metrics.Read(s)
	return float64(s[0].Value.Uint64()+s[1].Value.Uint64()) / (1 << 20)
}

// exportGrowth exports subject's traces and returns how much the heap grew
// during the export (MB).
func exportGrowth(t *testing.T, f *fixture, subject string) float64 {
	t.Helper()
	var out countingWriter
	var exportErr error
	base := heapNow()
	peak := peakHeap(func() {
		_, exportErr = f.x.Export(context.Background(), ExportRequest{Tenant: "default", Query: Query{SubjectID: subject}}, &out)
	})
	if exportErr != nil {
		t.Fatal(exportErr)
	}
	t.Logf("%s: bundle %d bytes; heap %.0f MB before, peak %.0f MB during the export", subject, out.n, base, peak)
	return peak - base
}
