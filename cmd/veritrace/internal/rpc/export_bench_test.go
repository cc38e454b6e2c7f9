package rpc

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/audit"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// BenchmarkExportBundle exports 10,000 spans (1,000 traces of 10 spans of
// one subject, about 1 KiB each) through the generated client over a
// loopback listener, as `veritrace export` does, beside the same export
// in process (no RPC, no client) as its baseline:
//
//	go test -run '^$' -bench ExportBundle -benchtime 3x ./cmd/veritrace/internal/rpc/
func BenchmarkExportBundle(b *testing.B) {
	s := startServer(b, 0)
	ctx := context.Background()
	app := s.clients("connect", "", s.key(b, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(b, policy.Auditor, "default"))
	const traces, perTrace = 1000, 10
	for t := 0; t < traces; t += 100 {
		var spans []*v1.Span
		for i := t; i < t+100; i++ {
			for j := 0; j < perTrace; j++ {
				sp := testSpan(j)
				sp.TraceId = []byte(fmt.Sprintf("trace-%010d", i))
				if j > 0 {
					sp.ParentSpanId = testSpan(0).SpanId
				}
				sp.SubjectId = "bench-subject"
				spans = append(spans, sp)
			}
		}
		if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: spans})); err != nil {
			b.Fatal(err)
		}
	}
	sel := &v1.TraceQuery{SubjectId: "bench-subject"}
	run := func(b *testing.B, export func() (int64, error)) {
		var n int64
		var cpu time.Duration
		heap := peakHeap(func() {
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				var err error
				if n, err = export(); err != nil {
					b.Fatal(err)
				}
			}
			cpu = processCPU() - cpu0
		})
		b.ReportMetric(float64(traces*perTrace*b.N)/b.Elapsed().Seconds(), "spans/s")
		// Server and client share the process: this is both sides' CPU.
		b.ReportMetric(float64(cpu.Microseconds())/float64(traces*perTrace*b.N), "cpu-µs/span")
		b.ReportMetric(heap, "peak-heap-MB")
		b.ReportMetric(float64(n)/(1<<20), "bundle-MB")
		b.ReportMetric(0, "errors")
	}
	b.Run("rpc-10k-spans", func(b *testing.B) {
		run(b, func() (int64, error) {
			st, err := aud.audit.ExportBundle(ctx, connect.NewRequest(&v1.ExportBundleRequest{Selector: sel}))
			if err != nil {
				return 0, err
			}
			defer st.Close()
			var n int64
			for st.Receive() {
				n += int64(len(st.Msg().GetChunk()))
			}
			return n, st.Err()
		})
	})
	b.Run("baseline-in-process-10k-spans", func(b *testing.B) {
		x := &audit.Exporter{S: &audit.Searcher{L: s.l}, Now: time.Now}
		q, bsel, err := toQuery("selector", sel)
		if err != nil {
			b.Fatal(err)
		}
		run(b, func() (int64, error) {
			var cw countingWriter
			_, err := x.Export(ctx, audit.ExportRequest{Tenant: "default", Selector: bsel, Query: q}, &cw)
			return cw.n, err
		})
	})
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// peakHeap samples the heap while fn runs and returns the peak in MB: the
// bytes of heap spans in use (runtime.MemStats.HeapInuse), read through
// runtime/metrics, which does not stop the world as ReadMemStats does (a
// sampler that stopped the world every 5 ms cost the measured code time).
func peakHeap(fn func()) float64 {
	runtime.GC()
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			metrics.Read(samples)
			if inuse := samples[0].Value.Uint64() + samples[1].Value.Uint64(); inuse > peak.Load() {
				peak.Store(inuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return float64(peak.Load()) / (1 << 20)
}
