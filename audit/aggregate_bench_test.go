package audit

import (
	"context"
	"testing"
	"time"
)

// Aggregates and summaries over the 10,000 spans of benchFixture, with the
// baseline of reading and decrypting the same entries, in one run:
//
//	go test -run '^$' -bench 'Aggregate|Summar' -benchtime 5x ./audit/
func BenchmarkAggregate(b *testing.B) {
	f := benchFixture(b)
	ctx := context.Background()
	size, _ := f.l.Size(ctx, "default")
	first, _ := f.l.Header(ctx, "default", 0)
	q := Query{From: first.AppendedAt.Add(-time.Hour), To: first.AppendedAt.Add(23 * time.Hour)}
	run := func(name string, q Query) {
		b.Run(name, func(b *testing.B) {
			var scanned uint64
			heap := peakHeap(func() {
				for i := 0; i < b.N; i++ {
					a, err := f.x.S.Aggregate(ctx, AggregateRequest{Tenant: "default", Query: q, Bucket: 30 * time.Minute, Figures: testFigures})
					if err != nil {
						b.Fatal(err)
					}
					scanned = a.Scanned
				}
			})
			b.ReportMetric(heap, "peak-heap-MB")
			b.ReportMetric(float64(scanned*uint64(b.N))/b.Elapsed().Seconds(), "spans/s")
		})
	}
	run("10k-spans-by-time", q)
	q.Model = "gpt-4o"
	run("10k-spans-by-model-term", q)
	b.Run("baseline-read-10k-entries", func(b *testing.B) {
		heap := peakHeap(func() {
			for i := 0; i < b.N; i++ {
				for idx := uint64(0); idx < size; idx++ {
					e, err := f.l.GetEntry(ctx, "default", idx)
					if err != nil {
						b.Fatal(err)
					}
					if !e.Erased && e.Header.Kind == 1 {
						if _, err := testFigures(e.Payload); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
		})
		b.ReportMetric(heap, "peak-heap-MB")
		b.ReportMetric(float64(size*uint64(b.N))/b.Elapsed().Seconds(), "spans/s")
	})
	b.Run("summaries-100-traces", func(b *testing.B) {
		hits, _, err := f.x.S.Traces(ctx, "default", Query{}, 0, 100, 0)
		if err != nil || len(hits) != 100 {
			b.Fatalf("%d traces, %v", len(hits), err)
		}
		for i := 0; i < b.N; i++ {
			for _, h := range hits {
				if _, err := f.x.S.Summarize(ctx, "default", h.TraceID, size, testFigures); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(100*benchSpansPerTrace*b.N)/b.Elapsed().Seconds(), "spans/s")
	})
}
