package ledger

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestCloseTraces: a closed trace refuses new spans (with the erasure
// request's id), across a restart; a byte-identical retry of a span
// committed before the close still gets its receipt; other traces and
// other tenants are not affected; the trace term is the ledger's own.
func TestCloseTraces(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	ctx := context.Background()
	if _, err := l.CreateTenant(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	first := span(1, "before the erasure")
	first.Subject = ""
	rs := mustAppend(t, l, "default", first)
	if err := l.CloseTraces(ctx, "default", [][16]byte{first.TraceID}, "dsr-7"); err != nil {
		t.Fatal(err)
	}
	later := span(2, "after the erasure")
	later.TraceID = first.TraceID
	elsewhere := span(300, "another trace")
	for _, restart := range []bool{false, true} {
		if restart {
			l.Close()
			l = openTest(t, dir)
		}
		_, err := l.Append(ctx, "default", []Record{later})
		var re *RecordError
		var tc *TraceClosedError
		if !errors.As(err, &re) || re.Record != 0 || !errors.As(err, &tc) || strings.Contains(err.Error(), "dsr-7") || tc.Trace != first.TraceID {
			t.Errorf("restart %v: Append(a span of a closed trace) = %v, want a RecordError for record 0 wrapping a TraceClosedError that does not name the request dsr-7", restart, err)
		}
		if got, err := l.Append(ctx, "default", []Record{first}); err != nil || !got[0].Duplicate || got[0].Index != rs[0].Index {
			t.Errorf("restart %v: retry of a span committed before the close = %+v, %v; want its original receipt", restart, got, err)
		}
		if by, closed, err := l.ClosedBy(ctx, "default", first.TraceID); err != nil || !closed || by != "dsr-7" {
			t.Errorf("restart %v: ClosedBy = %q, %v, %v", restart, by, closed, err)
		}
		if _, err := l.Append(ctx, "other", []Record{later}); err != nil {
			t.Errorf("restart %v: the same trace id in another tenant = %v", restart, err)
		}
		mustAppend(t, l, "default", elsewhere)
	}
	l.Close()

	l = openTest(t, t.TempDir())
	defer l.Close()
	bad := span(1, "x")
	bad.Terms = []Term{{Field: TraceField, Value: bad.TraceID[:]}}
	if _, err := l.Append(ctx, "default", []Record{bad}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Append(a record carrying the trace term) = %v, want ErrInvalid", err)
	}
	if err := l.CloseTraces(ctx, "default", [][16]byte{bad.TraceID}, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("CloseTraces without a request id = %v, want ErrInvalid", err)
	}
}
