package retention

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// BenchmarkErase erases a subject with 10,000 entries (2 KiB payloads) that
// share their keys with nobody, and a session of 1,000 entries whose keys
// also hold 9,000 entries of the same subject that must be re-sealed.
// Baseline: reading and decrypting the same 10,000 entries. And a
// subject's 1,000 traces of 10 entries, 9 of which name no subject.
//
//	go test -run '^$' -bench Erase -benchtime 3x ./retention/
func BenchmarkErase(b *testing.B) {
	payload := make([]byte, 2048)
	fill := func(b *testing.B, e *env, subject string, sessions int) []uint64 {
		var idxs []uint64
		for n := 0; n < 10_000; n += 1000 {
			recs := make([]ledger.Record, 1000)
			for i := range recs {
				spanSeq++
				r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Subject: subject, Payload: payload,
					Terms: []ledger.Term{{Field: sessionField, Value: []byte(fmt.Sprint("s", (n+i)%sessions))}}}
				r.TraceID[0], r.TraceID[1], r.TraceID[2] = 9, byte(spanSeq>>8), byte(spanSeq)
				r.SpanID[0], r.SpanID[1], r.SpanID[7] = byte(spanSeq>>16), byte(spanSeq>>8), byte(spanSeq)
				recs[i] = r
			}
			rs, err := e.l.Append(context.Background(), "default", recs)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range rs {
				idxs = append(idxs, r.Index)
			}
		}
		return idxs
	}
	ctx := context.Background()
	b.Run("subject-10k", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			e := newEnvB(b)
			fill(b, e, "subject", 1)
			b.StartTimer()
			if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "b", Subject: "subject", LegalBasis: "x", Reason: "y"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("session-1k-reseal-9k", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			e := newEnvB(b)
			fill(b, e, "subject", 10)
			b.StartTimer()
			er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "b", Session: "s3", LegalBasis: "x", Reason: "y"})
			if err != nil || len(er.Erase) != 1000 {
				b.Fatal(err)
			}
		}
	})
	// Whole traces: 1,000 traces of the subject, each a span naming it and
	// 9 pieces naming no subject (events, children: trace keys).
	b.Run("subject-1k-traces-10k-entries", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			e := newEnvB(b)
			for n := 0; n < 10_000; n += 1000 {
				recs := make([]ledger.Record, 1000)
				for j := range recs {
					spanSeq++
					r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Payload: payload}
					if j%10 == 0 {
						r.Subject = "subject"
					}
					r.TraceID[0], r.TraceID[1], r.TraceID[2] = 8, byte((n+j)/10>>8), byte((n+j)/10)
					r.SpanID[0], r.SpanID[1], r.SpanID[7] = byte(spanSeq>>16), byte(spanSeq>>8), byte(spanSeq)
					recs[j] = r
				}
				if _, err := e.l.Append(ctx, "default", recs); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "b", Subject: "subject", LegalBasis: "x", Reason: "y"})
			if err != nil || len(er.Erase) != 10_000 {
				b.Fatalf("Erase = %d entries, %v", len(er.Erase), err)
			}
		}
	})
	b.Run("baseline-read-10k", func(b *testing.B) {
		e := newEnvB(b)
		idxs := fill(b, e, "subject", 1)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			for _, x := range idxs {
				if _, err := e.l.GetEntry(ctx, "default", x); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

var (
	sweepKeys    = flag.Int("sweep.keys", 100_000, "BenchmarkSweepUnderLoad: expired data keys (one subject and entry each) the sweep destroys")
	sweepClients = flag.Int("sweep.clients", 16, "BenchmarkSweepUnderLoad: appending clients")
	sweepBatch   = flag.Int("sweep.batch", 100, "BenchmarkSweepUnderLoad: spans per append")
	sweepWindow  = flag.Duration("sweep.window", 5*time.Second, "BenchmarkSweepUnderLoad: length of the measuring windows before and after the sweep")
)

// BenchmarkSweepUnderLoad: a sweep destroys -sweep.keys expired data keys
// (one subject and one 2 KiB entry each, in one expiry bucket) while
// -sweep.clients goroutines append batches of -sweep.batch 2 KiB spans
// (subject, session and model terms, 1,000 subjects) through Ledger.Append.
// The clock is injected: the keys are written on day 0 and swept on day
// 200, the appends are of day 200. It reports the append throughput in a
// window before the sweep, during it and in a window after it (the
// baseline is the mean of before and after, same run), the ratio, the
// sweep's duration and the failed appends, which must be none.
//
//	go test -run '^$' -bench SweepUnderLoad -benchtime 1x -timeout 30m ./retention/
func BenchmarkSweepUnderLoad(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := newEnvB(b)
		var seq atomic.Uint64
		payload := make([]byte, 2048)
		e.manyKeys(b, "default", *sweepKeys, &seq, payload)
		e.clock.Add(200 * Day)

		var acked, failed atomic.Int64
		var first atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := 0; c < *sweepClients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					recs := make([]ledger.Record, *sweepBatch)
					for j := range recs {
						k := seq.Add(1)
						subject := fmt.Sprint("live-", k%1000)
						r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Subject: subject, Payload: payload,
							Terms: []ledger.Term{{Field: sessionField, Value: []byte("session-" + subject)}, {Field: 5, Value: []byte("model")}}}
						binary.BigEndian.PutUint64(r.TraceID[:], k)
						binary.BigEndian.PutUint64(r.SpanID[:], k)
						recs[j] = r
					}
					if _, err := e.l.Append(ctx, "default", recs); err != nil {
						failed.Add(1)
						first.CompareAndSwap(nil, err.Error())
						continue
					}
					acked.Add(int64(len(recs)))
				}
			}()
		}
		rate := func(d time.Duration) float64 {
			a0, t0 := acked.Load(), time.Now()
			time.Sleep(d)
			return float64(acked.Load()-a0) / time.Since(t0).Seconds()
		}
		rate(time.Second) // warm-up: the day's new data keys
		before := rate(*sweepWindow)
		a0, t0 := acked.Load(), time.Now()
		b.StartTimer()
		res, err := e.s.Sweep(ctx, "default")
		b.StopTimer()
		took := time.Since(t0)
		during := float64(acked.Load()-a0) / took.Seconds()
		after := rate(*sweepWindow)
		close(stop)
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
		if res.Erased != *sweepKeys {
			b.Errorf("Sweep erased %d entries, want %d", res.Erased, *sweepKeys)
		}
		if n := failed.Load(); n > 0 {
			b.Errorf("%d appends failed, first: %v", n, first.Load())
		}
		base := (before + after) / 2
		b.ReportMetric(took.Seconds(), "sweep-s")
		b.ReportMetric(before, "before-spans/s")
		b.ReportMetric(during, "during-spans/s")
		b.ReportMetric(after, "after-spans/s")
		b.ReportMetric(100*during/base, "during-%")
		b.ReportMetric(float64(failed.Load()), "failed-appends")
		e.l.Close()
	}
}
