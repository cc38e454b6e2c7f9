package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// SpanFigures are what aggregates and summaries add up from one span's
// payload. The caller decodes payloads (this package does not know the
// payload encoding); see FiguresFunc.
type SpanFigures struct {
	Name                      string
	Model                     string // request model, or the response model when no request model was given
	Error                     bool   // the span's status is an error
	InputTokens, OutputTokens int64
	Cost                      float64
	Currency                  string
	Start, End                time.Time // zero when the span did not say
	// Attribute is the value of the attribute an aggregate is grouped by;
	// HasAttribute says whether the span has it.
	Attribute    string
	HasAttribute bool
	// NotASpan: the entry is a span entry that records no step of the trace
	// (an OpenTelemetry resource entry, docs/OTLP.md); aggregates and
	// summaries leave it out.
	NotASpan bool
}

// FiguresFunc decodes the figures of a span entry's payload. An error
// means the payload cannot be read (it is not a span): the span is then
// counted as undecodable, never an error of the whole aggregate or
// summary (a ledger holds whatever was appended before ingest refused it).
type FiguresFunc func(payload []byte) (SpanFigures, error)

// Limits of aggregates. Every aggregate reads at most MaxAggregateSpans
// payloads, keeps at most MaxAggregateGroups groups per breakdown (the rest
// are summed into OtherGroup) and at most MaxAggregateBuckets time buckets.
const (
	MaxAggregateSpans   = 100_000
	MaxAggregateGroups  = 50
	MaxAggregateBuckets = 1000
	MinAggregateBucket  = time.Minute
)

// Group keys with a meaning of their own.
const (
	OtherGroup       = "(other)"       // the groups beyond MaxAggregateGroups, summed
	ErasedGroup      = "(erased)"      // spans whose payload was erased, in breakdowns that need the payload
	UndecodableGroup = "(undecodable)" // spans whose payload cannot be read, likewise
)

// payloadState is whether a span's figures could be read.
type payloadState uint8

const (
	readable payloadState = iota
	erased
	undecodable
)

// figuresOf reads a span entry's figures, or says why there are none.
func figuresOf(figures FiguresFunc, e *ledger.Entry) (SpanFigures, payloadState) {
	if e.Erased {
		return SpanFigures{}, erased
	}
	sf, err := figures(e.Payload)
	if err != nil {
		return SpanFigures{}, undecodable
	}
	return sf, readable
}

// Figures are the sums over a group of spans.
type Figures struct {
	Key                   string
	Spans, Errors, Erased uint64
	// Undecodable counts spans whose payload is present but cannot be read
	// (FiguresFunc failed): like erased ones, they count in Spans and add
	// nothing else.
	Undecodable               uint64
	InputTokens, OutputTokens int64
	Cost                      map[string]float64 // by currency ("" when the span did not say)
	DurationMs                float64
	// Traces counts distinct traces; it is kept only for totals and time
	// buckets.
	Traces uint64
	traces map[[16]byte]struct{}
}

func (f *Figures) add(trace [16]byte, sf *SpanFigures, state payloadState) {
	f.Spans++
	if f.traces != nil {
		if _, ok := f.traces[trace]; !ok {
			f.traces[trace] = struct{}{}
			f.Traces++
		}
	}
	switch state {
	case erased:
		f.Erased++
		return
	case undecodable:
		f.Undecodable++
		return
	}
	if sf.Error {
		f.Errors++
	}
	f.InputTokens += sf.InputTokens
	f.OutputTokens += sf.OutputTokens
	if sf.Cost != 0 {
		if f.Cost == nil {
			f.Cost = map[string]float64{}
		}
		f.Cost[sf.Currency] += sf.Cost
	}
	if !sf.Start.IsZero() && !sf.End.IsZero() && !sf.End.Before(sf.Start) {
		f.DurationMs += float64(sf.End.Sub(sf.Start)) / float64(time.Millisecond)
	}
}

func (f *Figures) merge(o *Figures) {
	f.Spans += o.Spans
	f.Errors += o.Errors
	f.Erased += o.Erased
	f.Undecodable += o.Undecodable
	f.InputTokens += o.InputTokens
	f.OutputTokens += o.OutputTokens
	f.DurationMs += o.DurationMs
	for c, v := range o.Cost {
		if f.Cost == nil {
			f.Cost = map[string]float64{}
		}
		f.Cost[c] += v
	}
}

// AggregateRequest says what to aggregate.
type AggregateRequest struct {
	Tenant string
	// Query selects spans (not traces). From and To are required.
	Query Query
	// Bucket is the width of the time buckets, at least
	// MinAggregateBucket; [From, To) may hold at most MaxAggregateBuckets.
	Bucket  time.Duration
	Figures FiguresFunc
	// Limit is the most spans read; 0 or more than MaxAggregateSpans means
	// MaxAggregateSpans.
	Limit uint64
}

// Aggregate is the outcome of Aggregate.
type Aggregate struct {
	Total Figures
	// Buckets cover [From, To) from BucketStart, Bucket wide, empty ones
	// included. Bucket starts are multiples of Bucket since the Unix epoch.
	BucketStart time.Time
	Bucket      time.Duration
	Buckets     []Figures
	// Breakdowns, largest first. ByKind's keys are span kind numbers
	// (docs/FORMAT.md §2.1).
	ByModel, ByKind, ByAttribute []Figures
	ByVersion                    [3][]Figures // prompt, policy, pipeline
	// Complete is false when MaxAggregateSpans were read before the end of
	// the range; the figures then cover spans appended before CoveredUntil.
	Complete     bool
	CoveredUntil time.Time
	Scanned      uint64
}

// ErrBadAggregate is returned for an aggregate request out of bounds.
var ErrBadAggregate = errors.New("bad aggregate request")

// Aggregate adds up the spans that match req.Query over time and per
// model, kind, version and attribute value. It reads at most
// MaxAggregateSpans payloads.
func (s *Searcher) Aggregate(ctx context.Context, req AggregateRequest) (*Aggregate, error) {
	q := req.Query
	if q.From.IsZero() || q.To.IsZero() || !q.From.Before(q.To) {
		return nil, fmt.Errorf("%w: a time range [from, to) is required", ErrBadAggregate)
	}
	if req.Bucket < MinAggregateBucket {
		return nil, fmt.Errorf("%w: buckets are at least %s wide", ErrBadAggregate, MinAggregateBucket)
	}
	start := q.From.Truncate(req.Bucket)
	n := int((q.To.Sub(start) + req.Bucket - 1) / req.Bucket)
	if n > MaxAggregateBuckets {
		return nil, fmt.Errorf("%w: the range holds %d buckets of %s, at most %d", ErrBadAggregate, n, req.Bucket, MaxAggregateBuckets)
	}
	out := &Aggregate{BucketStart: start, Bucket: req.Bucket, Buckets: make([]Figures, n), Complete: true}
	out.Total.traces = map[[16]byte]struct{}{}
	for i := range out.Buckets {
		out.Buckets[i].traces = map[[16]byte]struct{}{}
	}
	groups := [6]map[string]*Figures{{}, {}, {}, {}, {}, {}} // model, kind, prompt, policy, pipeline, attribute
	add := func(g int, key string, trace [16]byte, sf *SpanFigures, state payloadState) {
		f := groups[g][key]
		if f == nil {
			f = &Figures{Key: key}
			groups[g][key] = f
		}
		f.add(trace, sf, state)
	}
	limit := req.Limit
	if limit == 0 || limit > MaxAggregateSpans {
		limit = MaxAggregateSpans
	}
	err := s.eachMatch(ctx, req.Tenant, q, func(h *format.Header) (bool, error) {
		if out.Scanned == limit {
			out.Complete, out.CoveredUntil = false, h.AppendedAt
			return false, nil
		}
		out.Scanned++
		e, err := s.L.GetEntry(ctx, req.Tenant, h.Index)
		if err != nil {
			return false, err
		}
		sf, state := figuresOf(req.Figures, e)
		if sf.NotASpan {
			return true, nil
		}
		out.Total.add(h.TraceID, &sf, state)
		if b := int(h.AppendedAt.Sub(start) / req.Bucket); b >= 0 && b < n {
			out.Buckets[b].add(h.TraceID, &sf, state)
		}
		model, attr := sf.Model, sf.Attribute
		switch state {
		case erased:
			model, attr = ErasedGroup, ErasedGroup
		case undecodable:
			model, attr = UndecodableGroup, UndecodableGroup
		}
		add(0, model, h.TraceID, &sf, state)
		add(1, strconv.Itoa(int(h.SubKind)), h.TraceID, &sf, state)
		for k := range 3 {
			if id := h.Refs[k]; id != ([32]byte{}) {
				add(2+k, fmt.Sprintf("%x", id), h.TraceID, &sf, state)
			}
		}
		if state != readable || sf.HasAttribute {
			add(5, attr, h.TraceID, &sf, state)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	out.ByModel, out.ByKind = topGroups(groups[0]), topGroups(groups[1])
	out.ByVersion = [3][]Figures{topGroups(groups[2]), topGroups(groups[3]), topGroups(groups[4])}
	out.ByAttribute = topGroups(groups[5])
	return out, nil
}

// topGroups orders groups by spans (then key) and sums those beyond
// MaxAggregateGroups into one OtherGroup.
func topGroups(m map[string]*Figures) []Figures {
	out := make([]Figures, 0, len(m))
	for _, f := range m {
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b Figures) int {
		if c := cmp.Compare(b.Spans, a.Spans); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	if len(out) <= MaxAggregateGroups {
		return out
	}
	other := Figures{Key: OtherGroup}
	for i := MaxAggregateGroups - 1; i < len(out); i++ {
		other.merge(&out[i])
	}
	return append(out[:MaxAggregateGroups-1], other)
}

// eachMatch calls fn with the header of every span entry that matches q,
// in index order, until fn returns false or an error. It drives from the
// trace's spans, the first term's postings, or the index range of q's time
// range, as Traces does.
func (s *Searcher) eachMatch(ctx context.Context, tenant string, q Query, fn func(*format.Header) (bool, error)) error {
	size, err := s.L.Size(ctx, tenant)
	if err != nil {
		return err
	}
	lo, hi := uint64(0), size
	if !q.From.IsZero() {
		if lo, err = s.L.IndexAt(ctx, tenant, q.From); err != nil {
			return err
		}
	}
	if !q.To.IsZero() {
		i, err := s.L.IndexAt(ctx, tenant, q.To)
		if err != nil {
			return err
		}
		hi = min(hi, i)
	}
	terms := q.terms()
	visit := func(idx uint64) (bool, error) {
		h, ok, err := s.match(ctx, tenant, q, terms, idx)
		if err != nil || !ok {
			return err == nil, err
		}
		return fn(h)
	}
	switch {
	case q.TraceID != ([16]byte{}):
		idxs, err := s.TraceSpans(ctx, tenant, q.TraceID, hi)
		if err != nil {
			return err
		}
		for _, idx := range idxs {
			if idx < lo {
				continue
			}
			if more, err := visit(idx); err != nil || !more {
				return err
			}
		}
	case len(terms) > 0:
		for cursor := lo; cursor < hi; {
			ps, _, err := s.L.Postings(ctx, tenant, terms[0], cursor, 1024)
			if err != nil || len(ps) == 0 {
				return err
			}
			for _, idx := range ps {
				if idx >= hi {
					return nil
				}
				cursor = idx + 1
				if more, err := visit(idx); err != nil || !more {
					return err
				}
			}
		}
	default:
		for idx := lo; idx < hi; idx++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			if more, err := visit(idx); err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// MaxSummarySpans bounds the spans one trace summary reads.
const MaxSummarySpans = 500

// Summary summarises a trace for a list of search results.
type Summary struct {
	Figures
	RootName   string
	Start, End time.Time
	Models     []string
	// Partial: the trace has more than MaxSummarySpans spans; the figures
	// cover the first.
	Partial bool
}

// Summarize reads up to MaxSummarySpans spans of a trace, below size (0:
// the committed size), and sums their figures.
func (s *Searcher) Summarize(ctx context.Context, tenant string, trace [16]byte, size uint64, figures FiguresFunc) (*Summary, error) {
	if size == 0 {
		var err error
		if size, err = s.L.Size(ctx, tenant); err != nil {
			return nil, err
		}
	}
	idxs, err := s.TraceSpans(ctx, tenant, trace, size)
	if err != nil {
		return nil, err
	}
	out := &Summary{}
	if len(idxs) > MaxSummarySpans {
		idxs, out.Partial = idxs[:MaxSummarySpans], true
	}
	type span struct {
		id, parent [8]byte
		name       string
		start      time.Time
	}
	var spans []span
	ids := map[[8]byte]bool{}
	for _, idx := range idxs {
		e, err := s.L.GetEntry(ctx, tenant, idx)
		if err != nil {
			return nil, err
		}
		sf, state := figuresOf(figures, e)
		if sf.NotASpan {
			continue
		}
		out.add(trace, &sf, state)
		start := sf.Start
		if start.IsZero() {
			start = e.Header.AppendedAt
		}
		if out.Start.IsZero() || start.Before(out.Start) {
			out.Start = start
		}
		if sf.End.After(out.End) {
			out.End = sf.End
		}
		if sf.Model != "" && !slices.Contains(out.Models, sf.Model) {
			out.Models = append(out.Models, sf.Model)
		}
		ids[e.Header.SpanID] = true
		spans = append(spans, span{e.Header.SpanID, e.Header.ParentSpanID, sf.Name, start})
	}
	var root *span
	for i := range spans {
		sp := &spans[i]
		isRoot := sp.parent == ([8]byte{}) || !ids[sp.parent]
		if isRoot && (root == nil || sp.start.Before(root.start)) {
			root = sp
		}
	}
	if root != nil {
		out.RootName = root.name
	}
	return out, nil
}
