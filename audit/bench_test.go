package audit

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"
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

func BenchmarkExport(b *testing.B) {
	f := benchFixture(b)
	ctx := context.Background()
	size, _ := f.l.Size(ctx, "default")
	b.Run("bundle-10k-spans", func(b *testing.B) {
		var n int64
		var cpu time.Duration
		heap := peakHeap(func() {
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				cw := &countingWriter{}
				if _, err := f.x.Export(ctx, ExportRequest{Tenant: "default", Query: Query{SubjectID: "bench-user"}, Selector: bundle.Selector{SubjectID: "bench-user"}}, cw); err != nil {
					b.Fatal(err)
				}
				n = cw.n
			}
			cpu = processCPU() - cpu0
		})
		spans := float64(benchTraces * benchSpansPerTrace * b.N)
		b.ReportMetric(heap, "peak-heap-MB")
		b.ReportMetric(float64(n)/(1<<20), "bundle-MB")
		b.ReportMetric(spans/b.Elapsed().Seconds(), "spans/s")
		b.ReportMetric(float64(cpu.Microseconds())/spans, "cpu-µs/span")
	})
	b.Run("baseline-read-10k-entries", func(b *testing.B) {
		var cpu time.Duration
		heap := peakHeap(func() {
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				for idx := uint64(0); idx < size; idx++ {
					if _, err := f.l.GetEntry(ctx, "default", idx); err != nil {
						b.Fatal(err)
					}
				}
			}
			cpu = processCPU() - cpu0
		})
		b.ReportMetric(heap, "peak-heap-MB")
		b.ReportMetric(float64(size*uint64(b.N))/b.Elapsed().Seconds(), "spans/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(size*uint64(b.N)), "cpu-µs/span")
	})
}

// BenchmarkExportBigSpans exports one trace of 64 spans of 1 MiB of text
// each: the report shows every span, so its memory is what the report
// keeps of a trace (issue 9 review: it once held every payload).
//
//	go test -run '^$' -bench ExportBigSpans -benchtime 3x ./audit/
func BenchmarkExportBigSpans(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	const spans, spanBytes = 64, 1 << 20
	text := strings.Repeat("the quick brown fox jumps over the lazy dog. ", spanBytes/45)
	for sp := 1; sp <= spans; sp++ {
		r := spanSpec{trace: 9, span: byte(sp), kind: v1.SpanKind_SPAN_KIND_GENERATION, subject: "big", parent: 1}.record()
		if sp == 1 {
			r.ParentSpanID = [8]byte{}
		}
		msg := &v1.Span{}
		if err := proto.Unmarshal(r.Payload, msg); err != nil {
			b.Fatal(err)
		}
		msg.ParentSpanId = r.ParentSpanID[:]
		if sp == 1 {
			msg.ParentSpanId = nil
		}
		msg.Content.OutputMessages = []*v1.Message{{Role: "assistant", Parts: []*v1.MessagePart{{Part: &v1.MessagePart_Text{Text: text}}}}}
		r.Payload, _ = proto.MarshalOptions{Deterministic: true}.Marshal(msg)
		if _, err := f.l.Append(ctx, "default", []ledger.Record{r}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("bundle-64-spans-of-1MiB", func(b *testing.B) {
		var n int64
		heap := peakHeap(func() {
			for i := 0; i < b.N; i++ {
				cw := &countingWriter{}
				if _, err := f.x.Export(ctx, ExportRequest{Tenant: "default", Query: Query{TraceID: traceID(9)}, Selector: bundle.Selector{TraceID: strings.Repeat("09", 16)}}, cw); err != nil {
					b.Fatal(err)
				}
				n = cw.n
			}
		})
		b.ReportMetric(heap, "peak-heap-MB")
		b.ReportMetric(float64(n)/(1<<20), "bundle-MB")
	})
	// The baseline: reading the trace's entries one at a time, holding none.
	b.Run("baseline-read-64-entries", func(b *testing.B) {
		heap := peakHeap(func() {
			for i := 0; i < b.N; i++ {
				for idx := uint64(0); idx < spans; idx++ {
					if _, err := f.l.GetEntry(ctx, "default", idx); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.ReportMetric(heap, "peak-heap-MB")
	})
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func BenchmarkVerify(b *testing.B) {
	f := benchFixture(b)
	var buf bytes.Buffer
	if _, err := f.x.Export(context.Background(), ExportRequest{Tenant: "default", Query: Query{SubjectID: "bench-user"}, Selector: bundle.Selector{SubjectID: "bench-user"}}, &buf); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	key := f.verifier(b)
	b.Run("verify-10k-spans", func(b *testing.B) {
		var entries int
		var cpu time.Duration
		heap := peakHeap(func() {
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				rep := bundle.Verify(bytes.NewReader(data), int64(len(data)), key, nil)
				if !rep.OK() {
					b.Fatal(rep.Failed())
				}
				entries = rep.Entries
			}
			cpu = processCPU() - cpu0
		})
		b.ReportMetric(heap, "peak-heap-MB")
		b.ReportMetric(float64(len(data))/(1<<20), "bundle-MB") // MiB, as BenchmarkExport
		b.ReportMetric(float64(entries*b.N)/b.Elapsed().Seconds(), "entries/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(entries*b.N), "cpu-µs/entry")
		// The cores it kept busy: CPU time over wall time.
		b.ReportMetric(cpu.Seconds()/b.Elapsed().Seconds(), "cores")
	})
	// The baselines: unzipping and hashing every file, as the verifier must
	// at least, on one goroutine and on GOMAXPROCS (as the verifier runs),
	// with the inflater the verifier uses (klauspost/compress) and, for
	// comparison with earlier figures, the standard library's.
	for _, c := range []struct {
		name     string
		parallel bool
		inflate  zip.Decompressor
	}{
		{"baseline-unzip-and-hash", false, kinflate},
		{"baseline-unzip-and-hash-parallel", true, kinflate},
		{"baseline-unzip-and-hash-stdlib-inflate", false, nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			var files int
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				zr, _ := zip.NewReader(bytes.NewReader(data), int64(len(data)))
				if c.inflate != nil {
					zr.RegisterDecompressor(zip.Deflate, c.inflate)
				}
				files = len(zr.File)
				workers := 1
				if c.parallel {
					workers = runtime.GOMAXPROCS(0)
				}
				next := make(chan *zip.File)
				var wg sync.WaitGroup
				for range workers {
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
			cpu := processCPU() - cpu0
			b.ReportMetric(float64(files*b.N)/b.Elapsed().Seconds(), "files/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(files*b.N), "cpu-µs/file")
			b.ReportMetric(cpu.Seconds()/b.Elapsed().Seconds(), "cores")
		})
	}
}

var kinflaters sync.Pool

type kpooled struct{ io.ReadCloser }

func (k kpooled) Close() error { err := k.ReadCloser.Close(); kinflaters.Put(k.ReadCloser); return err }

func kinflate(r io.Reader) io.ReadCloser {
	if fr, ok := kinflaters.Get().(io.ReadCloser); ok && fr.(kflate.Resetter).Reset(r, nil) == nil {
		return kpooled{fr}
	}
	return kpooled{kflate.NewReader(r)}
}

// BenchmarkExportDayRange measures what completeness costs a time-range
// export (format 3's range.bin): one day of 100,000 spans of about 1.2 KiB
// (10,000 traces of an agent span and nine generations, the last a tool
// call in a tenth of them), exported whole and for the tool calls (1,000
// traces, and the headers of the whole day). It reports the bundle's size and
// the share of it range.bin takes (compressed).
//
//	go test -run '^$' -bench ExportDayRange -benchtime 1x ./audit/
func BenchmarkExportDayRange(b *testing.B) {
	const traces, perTrace = 10_000, 10
	f := newFixture(b)
	ctx := context.Background()
	text := strings.Repeat("a sentence of a prompt or an answer, ", 24) // ~900 bytes
	for t := 0; t < traces; t += 100 {
		var recs []ledger.Record
		for tr := t; tr < t+100; tr++ {
			for sp := 1; sp <= perTrace; sp++ {
				kind := v1.SpanKind_SPAN_KIND_GENERATION
				switch sp {
				case 1:
					kind = v1.SpanKind_SPAN_KIND_AGENT
				case perTrace:
					if tr%10 == 0 { // a tenth of the traces call a tool
						kind = v1.SpanKind_SPAN_KIND_TOOL
					}
				}
				spec := spanSpec{trace: 1, span: byte(sp), kind: kind, subject: fmt.Sprint("user-", tr%500), sess: fmt.Sprint("s-", tr), model: "gpt-4o"}
				if sp > 1 {
					spec.parent = 1
				}
				r := spec.record()
				r.TraceID[0], r.TraceID[1], r.TraceID[2] = byte(tr>>16)+1, byte(tr>>8), byte(tr)
				msg := &v1.Span{}
				if err := proto.Unmarshal(r.Payload, msg); err != nil {
					b.Fatal(err)
				}
				msg.TraceId = r.TraceID[:]
				msg.Content.OutputMessages = []*v1.Message{{Role: "assistant", Parts: []*v1.MessagePart{{Part: &v1.MessagePart_Text{Text: text}}}}}
				r.Payload, _ = proto.MarshalOptions{Deterministic: true}.Marshal(msg)
				recs = append(recs, r)
			}
		}
		if _, err := f.l.Append(ctx, "default", recs); err != nil {
			b.Fatal(err)
		}
	}
	first, err := f.l.Header(ctx, "default", 0)
	if err != nil {
		b.Fatal(err)
	}
	day := Query{From: first.AppendedAt, To: first.AppendedAt.Add(24 * time.Hour)}
	tools := day
	tools.Kind = uint8(v1.SpanKind_SPAN_KIND_TOOL)
	for _, c := range []struct {
		name string
		q    Query
	}{{"every-trace-of-the-day", day}, {"tool-spans-of-the-day", tools}} {
		b.Run(c.name, func(b *testing.B) {
			var out bytes.Buffer
			var spans int
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				out.Reset()
				m, err := f.x.Export(ctx, ExportRequest{Tenant: "default", Query: c.q, Selector: selectorOf(c.q)}, &out)
				if err != nil {
					b.Fatal(err)
				}
				spans = len(m.Entries)
			}
			cpu := processCPU() - cpu0
			zr, err := zip.NewReader(bytes.NewReader(out.Bytes()), int64(out.Len()))
			if err != nil {
				b.Fatal(err)
			}
			var rangeBytes, rangeRaw uint64
			for _, zf := range zr.File {
				if zf.Name == bundle.RangeFile {
					rangeBytes, rangeRaw = zf.CompressedSize64, zf.UncompressedSize64
				}
			}
			if rangeBytes == 0 {
				b.Fatal("no range.bin")
			}
			// Verifying it, range included (informational: one run).
			start := time.Now()
			if rep := bundle.Verify(bytes.NewReader(out.Bytes()), int64(out.Len()), f.verifier(b), nil); !rep.OK() {
				b.Fatal(rep.Failed())
			}
			b.ReportMetric(time.Since(start).Seconds(), "verify-s")
			b.ReportMetric(float64(out.Len())/(1<<20), "bundle-MB")
			b.ReportMetric(float64(rangeBytes)/(1<<20), "range-MB")
			b.ReportMetric(float64(rangeRaw)/(1<<20), "range-raw-MB")
			b.ReportMetric(100*float64(rangeBytes)/float64(out.Len()), "range-%")
			b.ReportMetric(float64(spans*b.N)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(spans*b.N), "cpu-µs/entry")
		})
	}
}
