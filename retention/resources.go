package retention

import (
	"context"
	"slices"

	"github.com/veritrace/veritrace/audit/bundle"
	"github.com/veritrace/veritrace/ledger/format"
)

// Chunks keptResources reads: the headers of the candidates, and a
// trace's entries, newest first.
const (
	headerChunk     = 4096
	traceProbeChunk = 256
)

// keptResources returns, among a sweep's candidates (entries of its
// expired buckets that no hold keeps and no other plan claims), the OTLP
// resource entries that stay because their trace is still kept: some
// other entry of the trace (below size, the log read when the plan began)
// still has its payload and is either in its retention period under p at
// now or held. The resource and scope are what the trace's OTLP spans and
// log records refer to, whatever class the batch that first appended them
// gave them (docs/RETENTION.md, "Resource entries").
//
// Its work is bounded per candidate: one header read for each candidate
// (a batch); a payload read for those of a resource entry's shape
// (bundle.MayBeResourceEntry); and, once per trace of a resource entry,
// one scan of the trace's identity index (ledger.SpansOfTrace) and the
// headers of its entries newest first, traceProbeChunk at a time, stopped
// at the first one in its period whose payload is there. Entries out of
// their period are checked against the holds once, all traces together.
// What it reads is the database's state when the plan is made; the plan
// commits only if no hold, tombstone or retention change came since
// (commitPlan), so it is decided again if any did.
func (s *Service) keptResources(ctx context.Context, tenant string, p *Policy, now int64, size uint64, cands []uint64) (map[uint64]bool, error) {
	byTrace := map[[16]byte][]uint64{}
	var traces [][16]byte
	for lo := 0; lo < len(cands); lo += headerChunk {
		hs, err := s.L.Headers(ctx, tenant, cands[lo:min(lo+headerChunk, len(cands))])
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			if !bundle.MayBeResourceEntry(h) {
				continue
			}
			e, err := s.L.GetEntry(ctx, tenant, h.Index)
			if err != nil {
				return nil, err
			}
			if e.Erased || !bundle.IsResourceEntry(h, e.Payload) {
				continue
			}
			if byTrace[h.TraceID] == nil {
				traces = append(traces, h.TraceID)
			}
			byTrace[h.TraceID] = append(byTrace[h.TraceID], h.Index)
		}
	}
	kept := map[uint64]bool{}
	// Entries out of their period, by trace undecided: kept if held.
	past := map[[16]byte][]uint64{}
	var all []uint64
	for _, tr := range traces {
		live, out, err := s.traceInPeriod(ctx, tenant, p, now, size, tr, byTrace[tr])
		if err != nil {
			return nil, err
		}
		if live {
			for _, i := range byTrace[tr] {
				kept[i] = true
			}
			continue
		}
		past[tr] = out
		all = append(all, out...)
	}
	if len(all) == 0 {
		return kept, nil
	}
	held, _, err := s.held(ctx, tenant, all)
	if err != nil {
		return nil, err
	}
	for tr, out := range past {
		if slices.ContainsFunc(out, func(i uint64) bool { return held[i] != nil }) {
			for _, i := range byTrace[tr] {
				kept[i] = true
			}
		}
	}
	return kept, nil
}

// traceInPeriod reports whether an entry of trace tr below size, other
// than those of self, is in its retention period under p at now and still
// has its payload; if none is, it returns those out of their period that
// still have theirs.
func (s *Service) traceInPeriod(ctx context.Context, tenant string, p *Policy, now int64, size uint64, tr [16]byte, self []uint64) (bool, []uint64, error) {
	idxs, err := s.L.SpansOfTrace(ctx, tenant, tr, size)
	if err != nil {
		return false, nil, err
	}
	idxs = slices.DeleteFunc(idxs, func(i uint64) bool { return slices.Contains(self, i) })
	var out []uint64
	for hi := len(idxs); hi > 0; hi -= traceProbeChunk {
		chunk := idxs[max(0, hi-traceProbeChunk):hi]
		hs, err := s.L.Headers(ctx, tenant, chunk)
		if err != nil {
			return false, nil, err
		}
		// Which of the chunk still have a payload (KeysOf: live).
		_, live, err := s.L.KeysOf(ctx, tenant, chunk)
		if err != nil {
			return false, nil, err
		}
		has := make(map[uint64]bool, len(live))
		for _, i := range live {
			has[i] = true
		}
		for _, h := range hs {
			if !has[h.Index] {
				continue
			}
			if inPeriod(p, h, now) {
				return true, nil, nil
			}
			out = append(out, h.Index)
		}
	}
	return false, out, nil
}

// inPeriod reports whether an entry is in its retention period under p at
// now: its class never expires, or the day after its expiry bucket's day
// (that of its appended_at) plus the class's period has not begun. The
// sweep expires buckets by the same rule.
func inPeriod(p *Policy, h *format.Header, now int64) bool {
	days, expires := p.Days(h.RetentionClass)
	day := h.AppendedAt.Unix() / 86400
	return !expires || (day+1+int64(days))*86400 > now
}
