package retention

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// piece appends one span of a trace that names no subject (an OTLP log
// event or a child span that does not repeat the end user) and returns its
// index, or the error.
func (e *env) piece(trace byte, text string) (uint64, error) {
	spanSeq++
	r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Payload: []byte(fmt.Sprintf("%s piece %d", text, spanSeq))}
	r.TraceID[0], r.TraceID[15] = trace, 1
	r.SpanID[0], r.SpanID[5], r.SpanID[6], r.SpanID[7] = 0xee, byte(spanSeq>>16), byte(spanSeq>>8), byte(spanSeq)
	rs, err := e.l.Append(context.Background(), "default", []ledger.Record{r})
	if err != nil {
		return 0, err
	}
	return rs[0].Index, nil
}

func (e *env) mustPiece(t *testing.T, trace byte, text string) uint64 {
	t.Helper()
	i, err := e.piece(trace, text)
	if err != nil {
		t.Fatalf("append a piece of trace %d = %v", trace, err)
	}
	return i
}

func (e *env) keyOf(t *testing.T, i uint64) [16]byte {
	t.Helper()
	keys, live, err := e.l.KeysOf(context.Background(), "default", []uint64{i})
	if err != nil || len(live) != 1 || len(keys) != 1 {
		t.Fatalf("KeysOf(%d) = %v, %v, %v", i, keys, live, err)
	}
	for id := range keys {
		return id
	}
	return [16]byte{}
}

func wantErased(t *testing.T, e *env, what string, idxs []uint64, want bool) {
	t.Helper()
	for j, got := range e.erased(t, idxs) {
		if got != want {
			t.Errorf("%s: entry %d erased = %v, want %v", what, idxs[j], got, want)
		}
	}
}

// TestEraseSubjectTakesItsWholeTraces: erasing a subject erases every
// piece of its traces that names no subject, sent before or after the
// span that names it (an OpenTelemetry log event sent before its span, a
// LiteLLM raw-request child), without re-sealing another trace's entries;
// a piece naming another subject stays; the traces it erased whole accept
// no later piece, across a restart, and the trace another subject's span
// keeps stays open.
func TestEraseSubjectTakesItsWholeTraces(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	before := []uint64{e.mustPiece(t, 1, "event before its span"), e.mustPiece(t, 1, "raw request")}
	root := e.spans(t, "alice", "s-1", 1, 1, false, "root")
	after := []uint64{e.mustPiece(t, 1, "late child")}
	bob := e.spans(t, "bob", "", 1, 1, false, "bob in alice's trace")
	other := []uint64{e.mustPiece(t, 2, "another trace"), e.mustPiece(t, 2, "another trace")}
	second := append(e.spans(t, "alice", "", 3, 2, false, "second trace"), e.mustPiece(t, 3, "its event"))
	otherKey := e.keyOf(t, other[0])
	if e.keyOf(t, before[0]) == otherKey || e.keyOf(t, before[0]) != e.keyOf(t, after[0]) {
		t.Fatalf("pieces without subject: trace 1 keys %x %x, trace 2 key %x; want one key per trace", e.keyOf(t, before[0]), e.keyOf(t, after[0]), otherKey)
	}

	er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "dsr-1", Subject: "alice", LegalBasis: "GDPR Art. 17", Reason: "request"})
	if err != nil {
		t.Fatal(err)
	}
	mine := slices.Concat(before, root, after, second)
	slices.Sort(mine)
	if !slices.Equal(er.Erase, mine) {
		t.Errorf("erasure of alice erased %v, want her traces' entries that name no other subject %v", er.Erase, mine)
	}
	wantErased(t, e, "alice's traces", mine, true)
	wantErased(t, e, "bob's span in alice's trace", bob, false)
	wantErased(t, e, "another trace", other, false)
	if k := e.keyOf(t, other[0]); k != otherKey {
		t.Errorf("another trace's entry was re-sealed (key %x, was %x); erasing alice must not touch it", k, otherKey)
	}
	e.verify(t)

	for _, restart := range []bool{false, true} {
		if restart {
			e.l.Close()
			e.open(t)
		}
		_, err := e.piece(3, "after the erasure")
		var tc *ledger.TraceClosedError
		if !errors.As(err, &tc) || strings.Contains(err.Error(), "dsr-1") {
			t.Errorf("restart %v: a piece of erased trace 3 = %v, want a TraceClosedError not naming the request dsr-1", restart, err)
		}
		// Trace 1 holds bob's span: it stays open, its later pieces are
		// bob's trace's (attack 11 defect 2).
		if _, err := e.piece(1, "after the erasure, bob's trace"); err != nil {
			t.Errorf("restart %v: a piece of trace 1, which bob's live span keeps open = %v", restart, err)
		}
		if _, err := e.piece(2, "still open"); err != nil {
			t.Errorf("restart %v: a piece of a trace not erased = %v", restart, err)
		}
	}
}

// TestEraseSessionTakesItsTracesEvents: a session's erasure takes the
// pieces of its traces that carry no session (OTLP events), not the
// subject's other sessions.
func TestEraseSessionTakesItsTracesEvents(t *testing.T) {
	e := newEnv(t)
	session := append(e.spans(t, "carol", "s-9", 4, 1, false, "model call"), e.mustPiece(t, 4, "event"), e.mustPiece(t, 4, "event"))
	kept := append(e.spans(t, "carol", "s-10", 5, 1, false, "other session"), e.mustPiece(t, 5, "its event"))
	if _, err := e.s.Erase(context.Background(), "default", ErasureRequest{ID: "dsr-s", Session: "s-9", LegalBasis: "GDPR Art. 17", Reason: "request"}); err != nil {
		t.Fatal(err)
	}
	wantErased(t, e, "session s-9", session, true)
	wantErased(t, e, "session s-10", kept, false)
}

// TestHoldBySubjectCoversItsWholeTraces: a hold on a subject keeps the
// pieces of its traces that name no subject, and a trace it keeps stays
// open.
func TestHoldBySubjectCoversItsWholeTraces(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	trace := append([]uint64{e.mustPiece(t, 6, "event")}, e.spans(t, "dave", "", 6, 1, false, "root")...)
	if _, _, err := e.s.PlaceHold(ctx, "default", HoldScope{Subject: "dave"}, "CASE-1", "litigation", "co"); err != nil {
		t.Fatal(err)
	}
	er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "dsr-h", TraceIDs: [][16]byte{{0: 6, 15: 1}}, LegalBasis: "GDPR Art. 17", Reason: "request"})
	if err != nil {
		t.Fatal(err)
	}
	var held []uint64
	for _, h := range er.Held {
		held = append(held, h.Index)
	}
	if len(er.Erase) != 0 || !slices.Equal(held, trace) {
		t.Errorf("erasing a trace held by its subject: erased %v, held %v; want nothing erased and %v held", er.Erase, held, trace)
	}
	wantErased(t, e, "held trace", trace, false)
	if _, err := e.piece(6, "later"); err != nil {
		t.Errorf("a piece of a held trace after an erasure it survived = %v, want it accepted", err)
	}
}

// TestEraseRacesLatePieces: pieces of a subject's trace appended while its
// erasure runs are either erased by it or refused, never left readable:
// at the worst moment (after the erasure looked at the trace, before it
// closed it) and concurrently.
func TestEraseRacesLatePieces(t *testing.T) {
	t.Run("worst moment", func(t *testing.T) {
		e := newEnv(t)
		e.spans(t, "erin", "", 7, 1, false, "root")
		var racer uint64
		testHookBeforeClose = func() { racer = e.mustPiece(t, 7, "arrives as the erasure starts") }
		defer func() { testHookBeforeClose = nil }()
		if _, err := e.s.Erase(context.Background(), "default", ErasureRequest{ID: "dsr-w", Subject: "erin", LegalBasis: "GDPR Art. 17", Reason: "request"}); err != nil {
			t.Fatal(err)
		}
		wantErased(t, e, "a piece appended before the trace was closed", []uint64{racer}, true)
	})
	t.Run("concurrent", func(t *testing.T) {
		e := newEnv(t)
		for round := range 5 {
			trace := byte(20 + round)
			subject := fmt.Sprint("frank-", round)
			e.spans(t, subject, "", trace, 1, false, "root")
			var acked []uint64
			var refused error
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					i, err := e.piece(trace, "streaming in")
					if err != nil {
						refused = err
						return
					}
					acked = append(acked, i)
				}
			})
			if _, err := e.s.Erase(context.Background(), "default", ErasureRequest{ID: fmt.Sprint("dsr-c", round), Subject: subject, LegalBasis: "GDPR Art. 17", Reason: "request"}); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if !errors.Is(refused, ledger.ErrTraceClosed) {
				t.Fatalf("round %d: the racing appender stopped with %v, want ErrTraceClosed", round, refused)
			}
			wantErased(t, e, fmt.Sprintf("round %d: %d pieces acknowledged during the erasure", round, len(acked)), acked, true)
		}
	})
}
