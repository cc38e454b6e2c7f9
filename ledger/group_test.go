package ledger

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestAppendManyConcurrentBatches: 64 concurrent appends of 100 spans each
// (what 64 exporters or SDK clients send) all succeed; the writer must
// never gather more into one transaction than Badger takes.
func TestAppendManyConcurrentBatches(t *testing.T) {
	for _, tc := range []struct{ clients, batch int }{{64, 100}, {3, MaxBatch}} {
		t.Run(fmt.Sprintf("%dx%d", tc.clients, tc.batch), func(t *testing.T) { concurrentBatches(t, tc.clients, tc.batch) })
	}
}

func concurrentBatches(t *testing.T, clients, batch int) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	payload := strings.Repeat("p", 512)
	for round := range 1 {
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				recs := make([]Record, batch)
				for i := range recs {
					n := (round*clients+c)*batch + i
					recs[i] = span(n, payload)
					recs[i].TraceID[1], recs[i].TraceID[2] = byte(n>>16), byte(n>>8)
					recs[i].SpanID[2] = byte(n >> 16)
					recs[i].Terms = []Term{{Field: 2, Value: []byte(fmt.Sprint("session-", n%50))}, {Field: 5, Value: []byte("model")}}
				}
				if _, err := l.Append(context.Background(), "default", recs); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: Append() = %v", round, err)
		}
	}
	if size, _ := l.Size(context.Background(), "default"); size != uint64(clients*batch) {
		t.Errorf("size = %d, want %d", size, clients*batch)
	}
}
