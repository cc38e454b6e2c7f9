package ledger

// Attack tests of the issue-8 write path: each fails on the code as it
// stands and shows one defect (see the report of branch attack8).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/veritrace/veritrace/ledger/format"
)

// distinctSubjects makes n spans of one request, each of its own subject:
// each needs a new data key (a new subject, or any subject on a new day).
func distinctSubjects(req, n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		r := Record{Kind: format.KindSpan, SubKind: 1, Subject: fmt.Sprintf("subject-%d-%d", req, i), Payload: []byte("p")}
		binary.BigEndian.PutUint32(r.TraceID[:], uint32(req+1))
		binary.BigEndian.PutUint32(r.SpanID[:], uint32(i+1))
		recs[i] = r
	}
	return recs
}

// The writer stores every pending data key in one key-database
// transaction (keyStore.flush), with no bound: keys are created by Append
// before a request is queued, so the requests waiting behind a group all
// add theirs. Ten queued 1,000-span requests of new subjects (what a busy
// tenant sends at midnight UTC, when every subject needs a key for the new
// day) need 30,000 sets in one transaction, above Badger's limit: the flush
// fails with ErrTxnTooBig and the writer fails the whole ledger for good.
func TestManyNewDataKeysDoNotFailTheLedger(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	g := newWriterGate(l)
	blocker := g.hold(t, l, "default", 1)
	const reqs = 10
	errs := make(chan error, reqs)
	for r := 0; r < reqs; r++ {
		go func() {
			_, err := l.Append(ctx, "default", distinctSubjects(r, MaxBatch))
			errs <- err
		}()
	}
	waitQueued(t, l, reqs)
	g.open()
	if err := <-blocker; err != nil {
		t.Errorf("Append(blocker) = %v", err)
	}
	for r := 0; r < reqs; r++ {
		if err := <-errs; err != nil {
			t.Errorf("Append(1000 spans of new subjects) = %v", err)
		}
	}
	if h := l.Health(); h.Failed != nil {
		t.Errorf("Health() after valid appends = failed: %v", h.Failed)
	}
	if _, err := l.Append(ctx, "default", []Record{span(7, "later")}); errors.Is(err, ErrFailed) {
		t.Errorf("a later Append = %v: the ledger refuses every write until restarted", err)
	}
}
