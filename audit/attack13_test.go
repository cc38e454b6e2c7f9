package audit

import (
	"context"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"testing"

	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
)

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
	for i := range text {
		text[i] = byte(' ' + 1 + r.IntN(94)) // '!'..'~'
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

// exportGrowth appends the spans of recs, one record per Append, exports
// alice's traces and returns how much the heap grew during the export (MB).
func exportGrowth(t *testing.T, groups ...[]ledger.Record) float64 {
	t.Helper()
	ctx := context.Background()
	f := newFixture(t)
	for _, g := range groups {
		if _, err := f.l.Append(ctx, "default", g); err != nil {
			t.Fatal(err)
		}
	}
	var out countingWriter
	var exportErr error
	base := heapNow()
	peak := peakHeap(func() {
		_, exportErr = f.x.Export(ctx, ExportRequest{Tenant: "default", Query: Query{SubjectID: "alice"}}, &out)
	})
	if exportErr != nil {
		t.Fatal(exportErr)
	}
	t.Logf("bundle %d bytes; heap %.0f MB before, peak %.0f MB during the export", out.n, base, peak)
	return peak - base
}

// TestAttack13ExportBatchMemoryAcrossTraces: docs/ARCHITECTURE.md says an
// export's memory "is bounded by two batches (each at most 256 entries and
// 4 MiB of entry files: each batch after the first holds as many entries
// as fit at the previous batch's mean size)". A batch is sized on the
// previous batch's mean only, and the spans of all traces go through one
// stream of batches: after a trace of many small spans, the next batch is
// sized for small spans and takes every large span of the next trace at
// once. The heap then grows with the number of large spans, where the same
// spans exported alone (the control) stay at a few batches' worth.
// (Not new in evperf2: before it, the batch size also carried over from
// one trace's write to the next.)
func TestAttack13ExportBatchMemoryAcrossTraces(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 32 MiB of spans")
	}
	gen := v1.SpanKind_SPAN_KIND_GENERATION
	const large = 32
	bigs := func() [][]ledger.Record {
		r := rand.New(rand.NewPCG(13, 13))
		var out [][]ledger.Record
		for i := range large {
			out = append(out, []ledger.Record{bigSpan(t, spanSpec{trace: 2, span: byte(i + 1), kind: gen, subject: "alice", model: "m"}, r, 512<<10)})
		}
		return out
	}
	control := exportGrowth(t, bigs()...)
	// Traces 3 to 5: 300 small spans of alice, before the large ones.
	var small []ledger.Record
	for i := range 300 {
		small = append(small, spanSpec{trace: byte(3 + i/100), span: byte(i%100 + 1), kind: gen, subject: "alice", model: "m"}.record())
	}
	mixed := exportGrowth(t, append([][]ledger.Record{small}, bigs()...)...)
	t.Logf("heap growth: %d large spans alone %.0f MB; after 300 small spans of other traces %.0f MB", large, control, mixed)
	if mixed > control+32 {
		t.Errorf("DEFECT export memory across traces: the heap grew by %.0f MB exporting 300 small spans of three traces then %d spans of 512 KiB, %.0f MB for the same large spans alone (docs/ARCHITECTURE.md: two batches of at most 4 MiB of entry files); the batch after the small spans is sized on their mean and holds every large span", mixed, large, control)
	}
}
