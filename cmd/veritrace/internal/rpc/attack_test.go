package rpc

// Attack tests of the issue-8 write path: each fails on the code as it
// stands and shows one defect (see the report of branch attack8).

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// Valid load over Connect: 32 clients each send one 1,000-span batch whose
// spans are of distinct end users (a support bot's traffic, or any tenant's
// first batches of a new UTC day, when every subject needs a new data key).
// Append creates the batch's data keys before it queues; the writer stores
// every pending key in one key-database transaction, which Badger refuses
// as too big past about 8,700 keys, and the writer then fails the whole
// ledger: every append and every recorded read answers unavailable, and
// health says NOT_SERVING, until an operator restarts the server.
func TestConcurrentBatchesOfNewSubjectsKeepTheLedgerServing(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, 0)
	c := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	const clients = 32
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for n := 0; n < clients; n++ {
		req := &v1.AppendSpansRequest{}
		for i := 0; i < 1000; i++ {
			sp := testSpan(0)
			binary.BigEndian.PutUint32(sp.TraceId, uint32(n+1))
			binary.BigEndian.PutUint32(sp.SpanId, uint32(i+1))
			sp.SubjectId = fmt.Sprintf("end-user-%d-%d", n, i)
			req.Spans = append(req.Spans, sp)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.ingest.AppendSpans(ctx, connect.NewRequest(req))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	var first error
	for err := range errs {
		if err != nil {
			failed++
			first = err
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d valid AppendSpans requests failed; one: %v", failed, clients, first)
	}
	if st := healthStatus(t, s.url, ""); st != "SERVING_STATUS_SERVING" {
		t.Errorf("health after valid load = %s", st)
	}
}
