package audit

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
)

// Export and verification of 10,000 spans (1,000 traces of 10 spans of one
// subject). Run together so the baselines come from the same run:
//
//	go test -run '^$' -bench 'Export|Verify' -benchtime 3x ./audit/
const (
	benchTraces        = 1000
	benchSpansPerTrace = 10
)

func benchFixture(b testing.TB) *fixture {
	f := newFixture(b)
	prompt := f.registerPrompt(b, "v1")
	for tr := 0; tr < benchTraces; tr++ {
		var specs []spanSpec
		for sp := 1; sp <= benchSpansPerTrace; sp++ {
			s := spanSpec{trace: byte(tr), span: byte(sp), kind: v1.SpanKind_SPAN_KIND_GENERATION, subject: "bench-user", sess: "s", model: "gpt-4o", prompt: prompt}
			if sp > 1 {
				s.parent = 1
			}
			specs = append(specs, s)
		}
		recs := make([]ledger.Record, len(specs))
		for i, s := range specs {
			recs[i] = s.record()
			recs[i].TraceID[0], recs[i].TraceID[1] = byte((tr+1)>>8), byte(tr+1) // 1000 distinct, non-zero traces
			sp := &v1.Span{}
			if err := proto.Unmarshal(recs[i].Payload, sp); err != nil {
				b.Fatal(err)
			}
			sp.TraceId = recs[i].TraceID[:] // the payload says what the header says
			payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(sp)
			if err != nil {
				b.Fatal(err)
			}
			recs[i].Payload = payload
		}
		if _, err := f.l.Append(context.Background(), "default", recs); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// peakHeap samples the heap while fn runs and returns the peak in MB.
func peakHeap(fn func()) float64 {
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
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

func BenchmarkExport(b *testing.B) {
	f := benchFixture(b)
	ctx := context.Background()
	size, _ := f.l.Size(ctx, "default")
	b.Run("bundle-10k-spans", func(b *testing.B) {
		var n int64
		heap := peakHeap(func() {
			for i := 0; i < b.N; i++ {
				cw := &countingWriter{}
				if _, err := f.x.Export(ctx, ExportRequest{Tenant: "default", Query: Query{SubjectID: "bench-user"}, Selector: bundle.Selector{SubjectID: "bench-user"}}, cw); err != nil {
					b.Fatal(err)
				}
				n = cw.n
			}
		})
		b.ReportMetric(heap, "peak-heap-MB")
		b.ReportMetric(float64(n)/(1<<20), "bundle-MB")
		b.ReportMetric(float64(benchTraces*benchSpansPerTrace*b.N)/b.Elapsed().Seconds(), "spans/s")
	})
	b.Run("baseline-read-10k-entries", func(b *testing.B) {
		heap := peakHeap(func() {
			for i := 0; i < b.N; i++ {
				for idx := uint64(0); idx < size; idx++ {
					if _, err := f.l.GetEntry(ctx, "default", idx); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.ReportMetric(heap, "peak-heap-MB")
		b.ReportMetric(float64(size*uint64(b.N))/b.Elapsed().Seconds(), "spans/s")
	})
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func BenchmarkVerify(b *testing.B) {
	f := benchFixture(b)
	var buf bytes.Buffer
	if _, err := f.x.Export(context.Background(), ExportRequest{Tenant: "default", Query: Query{SubjectID: "bench-user"}}, &buf); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	key := f.verifier(b)
	b.Run("verify-10k-spans", func(b *testing.B) {
		var entries int
		heap := peakHeap(func() {
			for i := 0; i < b.N; i++ {
				rep := bundle.Verify(bytes.NewReader(data), int64(len(data)), key, nil)
				if !rep.OK() {
					b.Fatal(rep.Failed())
				}
				entries = rep.Entries
			}
		})
		b.ReportMetric(heap, "peak-heap-MB")
		b.ReportMetric(float64(entries*b.N)/b.Elapsed().Seconds(), "entries/s")
	})
	// The baselines: unzipping and hashing every file, as the verifier must
	// at least, on one goroutine and on GOMAXPROCS (as the verifier runs).
	b.Run("baseline-unzip-and-hash", func(b *testing.B) {
		var files int
		for i := 0; i < b.N; i++ {
			zr, _ := zip.NewReader(bytes.NewReader(data), int64(len(data)))
			files = len(zr.File)
			for _, zf := range zr.File {
				rc, _ := zf.Open()
				h := sha256.New()
				io.Copy(h, rc)
				rc.Close()
			}
		}
		b.ReportMetric(float64(files*b.N)/b.Elapsed().Seconds(), "files/s")
	})
	b.Run("baseline-unzip-and-hash-parallel", func(b *testing.B) {
		var files int
		for i := 0; i < b.N; i++ {
			zr, _ := zip.NewReader(bytes.NewReader(data), int64(len(data)))
			files = len(zr.File)
			next := make(chan *zip.File)
			var wg sync.WaitGroup
			for range runtime.GOMAXPROCS(0) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for zf := range next {
						rc, _ := zf.Open()
						h := sha256.New()
						io.Copy(h, rc)
						rc.Close()
					}
				}()
			}
			for _, zf := range zr.File {
				next <- zf
			}
			close(next)
			wg.Wait()
		}
		b.ReportMetric(float64(files*b.N)/b.Elapsed().Seconds(), "files/s")
	})
}
