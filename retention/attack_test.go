package retention

// Attack tests of the issue-8 write path: each fails on the code as it
// stands and shows one defect (see the report of branch attack8).

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// appendSubject appends n spans of one subject in batches of 1000 and
// returns the index of the last.
func (e *env) appendSubject(t *testing.T, subject string, n int, trace uint32) uint64 {
	t.Helper()
	var last uint64
	for done := 0; done < n; {
		recs := make([]ledger.Record, min(ledger.MaxBatch, n-done))
		for i := range recs {
			r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Subject: subject, Payload: []byte("p")}
			binary.BigEndian.PutUint32(r.TraceID[:], trace)
			binary.BigEndian.PutUint32(r.TraceID[4:], uint32(done/ledger.MaxBatch))
			binary.BigEndian.PutUint32(r.SpanID[:], uint32(i+1))
			recs[i] = r
		}
		rs, err := e.l.Append(context.Background(), "default", recs)
		if err != nil {
			t.Fatal(err)
		}
		last = rs[len(rs)-1].Index
		done += len(recs)
	}
	return last
}

// A sweep (or an erasure) destroys the keys first and appends its
// tombstone afterwards, as one record whose payload lists every erased
// and every held entry, with no bound. Once that payload is above what
// one Append takes (64 MiB of values), the tombstone is refused
// (InvalidArgument): the payloads are gone with no tombstone naming them,
// the plan stays "executing", and Resume, which serve runs before
// serving, fails the same way at every start: the server cannot start
// again. Here the tombstone is large because of a hold whose case
// reference is the largest the API takes (1,024 bytes, escaped by JSON to
// 6 KiB); without holds a sweep reaches the limit at about 745,000 expired
// entries (90 bytes each), one busy tenant-day.
func TestSweepTombstoneTooLargeLeavesErasureWithoutTombstone(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	caseRef := strings.Repeat("<", 1024)
	if _, _, err := e.s.PlaceHold(ctx, "default", HoldScope{Subject: "held"}, caseRef, "litigation", "co"); err != nil {
		t.Fatal(err)
	}
	e.appendSubject(t, "held", 12000, 1)
	gone := e.appendSubject(t, "expiring", 1, 2)
	e.clock.Add(200 * Day)

	_, err := e.s.Sweep(ctx, "default")
	if err != nil {
		t.Errorf("Sweep() = %v", err)
	}
	en, gerr := e.l.GetEntry(ctx, "default", gone)
	if gerr != nil {
		t.Fatal(gerr)
	}
	if en.Erased && en.ErasedBy == nil {
		t.Errorf("entry %d: erased, and no tombstone names it", gone)
	}
	// The restart: serve runs Resume before serving.
	e.l.Close()
	e.open(t)
	if err := e.s.Resume(ctx); err != nil {
		t.Errorf("Resume() at start-up = %v: serve refuses to start", err)
	}
}
