package audit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// Index fields of span entries. The RPC layer attaches these terms to every
// span it appends (SpanTerms); queries look them up. Session and subject
// terms come from personal data: erasure deletes them with the subject.
const (
	// Field 1 is reserved: a trace's spans are found through the ledger's
	// span identity index (SpansOfTrace), which needs no term.
	FieldSession uint8 = 2                   // session id (personal)
	FieldSubject       = ledger.SubjectField // subject id (personal); the ledger adds it for every record with a subject
	FieldVersion uint8 = 4                   // a referenced version id (32 bytes)
	FieldModel   uint8 = 5                   // request or response model name
	FieldError   uint8 = 6                   // present, with value "error", on spans whose status is an error
	// Field 7 is reserved: span kinds are matched on the header, which
	// holds them, so they need no index term.
)

// PersonalFields are the index fields that hold personal data.
var PersonalFields = []uint8{FieldSession, FieldSubject}

// SpanFacts are what a span's index terms are made of.
type SpanFacts struct {
	TraceID          [16]byte
	Session, Subject string
	Versions         [][32]byte
	Models           []string
	Error            bool
	Kind             uint8
}

// SpanTerms returns the index terms of a span.
func SpanTerms(f SpanFacts) []ledger.Term {
	var ts []ledger.Term
	if f.Session != "" {
		ts = append(ts, ledger.Term{Field: FieldSession, Value: []byte(f.Session)})
	}
	for _, v := range f.Versions {
		ts = append(ts, ledger.Term{Field: FieldVersion, Value: v[:]})
	}
	seen := map[string]bool{}
	for _, m := range f.Models {
		if m != "" && !seen[m] {
			seen[m] = true
			ts = append(ts, ledger.Term{Field: FieldModel, Value: []byte(m)})
		}
	}
	if f.Error {
		ts = append(ts, ledger.Term{Field: FieldError, Value: []byte("error")})
	}
	return ts
}

// Query selects traces. Every set field must match (AND); a trace matches
// when at least one of its spans does.
type Query struct {
	TraceID    [16]byte // zero: any
	SessionID  string
	SubjectID  string
	From, To   time.Time // appended_at in [From, To); zero: unbounded
	VersionID  [32]byte  // a prompt, policy or pipeline version the span references
	Kind       uint8     // span kind; 0: any
	Model      string    // request or response model
	ErrorsOnly bool
}

func (q *Query) terms() []ledger.Term {
	var ts []ledger.Term
	if q.SubjectID != "" {
		ts = append(ts, ledger.Term{Field: FieldSubject, Value: []byte(q.SubjectID)})
	}
	if q.SessionID != "" {
		ts = append(ts, ledger.Term{Field: FieldSession, Value: []byte(q.SessionID)})
	}
	if q.VersionID != ([32]byte{}) {
		ts = append(ts, ledger.Term{Field: FieldVersion, Value: q.VersionID[:]})
	}
	if q.Model != "" {
		ts = append(ts, ledger.Term{Field: FieldModel, Value: []byte(q.Model)})
	}
	if q.ErrorsOnly {
		ts = append(ts, ledger.Term{Field: FieldError, Value: []byte("error")})
	}
	return ts
}

// TraceHit is a trace that matches a query.
type TraceHit struct {
	TraceID [16]byte
	// FirstIndex is the index of the trace's first matching span: results
	// are ordered by it.
	FirstIndex uint64
	AppendedAt time.Time
}

// Searcher runs queries over a ledger.
type Searcher struct {
	L *ledger.Ledger
	// work counts the spans searches read or checked; decrypted, the
	// payloads DecisionPathPage decrypted. Tests bound them.
	work, decrypted atomic.Int64
}

// maxScan bounds the candidates one Traces call examines, so that no query
// turns into an unbounded scan; the caller continues from the returned
// cursor.
const maxScan = 50_000

// ErrBadCursor is returned for a cursor beyond the log's size, which no
// page of this log returned. A cursor is the index to scan from next, and
// holds nothing else: any index of the log is a valid place to continue.
var ErrBadCursor = errors.New("bad cursor: beyond the log")

// Traces returns up to limit traces matching q, in order of their first
// matching span, starting at cursor (0: the beginning), and the cursor to
// continue from (0 at the end). A trace is returned once, on the page of
// its first matching span. Only entries below size are considered (0: the
// whole committed log).
//
// A call scans at most maxScan candidates (the postings of the query's
// first term, a trace's spans, or every index of the range) in index order
// from the cursor, and looks at each trace it meets once: the first page
// needs no more, since every earlier match of a trace would have been
// scanned before; a later page checks the trace's spans before the cursor.
// So a page costs in proportion to what it scans plus, on later pages, the
// spans of the traces it meets. The cursor is the next index to scan.
func (s *Searcher) Traces(ctx context.Context, tenant string, q Query, cursor uint64, limit int, size uint64) ([]TraceHit, uint64, error) {
	if size == 0 {
		var err error
		if size, err = s.L.Size(ctx, tenant); err != nil {
			return nil, 0, err
		}
	}
	if cursor > size {
		return nil, 0, fmt.Errorf("%w: cursor %d, size %d", ErrBadCursor, cursor, size)
	}
	lo, hi := uint64(0), size
	if !q.From.IsZero() {
		i, err := s.L.IndexAt(ctx, tenant, q.From)
		if err != nil {
			return nil, 0, err
		}
		lo = i
	}
	if !q.To.IsZero() {
		i, err := s.L.IndexAt(ctx, tenant, q.To)
		if err != nil {
			return nil, 0, err
		}
		hi = min(hi, i)
	}
	cursor = max(cursor, lo)
	start := cursor
	terms := q.terms()
	var spans []uint64 // the trace's spans, for a query by trace id
	if q.TraceID != ([16]byte{}) && cursor < hi {
		var err error
		if spans, err = s.TraceSpans(ctx, tenant, q.TraceID, hi); err != nil {
			return nil, 0, err
		}
	}
	var hits []TraceHit
	decided := map[[16]byte]bool{} // traces met by this call
	scanned := 0
	for cursor < hi && len(hits) < limit && scanned < maxScan {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		// Candidates in index order: the trace's spans, the first term's
		// postings, or every index.
		var cands []uint64
		switch {
		case q.TraceID != ([16]byte{}):
			i := sort.Search(len(spans), func(i int) bool { return spans[i] >= cursor })
			cands = spans[i:min(len(spans), i+1024)]
		case len(terms) > 0:
			var err error
			if cands, _, err = s.L.Postings(ctx, tenant, terms[0], cursor, 1024); err != nil {
				return nil, 0, err
			}
		default:
			for i := cursor; i < hi && len(cands) < 1024; i++ {
				cands = append(cands, i)
			}
		}
		if len(cands) == 0 {
			cursor = hi
			break
		}
		// The candidates below hi are checked a chunk at a time, each
		// chunk's headers and terms read in one transaction each (a small
		// first chunk, so that a page of a few traces reads little more
		// than it needs); the first term's postings need no second look.
		end := sort.Search(len(cands), func(i int) bool { return cands[i] >= hi })
		known := 0
		if q.TraceID == ([16]byte{}) && len(terms) > 0 {
			known = 1
		}
		var hs []*format.Header
		var oks []bool
		stopped := false
		for n, idx := range cands[:end] {
			if n == len(hs) {
				chunk := cands[n:min(end, n+max(firstMatchChunk, n))]
				h, ok, err := s.matchAll(ctx, tenant, q, terms[known:], chunk)
				if err != nil {
					return nil, 0, err
				}
				hs, oks = append(hs, h...), append(oks, ok...)
			}
			cursor = idx + 1
			scanned++
			if h := hs[n]; oks[n] && !decided[h.TraceID] {
				decided[h.TraceID] = true
				// A trace matching before this call's start was returned by
				// an earlier page.
				earlier := false
				if start > lo {
					var err error
					if earlier, err = s.matchesIn(ctx, tenant, q, terms, h.TraceID, lo, start); err != nil {
						return nil, 0, err
					}
				}
				if !earlier {
					hits = append(hits, TraceHit{TraceID: h.TraceID, FirstIndex: idx, AppendedAt: h.AppendedAt})
				}
			}
			if len(hits) == limit || scanned >= maxScan {
				stopped = true
				break
			}
		}
		if !stopped && end < len(cands) { // a candidate at or past hi
			cursor = hi
		}
	}
	if cursor >= hi {
		cursor = 0
	}
	return hits, cursor, nil
}

// firstMatchChunk is how many candidates Traces checks at first; each
// chunk after it is as large as the candidates checked before it, up to
// the 1,024 of a block.
const firstMatchChunk = 64

// matchAll checks the entries idxs (each below the committed size) against
// the query as match does, but with their headers read in one transaction
// and the terms in another; terms are those the entries are not known to
// carry.
func (s *Searcher) matchAll(ctx context.Context, tenant string, q Query, terms []ledger.Term, idxs []uint64) ([]*format.Header, []bool, error) {
	s.work.Add(int64(len(idxs)))
	hs, err := s.L.Headers(ctx, tenant, idxs)
	if err != nil {
		return nil, nil, err
	}
	oks := make([]bool, len(idxs))
	var rest []uint64
	var at []int
	for i, h := range hs {
		if headerMatches(q, h) {
			rest = append(rest, idxs[i])
			at = append(at, i)
		}
	}
	have := make([]bool, len(rest))
	if len(terms) == 0 {
		for i := range have {
			have[i] = true
		}
	} else if len(rest) > 0 {
		if have, err = s.L.HaveTerms(ctx, tenant, terms, rest); err != nil {
			return nil, nil, err
		}
	}
	for j, i := range at {
		oks[i] = have[j]
	}
	return hs, oks, nil
}

// headerMatches checks the query's conditions that lie in a header.
func headerMatches(q Query, h *format.Header) bool {
	if h.Kind != format.KindSpan || (q.Kind != 0 && h.SubKind != q.Kind) ||
		(q.TraceID != ([16]byte{}) && h.TraceID != q.TraceID) {
		return false
	}
	return !(!q.From.IsZero() && h.AppendedAt.Before(q.From)) && !(!q.To.IsZero() && !h.AppendedAt.Before(q.To))
}

// match checks one entry against the query.
func (s *Searcher) match(ctx context.Context, tenant string, q Query, terms []ledger.Term, idx uint64) (*format.Header, bool, error) {
	s.work.Add(1)
	h, err := s.L.Header(ctx, tenant, idx)
	if err != nil {
		return nil, false, err
	}
	if !headerMatches(q, h) {
		return h, false, nil
	}
	for _, t := range terms {
		ok, err := s.L.HasTerm(ctx, tenant, t, idx)
		if err != nil || !ok {
			return h, false, err
		}
	}
	return h, true, nil
}

// matchesIn reports whether a span of the trace with an index in [lo, hi)
// matches the query. It stops at the first that does.
func (s *Searcher) matchesIn(ctx context.Context, tenant string, q Query, terms []ledger.Term, trace [16]byte, lo, hi uint64) (bool, error) {
	spans, err := s.TraceSpans(ctx, tenant, trace, hi)
	if err != nil {
		return false, err
	}
	for n, idx := range spans[sort.Search(len(spans), func(i int) bool { return spans[i] >= lo }):] {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return false, err
			}
		}
		if _, ok, err := s.match(ctx, tenant, q, terms, idx); err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// TraceSpans returns the indexes of a trace's spans below size, in order.
func (s *Searcher) TraceSpans(ctx context.Context, tenant string, trace [16]byte, size uint64) ([]uint64, error) {
	out, err := s.L.SpansOfTrace(ctx, tenant, trace, size)
	s.work.Add(int64(len(out)))
	return out, err
}
