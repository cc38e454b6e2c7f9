package retention

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// manyKeys appends n spans of n subjects (n data keys) in batches of at
// most 1000, at the environment's current time.
func (e *env) manyKeys(tb testing.TB, tenant string, n int, seq *atomic.Uint64, payload []byte) {
	tb.Helper()
	for done := 0; done < n; {
		recs := make([]ledger.Record, min(ledger.MaxBatch, n-done))
		for i := range recs {
			k := seq.Add(1)
			r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Subject: fmt.Sprint("subject-", k), Payload: payload}
			binary.BigEndian.PutUint64(r.TraceID[:], k)
			binary.BigEndian.PutUint64(r.SpanID[:], k)
			recs[i] = r
		}
		if _, err := e.l.Append(context.Background(), tenant, recs); err != nil {
			tb.Fatal(err)
		}
		done += len(recs)
	}
}

// Defect 5 of issue 8: a sweep destroying many keys made concurrent
// appends fail (one DropPrefix per key, each blocking the key store's
// writes). Appends, including ones that need new keys, never fail now.
func TestAppendsNeverFailDuringASweep(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	var seq atomic.Uint64
	e.manyKeys(t, "default", 3000, &seq, []byte("expiring payload"))
	e.clock.Add(200 * Day)
	var wg sync.WaitGroup
	var failed, acked atomic.Int64
	var first atomic.Value
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// New subjects: every append needs new data keys.
				recs := make([]ledger.Record, 10)
				for i := range recs {
					k := seq.Add(1)
					recs[i] = ledger.Record{Kind: format.KindSpan, SubKind: 1, Subject: fmt.Sprint("subject-", k), Payload: []byte("live payload")}
					binary.BigEndian.PutUint64(recs[i].TraceID[:], k)
					binary.BigEndian.PutUint64(recs[i].SpanID[:], k)
				}
				if _, err := e.l.Append(ctx, "default", recs); err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				acked.Add(1)
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	res, err := e.s.Sweep(ctx, "default")
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Erased != 3000 {
		t.Errorf("Sweep erased %d entries, want 3000", res.Erased)
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d appends failed during the sweep, first: %v", n, n+acked.Load(), first.Load())
	}
	if acked.Load() == 0 {
		t.Error("no append ran during the sweep")
	}
	e.verify(t)
}
