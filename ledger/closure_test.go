package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
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

// TestClosedMarksMirror: the writer's mirror of the closed marks
// (closedCache) answers exactly what the marks in the database say, with
// the mirror in use and past its bound (each trace's mark read): through
// closings and reopenings by the writer, and a mark with its epoch written
// by another writer of the database, as a second node would.
func TestClosedMarksMirror(t *testing.T) {
	for _, bound := range []int{1 << 16, 1} {
		t.Run(fmt.Sprint("bound=", bound), func(t *testing.T) {
			defer func(b int) { maxClosedCached = b }(maxClosedCached)
			maxClosedCached = bound
			l := openTest(t, t.TempDir())
			defer l.Close()
			ctx := context.Background()
			next := 100
			appendTo := func(trace uint64) error {
				next++
				r := span(next, "a piece")
				binary.BigEndian.PutUint64(r.TraceID[8:], trace)
				_, err := l.Append(ctx, "default", []Record{r})
				return err
			}
			traceID := func(trace uint64) [16]byte {
				r := span(1, "")
				binary.BigEndian.PutUint64(r.TraceID[8:], trace)
				return r.TraceID
			}
			want := func(step string, open map[uint64]bool) {
				t.Helper()
				for trace, isOpen := range open {
					err := appendTo(trace)
					var tc *TraceClosedError
					if isOpen && err != nil || !isOpen && !errors.As(err, &tc) {
						t.Errorf("%s: Append(a span of trace %d) = %v, want open %v", step, trace, err, isOpen)
					}
				}
			}
			want("nothing closed", map[uint64]bool{1: true, 2: true, 3: true})
			if err := l.CloseTraces(ctx, "default", [][16]byte{traceID(1), traceID(2)}, "r1"); err != nil {
				t.Fatal(err)
			}
			want("1 and 2 closed by r1", map[uint64]bool{1: false, 2: false, 3: true})
			if err := l.OpenTraces(ctx, "default", [][16]byte{traceID(1)}, "r2"); err != nil {
				t.Fatal(err)
			}
			want("reopened by another request", map[uint64]bool{1: false, 2: false})
			if err := l.OpenTraces(ctx, "default", [][16]byte{traceID(1)}, "r1"); err != nil {
				t.Fatal(err)
			}
			want("1 reopened by r1", map[uint64]bool{1: true, 2: false, 3: true})
			// Another writer of the database closes trace 3: its mark and
			// the epoch it advances, in one transaction.
			if err := l.db.Update(func(txn *badger.Txn) error {
				epoch, err := readEpoch(txn, metaClosedEpoch)
				if err != nil {
					return err
				}
				if err := txn.Set(closedTraceKey(1, traceID(3)), []byte("r3")); err != nil {
					return err
				}
				return txn.Set(metaClosedEpoch, binary.BigEndian.AppendUint64(nil, epoch+1))
			}); err != nil {
				t.Fatal(err)
			}
			want("3 closed by another writer", map[uint64]bool{1: true, 2: false, 3: false, 4: true})
		})
	}
}
