package retention

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/veritrace/veritrace/ledger"
)

// An erasure closes its traces only once its plan is stored, so that a
// caller who gives up (or a process that stops) after the close and before
// the commit leaves a plan that the health check lists and Resume
// finishes: never a closed trace with its data readable and nothing
// showing it (attack 11, suspicion a).
func TestErasureStoppedAfterCloseIsListedAndFinished(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t)
	idxs := append(e.spans(t, "x", "", 1, 2, false, "root"), e.mustPiece(t, 1, "event"))
	testHookBeforeClose = cancel // the caller gives up as the traces close
	testHookBeforeCommit = func(*Erasure, int) error { return errors.New("stopped") }
	t.Cleanup(func() { testHookBeforeClose, testHookBeforeCommit = nil, nil })
	if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "r1", Subject: "x", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}); err == nil {
		t.Fatal("Erase() stopped before its commit = nil")
	}
	_, err := e.piece(1, "later")
	if !errors.Is(err, ledger.ErrTraceClosed) {
		t.Fatalf("a piece of the trace after the close = %v, want ErrTraceClosed", err)
	}
	bg := context.Background()
	er, err := e.s.ErasureStatus(bg, "default", "r1")
	if err != nil || er.State != "executing" {
		t.Fatalf("a trace is closed, and its erasure's plan = %+v, %v; want it stored, executing", er, err)
	}
	if got := e.s.Unfinished(); !slices.Equal(got, []string{"default/r1"}) {
		t.Errorf("Unfinished() = %v, want [default/r1]: the closed trace's data is readable and health must show why", got)
	}
	wantErased(t, e, "before Resume", idxs, false)
	testHookBeforeCommit = nil
	e.l.Close()
	e.open(t)
	if err := e.s.Resume(bg); err != nil || len(e.s.Unfinished()) != 0 {
		t.Fatalf("Resume() = %v, unfinished %v", err, e.s.Unfinished())
	}
	wantErased(t, e, "after Resume", idxs, true)
}

// A trace hold placed while an erasure plans keeps the trace open
// (OpenTraces deletes only the marks of the request that made them): a
// mark another erasure made stays.
func TestOpenTracesLeavesAnotherRequestsMark(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "x", "", 9, 1, false, "root")
	var tr [16]byte
	tr[0], tr[15] = 9, 1
	if err := e.l.CloseTraces(ctx, "default", [][16]byte{tr}, "other"); err != nil {
		t.Fatal(err)
	}
	if err := e.l.OpenTraces(ctx, "default", [][16]byte{tr}, "mine"); err != nil {
		t.Fatal(err)
	}
	if by, closed, err := e.l.ClosedBy(ctx, "default", tr); err != nil || !closed || by != "other" {
		t.Errorf("after OpenTraces by another request: ClosedBy = %q, %v, %v; want closed by other", by, closed, err)
	}
	if err := e.l.OpenTraces(ctx, "default", [][16]byte{tr}, "other"); err != nil {
		t.Fatal(err)
	}
	if _, closed, err := e.l.ClosedBy(ctx, "default", tr); err != nil || closed {
		t.Errorf("after OpenTraces by the request that closed it: closed = %v, %v", closed, err)
	}
	if _, err := e.piece(9, "reopened"); err != nil {
		t.Errorf("a piece of a reopened trace = %v", err)
	}
}
