package retention

import (
	"context"

	"github.com/veritrace/veritrace/audit/bundle"
	"github.com/veritrace/veritrace/ledger/format"
)

// Chunks keptByOthers reads: the headers of the candidates, and those of
// a trace's entries (newest first) or of log records' spans.
const (
	headerChunk     = 4096
	traceProbeChunk = 256
)

// keptByOthers returns, among a sweep's candidates (entries of its expired
// buckets that no hold keeps and no other plan claims), the OTLP entries
// that stay because other entries are still kept (docs/RETENTION.md,
// "Resource entries" and "Log records"):
//
//   - a resource entry stays while its trace is kept: some other entry of
//     the trace (below size, the log read when the plan began) still has
//     its payload and is either in its retention period under p at now or
//     held. The resource and scope are what the trace's OTLP spans and log
//     records refer to, whatever class the batch that first appended them
//     gave them;
//   - a log record stays while its span is kept: the entry of its trace
//     whose span id is its parent span id (below size) still has its
//     payload and is in its period or held. A record that reached the log
//     before its span (SDKs export log records as they are emitted and
//     spans when they end) was classified by its own facts only.
//
// Its work is bounded per candidate: one header read for each candidate
// (a batch); a payload read for those of a resource entry's or a log
// record's shape (bundle.MayBeResourceEntry, bundle.MayBeLogRecordEntry);
// for a log record, one identity lookup of its span and that span's header
// (a batch); and, once per trace of a resource entry, one scan of the
// trace's identity index (ledger.SpansOfTrace) and the headers of its
// entries newest first, traceProbeChunk at a time, stopped at the first
// one in its period whose payload is there. Entries out of their period
// are checked against the holds once, all together. What it reads is the
// database's state when the plan is made; the plan commits only if no
// hold, tombstone or retention change came since (commitPlan), so it is
// decided again if any did, and again by every later sweep.
func (s *Service) keptByOthers(ctx context.Context, tenant string, p *Policy, now int64, size uint64, cands []uint64) (map[uint64]bool, error) {
	byTrace := map[[16]byte][]uint64{} // resource entries
	var traces [][16]byte
	bySpan := map[uint64][]uint64{} // log records, by their span's index
	var spans []uint64
	for lo := 0; lo < len(cands); lo += headerChunk {
		hs, err := s.L.Headers(ctx, tenant, cands[lo:min(lo+headerChunk, len(cands))])
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			res, rec := bundle.MayBeResourceEntry(h), bundle.MayBeLogRecordEntry(h)
			if !res && !rec {
				continue
			}
			e, err := s.L.GetEntry(ctx, tenant, h.Index)
			if err != nil {
				return nil, err
			}
			switch {
			case e.Erased:
			case res && bundle.IsResourceEntry(h, e.Payload):
				if byTrace[h.TraceID] == nil {
					traces = append(traces, h.TraceID)
				}
				byTrace[h.TraceID] = append(byTrace[h.TraceID], h.Index)
			case rec && bundle.IsLogRecordEntry(h, e.Payload):
				var id [32]byte
				copy(id[:16], h.TraceID[:])
				copy(id[16:24], h.ParentSpanID[:])
				span, found, err := s.L.IdentityIndex(ctx, tenant, format.KindSpan, id)
				if err != nil {
					return nil, err
				}
				if !found || span >= size {
					continue
				}
				if bySpan[span] == nil {
					spans = append(spans, span)
				}
				bySpan[span] = append(bySpan[span], h.Index)
			}
		}
	}
	kept := map[uint64]bool{}
	keep := func(idxs []uint64) {
		for _, i := range idxs {
			kept[i] = true
		}
	}
	// Entries out of their period, by trace or span undecided: kept if
	// held.
	past := map[[16]byte][]uint64{}
	var all []uint64
	for _, tr := range traces {
		live, out, err := s.traceInPeriod(ctx, tenant, p, now, size, tr, byTrace[tr])
		if err != nil {
			return nil, err
		}
		if live {
			keep(byTrace[tr])
			continue
		}
		past[tr] = out
		all = append(all, out...)
	}
	var spansPast []uint64
	for lo := 0; lo < len(spans); lo += headerChunk {
		chunk := spans[lo:min(lo+headerChunk, len(spans))]
		in, out, err := s.inPeriod(ctx, tenant, p, now, chunk)
		if err != nil {
			return nil, err
		}
		for _, i := range in {
			keep(bySpan[i])
		}
		spansPast = append(spansPast, out...)
	}
	all = append(all, spansPast...)
	if len(all) == 0 {
		return kept, nil
	}
	held, _, err := s.held(ctx, tenant, all)
	if err != nil {
		return nil, err
	}
	for tr, out := range past {
		for _, i := range out {
			if held[i] != nil {
				keep(byTrace[tr])
				break
			}
		}
	}
	for _, i := range spansPast {
		if held[i] != nil {
			keep(bySpan[i])
		}
	}
	return kept, nil
}

// traceInPeriod reports whether an entry of trace tr below size, other
// than those of self, is in its retention period under p at now and still
// has its payload; if none is, it returns those out of their period that
// still have theirs. It reads the trace's entries newest first (a recent
// entry is the likeliest in its period), traceProbeChunk at a time.
func (s *Service) traceInPeriod(ctx context.Context, tenant string, p *Policy, now int64, size uint64, tr [16]byte, self []uint64) (bool, []uint64, error) {
	idxs, err := s.L.SpansOfTrace(ctx, tenant, tr, size) // in index order
	if err != nil {
		return false, nil, err
	}
	skip := make(map[uint64]bool, len(self))
	for _, i := range self {
		skip[i] = true
	}
	others := make([]uint64, 0, len(idxs))
	for j := len(idxs) - 1; j >= 0; j-- {
		if !skip[idxs[j]] {
			others = append(others, idxs[j])
		}
	}
	var out []uint64
	for lo := 0; lo < len(others); lo += traceProbeChunk {
		in, past, err := s.inPeriod(ctx, tenant, p, now, others[lo:min(lo+traceProbeChunk, len(others))])
		if err != nil {
			return false, nil, err
		}
		if len(in) > 0 {
			return true, nil, nil
		}
		out = append(out, past...)
	}
	return false, out, nil
}

// inPeriod splits the entries idxs that still have a payload into those
// in their retention period under p at now and those out of it, in the
// order given; erased entries are in neither.
func (s *Service) inPeriod(ctx context.Context, tenant string, p *Policy, now int64, idxs []uint64) (in, out []uint64, err error) {
	hs, err := s.L.Headers(ctx, tenant, idxs)
	if err != nil {
		return nil, nil, err
	}
	// Which of them still have a payload (KeysOf: live).
	_, live, err := s.L.KeysOf(ctx, tenant, idxs)
	if err != nil {
		return nil, nil, err
	}
	has := make(map[uint64]bool, len(live))
	for _, i := range live {
		has[i] = true
	}
	for _, h := range hs {
		switch {
		case !has[h.Index]:
		case headerInPeriod(p, h, now):
			in = append(in, h.Index)
		default:
			out = append(out, h.Index)
		}
	}
	return in, out, nil
}

// headerInPeriod reports whether an entry is in its retention period under
// p at now (classInPeriod; its bucket's day is that of its appended_at).
func headerInPeriod(p *Policy, h *format.Header, now int64) bool {
	return classInPeriod(p, h.RetentionClass, h.AppendedAt.Unix()/86400, now)
}

// classInPeriod reports whether the entries of class appended on day (days
// since the epoch) are in their retention period under p at now (Unix
// seconds): the class never expires, or the day after day plus the
// class's period has not begun. The sweep expires buckets by this rule.
func classInPeriod(p *Policy, class string, day, now int64) bool {
	days, expires := p.Days(class)
	return !expires || (day+1+int64(days))*86400 > now
}
