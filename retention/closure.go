package retention

import (
	"context"
	"encoding/hex"
	"slices"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// Erasure and holds by subject or session cover whole traces
// (docs/RETENTION.md, "Traces"): every entry naming the subject (session)
// and every span of the same traces that names no subject (no session),
// whenever it arrived: an OpenTelemetry log event sent before its span, a
// child span that does not repeat the end user, a trace's resource entry.
// Spans of those traces naming another subject are that subject's and
// stay. An erasure then closes the traces it erases whole, so that no
// later piece of them is ever stored (ledger.CloseTraces); a trace it
// erases only part of (another subject's spans, or a hold's) stays open.

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

// closeTraces closes the traces an erasure plan erases, from the plan
// persisted (complete runs it before every attempt to commit, so a plan
// interrupted with its traces closed is one Resume finishes and health
// lists, never a silent closed trace): a trace is closed if the plan
// erases a span of it and neither keeps any entry of it (a hold keeps part:
// the hold may want its later pieces) nor leaves a live span of it out
// (another subject's, or another session's: their later pieces are theirs
// and are not refused on this request). Traces this request closed and
// the plan no longer erases whole (a hold placed meanwhile) are reopened.
// After closing, it selects again: a piece committed before the close is
// added to the plan (which is made again, holds read again), and a later
// one is refused; none is left readable. It returns whether the plan
// changed.
func (s *Service) closeTraces(ctx context.Context, er *Erasure) (bool, error) {
	changed := false
	for round := 0; round < maxReplans; round++ {
		in := map[uint64]bool{}
		for _, i := range selected(er) {
			in[i] = true
		}
		// The selection the plan was just made from is closed first,
		// without selecting again: the sooner the close, the fewer
		// pieces race it.
		var sel []uint64
		if round > 0 || er.traceOf == nil {
			var err error
			if sel, er.traceOf, err = s.reselect(ctx, er); err != nil {
				return false, err
			}
		}
		traceOf := er.traceOf
		var extra []uint64
		for _, i := range sel {
			if !in[i] {
				extra = append(extra, i)
			}
		}
		var err error
		if len(extra) > 0 {
			if _, extra, err = s.L.KeysOf(ctx, er.Tenant, extra); err != nil {
				return false, err
			}
		}
		if round > 0 && len(extra) == 0 {
			return changed, nil
		}
		if len(extra) > 0 {
			er.Erase = append(er.Erase, extra...)
			if _, err := s.planErasure(ctx, er); err != nil {
				return false, err
			}
			changed = true
			for _, i := range extra {
				in[i] = true
			}
		}
		shut, open, err := s.tracesToClose(ctx, er, traceOf, in)
		if err != nil {
			return false, err
		}
		if len(open) > 0 {
			if err := s.L.OpenTraces(ctx, er.Tenant, open, er.ID); err != nil {
				return false, err
			}
		}
		if len(shut) == 0 {
			return changed, nil // nothing closed: nothing to select again
		}
		if testHookBeforeClose != nil && round == 0 {
			testHookBeforeClose()
		}
		if err := s.L.CloseTraces(ctx, er.Tenant, shut, er.ID); err != nil {
			return false, err
		}
	}
	return changed, nil
}

// reselect selects again what the plan's request selects, from the plan:
// the closure of its subject or session (SelectorRef), or the spans of
// the traces of its entries. It returns the entries and their traces.
func (s *Service) reselect(ctx context.Context, er *Erasure) ([]uint64, map[uint64][16]byte, error) {
	if er.SelectorRef != "" {
		r, err := ledger.ParseTermRef(er.SelectorRef)
		if err != nil {
			return nil, nil, err
		}
		return s.L.ClosureOf(ctx, er.Tenant, r)
	}
	hs, err := s.L.Headers(ctx, er.Tenant, selected(er))
	if err != nil {
		return nil, nil, err
	}
	size, err := s.L.Size(ctx, er.Tenant)
	if err != nil {
		return nil, nil, err
	}
	var out []uint64
	traceOf := map[uint64][16]byte{}
	for _, h := range hs {
		if h == nil || h.Kind != format.KindSpan {
			continue
		}
		if _, ok := traceOf[h.Index]; ok {
			continue
		}
		idxs, err := s.L.SpansOfTrace(ctx, er.Tenant, h.TraceID, size)
		if err != nil {
			return nil, nil, err
		}
		for _, i := range idxs {
			traceOf[i] = h.TraceID
		}
		out = append(out, idxs...)
	}
	slices.Sort(out)
	return slices.Compact(out), traceOf, nil
}

// tracesToClose splits the traces of a plan's entries into those to close
// and those to leave (or make) open (closeTraces); in is the plan's
// selection.
func (s *Service) tracesToClose(ctx context.Context, er *Erasure, traceOf map[uint64][16]byte, in map[uint64]bool) (shut, open [][16]byte, err error) {
	kept := map[[16]byte]bool{}
	for _, h := range er.Held {
		if t, ok := traceOf[h.Index]; ok {
			kept[t] = true
		}
	}
	size, err := s.L.Size(ctx, er.Tenant)
	if err != nil {
		return nil, nil, err
	}
	seen := map[[16]byte]bool{}
	for _, i := range er.Erase {
		t, ok := traceOf[i]
		if !ok || seen[t] {
			continue
		}
		seen[t] = true
		if !kept[t] {
			all, err := s.L.SpansOfTrace(ctx, er.Tenant, t, size)
			if err != nil {
				return nil, nil, err
			}
			// Spans outside the plan: late pieces (closed with the trace)
			// or another subject's (which keep it open).
			if kept[t], err = s.othersIn(ctx, er, all, in); err != nil {
				return nil, nil, err
			}
		}
		if kept[t] {
			open = append(open, t)
		} else {
			shut = append(shut, t)
		}
	}
	for t := range kept {
		if !seen[t] {
			open = append(open, t)
		}
	}
	return shut, open, nil
}

// othersIn reports whether any of a trace's spans idxs outside the plan
// (in) is live and not one its selector's closure takes: another
// subject's or session's. A selection by trace takes every span.
func (s *Service) othersIn(ctx context.Context, er *Erasure, idxs []uint64, in map[uint64]bool) (bool, error) {
	if er.SelectorRef == "" {
		return false, nil
	}
	r, err := ledger.ParseTermRef(er.SelectorRef)
	if err != nil {
		return false, err
	}
	others := slices.DeleteFunc(idxs, func(i uint64) bool { return in[i] })
	if len(others) == 0 {
		return false, nil
	}
	not, err := s.L.NotTaken(ctx, er.Tenant, r, others)
	return len(not) > 0, err
}

// liveOutside reports whether any of idxs that is not in skip is live
// (its payload not erased).
func (s *Service) liveOutside(ctx context.Context, tenant string, idxs []uint64, skip map[uint64]bool) (bool, error) {
	others := slices.DeleteFunc(idxs, func(i uint64) bool { return skip[i] })
	if len(others) == 0 {
		return false, nil
	}
	_, live, err := s.L.KeysOf(ctx, tenant, others)
	return len(live) > 0, err
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
