package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/veritrace/veritrace/ledger/format"
)

// Benchmarks of appends that need new data keys (issue 8, defects 1 and 7):
//
//	go test -run '^$' -bench NewKeys -benchtime 20x ./ledger/
//	go test -run '^$' -bench DuringDropPrefix -benchtime 20000x ./ledger/

// BenchmarkAppendNewKeys: 16 writers append 1,000-span batches, each span
// of its own new subject (a new data key each: a support bot's traffic, or
// every tenant's first batches of a UTC day), against the same batches of
// 1,000 subjects whose keys exist (baseline). b.N batches; entries/s and
// failed batches are reported.
func BenchmarkAppendNewKeys(b *testing.B) {
	payload := benchPayload()[:512]
	for _, newKeys := range []bool{true, false} {
		name := "existing-keys"
		if newKeys {
			name = "new-keys"
		}
		b.Run(name, func(b *testing.B) {
			l := openTest(b, b.TempDir())
			defer l.Close()
			ctx := context.Background()
			batch := func(n uint64) []Record {
				recs := make([]Record, MaxBatch)
				for i := range recs {
					subject := fmt.Sprint("user-", i)
					if newKeys {
						subject = fmt.Sprint("user-", n, "-", i)
					}
					r := Record{Kind: format.KindSpan, SubKind: 1, Subject: subject, Payload: payload}
					binary.BigEndian.PutUint64(r.TraceID[:], n+1)
					binary.BigEndian.PutUint64(r.SpanID[:], uint64(i+1))
					recs[i] = r
				}
				return recs
			}
			if !newKeys {
				if _, err := l.Append(ctx, "default", batch(0)); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Uint64
			var failed atomic.Int64
			var first atomic.Value
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < 16; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := next.Add(1); n <= uint64(b.N); n = next.Add(1) {
						if _, err := l.Append(ctx, "default", batch(n)); err != nil {
							failed.Add(1)
							first.CompareAndSwap(nil, err.Error())
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N*MaxBatch)/time.Since(start).Seconds(), "entries/s")
			b.ReportMetric(float64(failed.Load()), "failed-batches")
			if f := first.Load(); f != nil {
				b.Logf("first failure: %v", f)
			}
		})
	}
}

// BenchmarkAppendDuringDropPrefix: 16 writers append single spans of
// subjects whose keys exist while one more appends spans of new subjects
// (new keys) and, in "drops", the key store runs DropPrefix after
// DropPrefix (as an erasure or sweep destroying keys does; each flushes
// the key store's memtable). entries/s counts the existing-key appends;
// "no-drops" is the baseline in the same run.
func BenchmarkAppendDuringDropPrefix(b *testing.B) {
	payload := benchPayload()
	for _, drops := range []bool{true, false} {
		name := "no-drops"
		if drops {
			name = "drops"
		}
		b.Run(name, func(b *testing.B) {
			l := openTest(b, b.TempDir())
			defer l.Close()
			ctx := context.Background()
			warm := make([]Record, 1000)
			for i := range warm {
				warm[i] = subjectSpan(i+1, fmt.Sprint("known-", i), "x")
				warm[i].TraceID[0] = 0xaa
			}
			if _, err := l.Append(ctx, "default", warm); err != nil {
				b.Fatal(err)
			}
			stop := make(chan struct{})
			var bg sync.WaitGroup
			var dropsDone, newKeyAppends atomic.Int64
			bg.Add(1)
			go func() { // new subjects, one at a time
				defer bg.Done()
				for n := uint64(1); ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					r := Record{Kind: format.KindSpan, SubKind: 1, Subject: fmt.Sprint("new-", n), Payload: payload}
					r.TraceID[0] = 0xbb
					binary.BigEndian.PutUint64(r.SpanID[:], n)
					if _, err := l.Append(ctx, "default", []Record{r}); err == nil {
						newKeyAppends.Add(1)
					}
				}
			}()
			if drops {
				bg.Add(1)
				go func() {
					defer bg.Done()
					for n := 0; ; n++ {
						select {
						case <-stop:
							return
						default:
						}
						// Some material of its own to drop, so that each drop
						// flushes the memtable and rewrites a table.
						p := []byte{0x7e, byte(n >> 8), byte(n)}
						if err := l.keys.update(l.quit, "bench", func(txn *badger.Txn) error { return txn.Set(append(p, 0), make([]byte, 4096)) }); err != nil {
							return
						}
						if err := l.keys.dropPrefix(p); err != nil {
							return
						}
						dropsDone.Add(1)
					}
				}()
			}
			var next atomic.Uint64
			var failed atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(benchValueSize)
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < 16; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := next.Add(1); n <= uint64(b.N); n = next.Add(1) {
						r := Record{Kind: format.KindSpan, SubKind: 1, Subject: fmt.Sprint("known-", n%1000), Payload: payload}
						binary.BigEndian.PutUint64(r.TraceID[:], n)
						binary.BigEndian.PutUint64(r.SpanID[:], n)
						if _, err := l.Append(ctx, "default", []Record{r}); err != nil {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			elapsed := time.Since(start).Seconds()
			close(stop)
			bg.Wait()
			b.ReportMetric(float64(b.N)/elapsed, "entries/s")
			b.ReportMetric(float64(failed.Load()), "failed")
			b.ReportMetric(float64(dropsDone.Load())/elapsed, "drops/s")
			b.ReportMetric(float64(newKeyAppends.Load())/elapsed, "new-key-appends/s")
		})
	}
}
