package ledger

import (
	"context"
	"errors"
	"testing"
)

// TestReopenByALaterRequestKeepsTheFirstMark: docs/FORMAT.md says a
// reopening deletes only the marks its own request wrote ("a mark whose
// value is another request's id is left") and that "marks of committed
// erasures are never removed". Closing a trace closed already used to
// overwrite the mark with the second request's id, so when that second
// erasure was stopped by a hold and reopened its traces, it deleted the
// first erasure's mark and the trace took late pieces again. Two
// erasures close the same trace when they plan at the same time over one
// trace (a subject's and a session's, say).
func TestReopenByALaterRequestKeepsTheFirstMark(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	ctx := context.Background()
	first := span(1, "erased by dsr-a")
	mustAppend(t, l, "default", first)
	tr := [][16]byte{first.TraceID}
	if err := l.CloseTraces(ctx, "default", tr, "dsr-a"); err != nil {
		t.Fatal(err)
	}
	// A second erasure closes the same trace, then plans again (a hold)
	// and reopens what it closed.
	if err := l.CloseTraces(ctx, "default", tr, "dsr-b"); err != nil {
		t.Fatal(err)
	}
	if err := l.OpenTraces(ctx, "default", tr, "dsr-b"); err != nil {
		t.Fatal(err)
	}
	by, closed, err := l.ClosedBy(ctx, "default", first.TraceID)
	if err != nil {
		t.Fatal(err)
	}
	late := span(2, "a late piece")
	late.TraceID = first.TraceID
	_, aerr := l.Append(ctx, "default", []Record{late})
	var tc *TraceClosedError
	if !closed || by != "dsr-a" || !errors.As(aerr, &tc) {
		t.Errorf("after dsr-a closed the trace, dsr-b closed it and reopened it: ClosedBy = %q, closed %v; Append(a late piece) = %v; want the trace still closed by dsr-a and the piece refused", by, closed, aerr)
	}
}
