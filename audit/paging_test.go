package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// appendTrace appends n spans of one trace, in batches, each carrying the
// model term "m"; spans are tiny so that big traces are quick to write.
func (f *fixture) appendTrace(t testing.TB, trace [16]byte, n int) {
	t.Helper()
	for done := 0; done < n; {
		k := min(ledger.MaxBatch, n-done)
		recs := make([]ledger.Record, k)
		for i := range recs {
			r := ledger.Record{Kind: format.KindSpan, SubKind: 1, TraceID: trace, Terms: SpanTerms(SpanFacts{Models: []string{"m"}})}
			r.SpanID[0], r.SpanID[1], r.SpanID[2], r.SpanID[7] = byte((done+i)>>16), byte((done+i)>>8), byte(done+i), 1
			r.Payload, _ = proto.MarshalOptions{Deterministic: true}.Marshal(&v1.Span{TraceId: trace[:], SpanId: r.SpanID[:], Kind: 1})
			recs[i] = r
		}
		if _, err := f.l.Append(context.Background(), "default", recs); err != nil {
			t.Fatal(err)
		}
		done += k
	}
}

// TestPagingCostsInProportionToThePage (issue 9, item 4): a page's work is
// bounded by the candidates it scans plus one look at each trace it meets,
// however many of a trace's spans fall on it. It was quadratic in the size
// of a trace whose first match lay on an earlier page.
func TestPagingCostsInProportionToThePage(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const n = 4000
	f.appendTrace(t, traceID(1), n)
	s := f.x.S
	q := Query{Model: "m"}
	hits, cursor, err := s.Traces(ctx, "default", q, 0, 1, 0)
	if err != nil || len(hits) != 1 || cursor == 0 {
		t.Fatalf("page 1 = %v, %d, %v", hits, cursor, err)
	}
	before := s.work.Load()
	hits, cursor, err = s.Traces(ctx, "default", q, cursor, 1, 0)
	if err != nil || len(hits) != 0 || cursor != 0 {
		t.Fatalf("page 2 = %v, %d, %v; want no more traces", hits, cursor, err)
	}
	if work := s.work.Load() - before; work > 3*n {
		t.Errorf("page 2 read or checked %d spans for a trace of %d spans met on page 1; want at most %d", work, n, 3*n)
	}
}

// TestTraceOfManySpans (issue 9, item 4): a trace of more than 100,000
// spans queries and exports like any other. It takes a minute under the
// race detector, so CI (which runs -race) skips it; run it with
// `go test ./audit -run TestTraceOfManySpans`.
func TestTraceOfManySpans(t *testing.T) {
	if raceEnabled {
		t.Skip("too slow under the race detector; run without -race")
	}
	ctx := context.Background()
	f := newFixture(t)
	const n = 100_001
	start := time.Now()
	f.appendTrace(t, traceID(7), n)
	t.Logf("appended %d spans in %v", n, time.Since(start))
	s := f.x.S
	start = time.Now()
	for _, q := range []Query{{TraceID: traceID(7)}, {Model: "m"}, {}} {
		var got []TraceHit
		for cursor := uint64(0); ; {
			hits, next, err := s.Traces(ctx, "default", q, cursor, 10, 0)
			if err != nil {
				t.Fatalf("Traces(%+v) = %v", q, err)
			}
			got = append(got, hits...)
			if next == 0 {
				break
			}
			cursor = next
		}
		if len(got) != 1 || got[0].TraceID != traceID(7) || got[0].FirstIndex != 0 {
			t.Errorf("Traces(%+v) = %v", q, got)
		}
	}
	t.Logf("three queries in %v", time.Since(start))
	if _, err := s.DecisionPath(ctx, "default", traceID(7)); !errors.Is(err, ErrTraceTooLarge) {
		t.Errorf("DecisionPath() = %v, want ErrTraceTooLarge", err)
	}
	start = time.Now()
	var buf bytes.Buffer
	m, err := f.x.Export(ctx, ExportRequest{Tenant: "default", Query: Query{TraceID: traceID(7)}, Selector: bundle.Selector{TraceID: fmt.Sprintf("%x", traceID(7))}}, &buf)
	if err != nil {
		t.Fatalf("Export() = %v", err)
	}
	t.Logf("exported %d entries (%d bytes) in %v", len(m.Entries), buf.Len(), time.Since(start))
	if len(m.Entries) != n {
		t.Errorf("the bundle holds %d entries, want %d", len(m.Entries), n)
	}
	rep := bundle.Verify(bytes.NewReader(buf.Bytes()), int64(buf.Len()), f.verifier(t), nil)
	if !rep.OK() {
		t.Errorf("the bundle does not verify: %v", rep.Failed())
	}
}

// cancelingWriter cancels a context once it has taken n bytes.
type cancelingWriter struct {
	n      int
	cancel context.CancelFunc
}

func (w *cancelingWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n <= 0 {
		w.cancel()
	}
	return len(p), nil
}

// TestExportAndQueryStopWhenTheCallerGivesUp: a caller that goes away in
// the middle of an export or a query stops it at the next batch.
func TestExportAndQueryStopWhenTheCallerGivesUp(t *testing.T) {
	f := newFixture(t)
	f.appendTrace(t, traceID(3), 5000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelingWriter{n: 64 << 10, cancel: cancel}
	_, err := f.x.Export(ctx, ExportRequest{Tenant: "default", Query: Query{TraceID: traceID(3)}}, w)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Export() after the caller gave up = %v, want context.Canceled", err)
	}
	if w.n < -(4 << 20) {
		t.Errorf("Export() went on for %d bytes after the caller gave up", -w.n)
	}
	if _, _, err := f.x.S.Traces(ctx, "default", Query{Model: "m"}, 1, 10, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Traces() after the caller gave up = %v, want context.Canceled", err)
	}
}

// TestExportCanceledAtAnyBatchFails: entry files are prepared on one
// goroutine while another adds them; a caller that gives up while they
// are written gets context.Canceled, never a signed bundle that lacks
// entries. The trace is too big for the report, which would read its
// entries again (and see the cancellation itself), and references no
// version.
func TestExportCanceledAtAnyBatchFails(t *testing.T) {
	f := newFixture(t)
	f.appendTrace(t, traceID(4), bundle.MaxReportSpans+100) // about 2.5 MB of entry files
	for _, after := range []int{1, 64 << 10, 512 << 10, 1 << 20} {
		for try := 0; try < 2; try++ {
			ctx, cancel := context.WithCancel(context.Background())
			w := &cancelingWriter{n: after, cancel: cancel}
			m, err := f.x.Export(ctx, ExportRequest{Tenant: "default", Query: Query{TraceID: traceID(4)}}, w)
			cancel()
			if !errors.Is(err, context.Canceled) {
				entries := -1
				if m != nil {
					entries = len(m.Entries)
				}
				t.Fatalf("Export() canceled after %d bytes = %v (%d entries), want context.Canceled", after, err, entries)
			}
		}
	}
}
