package retention

import (
	"context"
	"encoding/hex"
	"slices"

	"github.com/veritrace/veritrace/ledger"
)

// Erasure and holds by subject or session cover whole traces
// (docs/RETENTION.md, "Traces"): every entry naming the subject (session)
// and every span of the same traces that names no subject (no session),
// whenever it arrived: an OpenTelemetry log event sent before its span, a
// child span that does not repeat the end user, a trace's resource entry.
// Spans of those traces naming another subject are that subject's and
// stay. An erasure then closes the traces it erased, so that no later
// piece of them is ever stored (ledger.CloseTraces).

// selectEntries returns the entries an erasure request selects and the
// trace of each span among them.
func (s *Service) selectEntries(ctx context.Context, tenant string, req ErasureRequest) ([]uint64, map[uint64][16]byte, error) {
	switch {
	case req.Subject != "":
		return s.L.Closure(ctx, tenant, ledger.Term{Field: ledger.SubjectField, Value: []byte(req.Subject)})
	case req.Session != "":
		return s.L.Closure(ctx, tenant, ledger.Term{Field: s.SessionField, Value: []byte(req.Session)})
	}
	size, err := s.L.Size(ctx, tenant)
	if err != nil {
		return nil, nil, err
	}
	var out []uint64
	traceOf := map[uint64][16]byte{}
	for _, t := range req.TraceIDs {
		idxs, err := s.L.SpansOfTrace(ctx, tenant, t, size)
		if err != nil {
			return nil, nil, err
		}
		for _, i := range idxs {
			traceOf[i] = t
		}
		out = append(out, idxs...)
	}
	slices.Sort(out)
	return slices.Compact(out), traceOf, nil
}

// closeTraces closes the traces an erasure request would erase: those of
// its live selected entries of which no entry is held (a trace a hold
// keeps part of stays open: the hold may want its later pieces). It runs
// before the plan's entries are listed, so that a piece committed before
// the close is in the plan and any later one is refused: none is left
// readable. A crash after it and before the plan is stored leaves the
// traces closed and their data in place until the request is sent again.
func (s *Service) closeTraces(ctx context.Context, tenant string, req ErasureRequest) error {
	targets, traceOf, err := s.selectEntries(ctx, tenant, req)
	if err != nil {
		return err
	}
	_, live, err := s.L.KeysOf(ctx, tenant, targets)
	if err != nil || len(live) == 0 {
		return err
	}
	held, err := s.held(ctx, tenant, live)
	if err != nil {
		return err
	}
	kept := map[[16]byte]bool{}
	for i := range held {
		if t, ok := traceOf[i]; ok {
			kept[t] = true
		}
	}
	var traces [][16]byte
	for _, i := range live {
		if t, ok := traceOf[i]; ok && !kept[t] {
			traces = append(traces, t)
			kept[t] = true // once
		}
	}
	if len(traces) == 0 {
		return nil
	}
	if testHookBeforeClose != nil {
		testHookBeforeClose()
	}
	return s.L.CloseTraces(ctx, tenant, traces, req.ID)
}

// testHookBeforeClose, when set by tests, runs after closeTraces selected
// the traces and before they are closed.
var testHookBeforeClose func()

// holdCovers returns the entries a subject or session hold covers (the
// same closure an erasure selects), or a trace hold's.
func (s *Service) holdCovers(ctx context.Context, tenant string, sc HoldScope, size uint64) ([]uint64, error) {
	switch {
	case sc.Subject != "":
		idxs, _, err := s.L.Closure(ctx, tenant, ledger.Term{Field: ledger.SubjectField, Value: []byte(sc.Subject)})
		return idxs, err
	case sc.Session != "":
		idxs, _, err := s.L.Closure(ctx, tenant, ledger.Term{Field: s.SessionField, Value: []byte(sc.Session)})
		return idxs, err
	}
	var t [16]byte
	if _, err := hex.Decode(t[:], []byte(sc.TraceID)); err != nil {
		return nil, err
	}
	return s.L.SpansOfTrace(ctx, tenant, t, size)
}
