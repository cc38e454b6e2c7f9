package audit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/retention"
)

// testFigures decodes span payloads as the RPC layer does, grouping by the
// span's name.
func testFigures(payload []byte) (SpanFigures, error) {
	var sp v1.Span
	if err := proto.Unmarshal(payload, &sp); err != nil {
		return SpanFigures{}, err
	}
	return SpanFigures{
		Name: sp.GetName(), Model: sp.GetModel().GetRequestModel(), Error: sp.GetStatus().GetCode() == v1.StatusCode_STATUS_CODE_ERROR,
		InputTokens: sp.GetUsage().GetInputTokens(), OutputTokens: sp.GetUsage().GetOutputTokens(),
		Cost: sp.GetUsage().GetCost(), Currency: sp.GetUsage().GetCurrency(),
		Start: sp.GetStartTime().AsTime(), End: sp.GetEndTime().AsTime(),
		Attribute: sp.GetName(), HasAttribute: true,
	}, nil
}

// groups prints breakdown groups as "key:spans/errors/erased".
func groups(fs []Figures) string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s:%d/%d/%d", f.Key, f.Spans, f.Errors, f.Erased))
	}
	return strings.Join(out, " ")
}

func TestAggregate(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	v1ID, v2ID := f.seed(t)
	s := f.x.S
	first, _ := f.l.Header(ctx, "default", 0)
	from, to := first.AppendedAt.Add(-time.Hour), first.AppendedAt.Add(time.Hour)
	agg := func(q Query, limit uint64) *Aggregate {
		t.Helper()
		q.From, q.To = from, to
		a, err := s.Aggregate(ctx, AggregateRequest{Tenant: "default", Query: q, Bucket: time.Hour, Figures: testFigures, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	a := agg(Query{}, 0)
	total := a.Total
	total.traces = nil
	want := Figures{Spans: 6, Errors: 1, InputTokens: 600, OutputTokens: 120, Cost: map[string]float64{"USD": 0.006}, DurationMs: 3000, Traces: 3}
	if diff := cmp.Diff(want, total, cmp.AllowUnexported(Figures{}), cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })); diff != "" {
		t.Errorf("total (-want +got):\n%s", diff)
	}
	if !a.Complete || a.Scanned != 6 {
		t.Errorf("complete %v, scanned %d; want true, 6", a.Complete, a.Scanned)
	}
	for _, tt := range []struct {
		name string
		got  []Figures
		want string
	}{
		{"by model", a.ByModel, ":3/1/0 gpt-4o:2/0/0 claude:1/0/0"},
		{"by kind", a.ByKind, "1:3/0/0 5:2/0/0 4:1/1/0"},
		{"by prompt", a.ByVersion[0], fmt.Sprintf("%x:2/0/0 %x:1/0/0", v1ID, v2ID)},
		{"by policy", a.ByVersion[1], ""},
		{"by attribute", a.ByAttribute, "step 1:3/0/0 step 2:2/0/0 step 3:1/1/0"},
	} {
		if g := groups(tt.got); g != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, g, tt.want)
		}
	}
	// Two buckets an hour wide; every span falls in the one holding first.
	if len(a.Buckets) != 2 && len(a.Buckets) != 3 {
		t.Fatalf("%d buckets for two hours of one-hour buckets", len(a.Buckets))
	}
	var inBuckets, traces uint64
	for i, b := range a.Buckets {
		inBuckets += b.Spans
		traces += b.Traces
		if start := a.BucketStart.Add(time.Duration(i) * time.Hour); b.Spans > 0 && (first.AppendedAt.Before(start) || !first.AppendedAt.Before(start.Add(time.Hour))) {
			t.Errorf("bucket %d (%s) holds spans appended at %s", i, start, first.AppendedAt)
		}
	}
	if inBuckets != 6 || traces != 3 {
		t.Errorf("buckets hold %d spans of %d traces, want 6 of 3", inBuckets, traces)
	}

	// Conditions select spans, as in queries.
	if e := agg(Query{ErrorsOnly: true}, 0); e.Total.Spans != 1 || e.Total.Errors != 1 {
		t.Errorf("errors only: %d spans, %d errors; want 1, 1", e.Total.Spans, e.Total.Errors)
	}
	if e := agg(Query{SubjectID: "bob"}, 0); e.Total.Spans != 2 || groups(e.ByModel) != ":1/0/0 claude:1/0/0" {
		t.Errorf("subject bob: %d spans, by model %q", e.Total.Spans, groups(e.ByModel))
	}
	if e := agg(Query{TraceID: traceID(1)}, 0); e.Total.Spans != 3 || e.Total.Traces != 1 {
		t.Errorf("trace 1: %d spans of %d traces", e.Total.Spans, e.Total.Traces)
	}

	// The span limit: the figures cover what was read, and say so.
	part := agg(Query{}, 2)
	third, _ := f.l.Header(ctx, "default", 4)
	if part.Complete || part.Scanned != 2 || part.Total.Spans != 2 || !part.CoveredUntil.Equal(third.AppendedAt) {
		t.Errorf("limit 2: complete %v, scanned %d, spans %d, covered until %s; want false, 2, 2, %s",
			part.Complete, part.Scanned, part.Total.Spans, part.CoveredUntil, third.AppendedAt)
	}

	// Erased spans still count, by what their headers say.
	rs := &retention.Service{L: f.l, SessionField: FieldSession, Log: slog.New(slog.DiscardHandler)}
	if _, err := rs.Erase(ctx, "default", retention.ErasureRequest{ID: "e1", TraceIDs: [][16]byte{traceID(2)}, LegalBasis: "GDPR Art. 17", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	a = agg(Query{}, 0)
	if a.Total.Spans != 6 || a.Total.Erased != 2 || a.Total.InputTokens != 400 {
		t.Errorf("after erasing trace 2: %d spans, %d erased, %d input tokens; want 6, 2, 400", a.Total.Spans, a.Total.Erased, a.Total.InputTokens)
	}
	if g := groups(a.ByModel); g != ":2/1/0 (erased):2/0/2 gpt-4o:2/0/0" {
		t.Errorf("by model after erasure = %q", g)
	}
	if g := groups(a.ByVersion[0]); g != fmt.Sprintf("%x:2/0/0 %x:1/0/1", v1ID, v2ID) {
		t.Errorf("by prompt after erasure = %q", g)
	}
}

func TestAggregateBounds(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	now := time.Now()
	for _, tt := range []struct {
		name     string
		from, to time.Time
		bucket   time.Duration
	}{
		{"no range", time.Time{}, time.Time{}, time.Hour},
		{"to before from", now, now.Add(-time.Hour), time.Hour},
		{"small buckets", now.Add(-time.Hour), now, time.Second},
		{"too many buckets", now.Add(-1001 * time.Minute), now, time.Minute},
	} {
		_, err := f.x.S.Aggregate(ctx, AggregateRequest{Tenant: "default", Query: Query{From: tt.from, To: tt.to}, Bucket: tt.bucket, Figures: testFigures})
		if err == nil || !strings.Contains(err.Error(), ErrBadAggregate.Error()) {
			t.Errorf("%s: %v, want %v", tt.name, err, ErrBadAggregate)
		}
	}
}

func TestTopGroups(t *testing.T) {
	m := map[string]*Figures{}
	for i := range MaxAggregateGroups + 10 {
		m[fmt.Sprintf("g%03d", i)] = &Figures{Key: fmt.Sprintf("g%03d", i), Spans: uint64(i + 1), InputTokens: 1}
	}
	out := topGroups(m)
	if len(out) != MaxAggregateGroups {
		t.Fatalf("%d groups, want %d", len(out), MaxAggregateGroups)
	}
	if out[0].Key != fmt.Sprintf("g%03d", MaxAggregateGroups+9) {
		t.Errorf("largest group first: got %s", out[0].Key)
	}
	other := out[len(out)-1]
	var rest uint64
	for i := range 11 {
		rest += uint64(i + 1)
	}
	if other.Key != OtherGroup || other.Spans != rest || other.InputTokens != 11 {
		t.Errorf("other group = %s with %d spans, %d tokens; want %s, %d, 11", other.Key, other.Spans, other.InputTokens, OtherGroup, rest)
	}
}

func TestSummarize(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t)
	sum, err := f.x.S.Summarize(ctx, "default", traceID(1), 0, testFigures)
	if err != nil {
		t.Fatal(err)
	}
	if sum.RootName != "step 1" || sum.Spans != 3 || sum.Errors != 1 || sum.InputTokens != 300 || sum.Partial ||
		fmt.Sprint(sum.Models) != "[gpt-4o]" || sum.End.Sub(sum.Start) != 2500*time.Millisecond {
		t.Errorf("summary of trace 1 = %+v", sum)
	}
}

// TestAggregateCountsUndecodableSpans (issue 9 review, defect 8): a span
// whose payload is not a span (appended before ingest refused such spans)
// is counted as undecodable in aggregates and summaries, never an error of
// the whole answer.
func TestAggregateCountsUndecodableSpans(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t)
	bad := spanSpec{trace: 1, span: 9, kind: v1.SpanKind_SPAN_KIND_TOOL, subject: "alice"}.record()
	bad.Payload = []byte("\xffnot protobuf")
	if _, err := f.l.Append(ctx, "default", []ledger.Record{bad}); err != nil {
		t.Fatal(err)
	}
	first, _ := f.l.Header(ctx, "default", 0)
	a, err := f.x.S.Aggregate(ctx, AggregateRequest{Tenant: "default", Query: Query{From: first.AppendedAt.Add(-time.Hour), To: first.AppendedAt.Add(time.Hour)},
		Bucket: time.Hour, Figures: testFigures})
	if err != nil {
		t.Fatalf("Aggregate over an undecodable span = %v", err)
	}
	if a.Total.Spans != 7 || a.Total.Undecodable != 1 || a.Total.Errors != 1 {
		t.Errorf("total: %d spans, %d undecodable, %d errors; want 7, 1, 1", a.Total.Spans, a.Total.Undecodable, a.Total.Errors)
	}
	if got := groups(a.ByModel); !strings.Contains(got, UndecodableGroup+":1/0/0") {
		t.Errorf("by model: %s; want a group %s", got, UndecodableGroup)
	}
	sum, err := f.x.S.Summarize(ctx, "default", traceID(1), 0, testFigures)
	if err != nil || sum.Spans != 4 || sum.Undecodable != 1 {
		t.Errorf("Summarize(trace 1) = %+v, %v; want 4 spans, 1 undecodable", sum, err)
	}
}
