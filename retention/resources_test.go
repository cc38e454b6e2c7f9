package retention

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"sync"
	"testing"
	"time"

	otcommon "go.opentelemetry.io/proto/slim/otlp/common/v1"
	otlogs "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	otresource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	otrace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// resEntry appends an entry of an OTLP resource entry's form
// (bundle.IsResourceEntry) to trace tr, holding blob as its resource and
// scope; class "" is the policy's for kind OTHER.
func resEntry(t testing.TB, e *env, subject string, tr byte, blob string) uint64 {
	t.Helper()
	return resEntries(t, e, subject, tr, []string{blob})[0]
}

func resEntries(t testing.TB, e *env, subject string, tr byte, blobs []string) []uint64 {
	t.Helper()
	ctx := context.Background()
	class, _ := e.s.ClassOf(ctx, "default", SpanFacts{Kind: uint8(v1.SpanKind_SPAN_KIND_OTHER)})
	var recs []ledger.Record
	for _, blob := range blobs {
		r := ledger.Record{Kind: format.KindSpan, SubKind: uint8(v1.SpanKind_SPAN_KIND_OTHER), Subject: subject, RetentionClass: class}
		r.TraceID[0], r.TraceID[15] = tr, 1
		sp := bundle.ResourceEntrySpan(r.TraceID[:], resourceScope(t, blob))
		r.SpanID = [8]byte(sp.SpanId)
		p, err := proto.Marshal(sp)
		if err != nil {
			t.Fatal(err)
		}
		r.Payload = p
		recs = append(recs, r)
	}
	rs, err := e.l.Append(ctx, "default", recs)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, r := range rs {
		if !bundle.IsResourceEntry(&format.Header{Kind: format.KindSpan, SubKind: uint8(v1.SpanKind_SPAN_KIND_OTHER), TraceID: recs[0].TraceID, SpanID: recs[len(out)].SpanID}, recs[len(out)].Payload) {
			t.Fatal("resEntry: not of a resource entry's form")
		}
		out = append(out, r.Index)
	}
	return out
}

// resourceScope is a resource entry's resource_scope: a resource whose
// service.name is service, and one scope.
func resourceScope(t testing.TB, service string) []byte {
	t.Helper()
	b, err := proto.Marshal(&otrace.ResourceSpans{
		Resource:   &otresource.Resource{Attributes: []*otcommon.KeyValue{{Key: "service.name", Value: &otcommon.AnyValue{Value: &otcommon.AnyValue_StringValue{StringValue: service}}}}},
		ScopeSpans: []*otrace.ScopeSpans{{Scope: &otcommon.InstrumentationScope{Name: "test"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An entry of a resource entry's header shape (root, kind OTHER, span id
// derived from its trace and resource_scope) whose payload holds anything
// but the resource entry's fields (here the span's content), or whose
// resource_scope is not one resource and one scope, is not a resource
// entry: the sweep expires it with its own period, though a span of its
// trace is kept.
func TestSweepExpiresAnEntryShapedAsAResourceEntry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	class, _ := e.s.ClassOf(ctx, "default", SpanFacts{Kind: uint8(v1.SpanKind_SPAN_KIND_OTHER)})
	forge := func(tr byte, sp *v1.Span) uint64 {
		r := ledger.Record{Kind: format.KindSpan, SubKind: uint8(v1.SpanKind_SPAN_KIND_OTHER), Subject: "ana", RetentionClass: class}
		r.TraceID[0], r.TraceID[15] = tr, 1
		sum := sha256.Sum256(sp.GetOtlp().GetResourceScope())
		r.SpanID = bundle.ResourceEntrySpanID(r.TraceID[:], sum[:])
		sp.TraceId, sp.SpanId = r.TraceID[:], r.SpanID[:]
		p, err := proto.Marshal(sp)
		if err != nil {
			t.Fatal(err)
		}
		r.Payload = p
		rs, err := e.l.Append(ctx, "default", []ledger.Record{r})
		if err != nil {
			t.Fatal(err)
		}
		if bundle.IsResourceEntry(&format.Header{Kind: r.Kind, SubKind: r.SubKind, TraceID: r.TraceID, SpanID: r.SpanID}, p) {
			t.Fatalf("entry %d taken for a resource entry", rs[0].Index)
		}
		return rs[0].Index
	}
	withContent := bundle.ResourceEntrySpan(nil, resourceScope(t, "support-bot"))
	withContent.SubjectId = "customer-42"
	withContent.Content = &v1.Content{InputMessages: []*v1.Message{{Role: "user", Parts: []*v1.MessagePart{{Part: &v1.MessagePart_Text{Text: "my card number is ..."}}}}}}
	notAResource := &v1.Span{Name: bundle.ResourceEntryName, Kind: v1.SpanKind_SPAN_KIND_OTHER, Otlp: &v1.OtlpSource{ResourceScope: []byte("not a resource at all")}}
	forged := []uint64{forge(7, withContent), forge(7, notAResource)}
	e.clock.Add(30 * Day)
	span := e.spans(t, "ana", "", 7, 1, false, "a")
	e.clock.Add(31 * Day) // day 61: the forged entries' periods are over, span's is not
	r, err := e.s.Sweep(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.erased(t, append(forged, span[0])); fmt.Sprint(got) != "[true true false]" {
		t.Errorf("sweep at day 61 = %+v: erased %v, want [true true false] (the forged entries expired, the span kept)", r, got)
	}
	e.verify(t)
}

// A resource entry kept by a span of its trace in its period expires with
// the next sweep once that span's subject is erased: an erased entry keeps
// nothing.
func TestSweepResourceEntryNotKeptByAnErasedEntry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	res := resEntry(t, e, "ana", 7, "service.name=support-bot")
	e.clock.Add(30 * Day)
	span := e.spans(t, "bob", "", 7, 1, false, "b")
	e.clock.Add(31 * Day) // day 61: res's period is over, span's is not
	if r, err := e.s.Sweep(ctx, "default"); err != nil || r.Kept != 1 {
		t.Fatalf("sweep at day 61 = %+v, %v; want the resource entry kept", r, err)
	}
	if got := e.erased(t, []uint64{res, span[0]}); fmt.Sprint(got) != "[false false]" {
		t.Fatalf("after day 61: %v", got)
	}
	if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "r1", Subject: "bob", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(Day)
	r, err := e.s.Sweep(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.erased(t, []uint64{res, span[0]}); fmt.Sprint(got) != "[true true]" {
		t.Errorf("after bob's erasure, sweep %+v: erased %v, want the resource entry expired too", r, got)
	}
	e.verify(t)
}

// Two resource entries of one trace: the newer, in its period, keeps the
// older; once both have passed their periods neither keeps the other.
func TestSweepTwoResourceEntriesDoNotKeepEachOther(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	r1 := resEntry(t, e, "ana", 7, "scope one")
	e.clock.Add(30 * Day)
	r2 := resEntry(t, e, "ana", 7, "scope two")
	e.clock.Add(31 * Day)
	if r, err := e.s.Sweep(ctx, "default"); err != nil || r.Kept != 1 || r.Erased != 0 {
		t.Fatalf("sweep at day 61 = %+v, %v", r, err)
	}
	e.clock.Add(30 * Day) // day 91: both past their periods
	r, err := e.s.Sweep(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.erased(t, []uint64{r1, r2}); fmt.Sprint(got) != "[true true]" {
		t.Errorf("sweep at day 91 = %+v: erased %v, want both", r, got)
	}
	e.verify(t)
}

// A sweep killed after its tombstone, before its keys are destroyed,
// finished by Resume after a restart: the kept resource entry's payload is
// still readable, the other entry of its bucket erased.
func TestSweepKeptResourceEntrySurvivesAKilledSweep(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	res := resEntry(t, e, "ana", 7, "service.name=support-bot")
	other := resEntry(t, e, "ana", 8, "service.name=other")
	e.clock.Add(30 * Day)
	span := e.spans(t, "ana", "", 7, 1, false, "a")
	e.clock.Add(31 * Day)
	testHookAfterTombstone = func() error { return errKilled }
	if _, err := e.s.Sweep(ctx, "default"); !errors.Is(err, errKilled) {
		t.Fatalf("Sweep() = %v, want the kill", err)
	}
	testHookAfterTombstone = nil
	e.l.Close()
	e.open(t)
	if err := e.s.Resume(ctx); err != nil || len(e.s.Unfinished()) != 0 {
		t.Fatalf("Resume() = %v, unfinished %v", err, e.s.Unfinished())
	}
	if got := e.erased(t, []uint64{res, other, span[0]}); fmt.Sprint(got) != "[false true false]" {
		t.Errorf("after the resumed sweep: erased %v, want [false true false]", got)
	}
	if en, err := e.l.GetEntry(ctx, "default", res); err != nil || en.Erased || len(en.Payload) == 0 {
		t.Errorf("the kept resource entry: %v, erased %v", err, en != nil && en.Erased)
	}
	// A later sweep keeps deciding: still kept while the span is.
	e.clock.Add(Day)
	if r, err := e.s.Sweep(ctx, "default"); err != nil || r.Kept != 1 {
		t.Errorf("sweep at day 62 = %+v, %v", r, err)
	}
	e.verify(t)
}

// Two nodes sweep at once: the resource entry is kept by both plans'
// decisions, whichever commits; nothing fails.
func TestSweepTwoNodesWithAKeptResourceEntry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	res := resEntry(t, e, "ana", 7, "service.name=support-bot")
	exp := e.spans(t, "ana", "", 8, 20, false, "x")
	e.clock.Add(30 * Day)
	span := e.spans(t, "ana", "", 7, 1, false, "a")
	e.clock.Add(31 * Day)
	a, b := e.node("a"), e.node("b")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, n := range []*Service{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = n.Sweep(ctx, "default") }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, ErrBusy) {
			t.Errorf("concurrent sweep: %v", err)
		}
	}
	if r, err := a.Sweep(ctx, "default"); err != nil {
		t.Fatalf("sweep again: %+v, %v", r, err)
	}
	got := e.erased(t, append([]uint64{res, span[0]}, exp...))
	if got[0] || got[1] {
		t.Errorf("resource entry erased %v, span erased %v", got[0], got[1])
	}
	for i, g := range got[2:] {
		if !g {
			t.Errorf("expired span %d not erased", exp[i])
		}
	}
	e.verify(t)
}

var sweepBigTrace = flag.Int("sweep.bigtrace", 20_000, "BenchmarkSweepOfABigTrace: entries of the trace")

// BenchmarkSweepOfABigTrace: one trace of -sweep.bigtrace entries all
// past their period, swept at once; the sub-benchmarks compare a trace of
// spans only (the cost before resource entries and log records were kept
// by others), one with 1 resource entry, one holding as many resource
// entries as spans (an OTLP client sending one scope per export), and one
// holding as many OTLP log records as spans, each an event of one of them
// (a payload read and an identity lookup per record).
func BenchmarkSweepOfABigTrace(b *testing.B) {
	n := *sweepBigTrace
	for _, c := range []struct{ resources, records int }{{0, 0}, {1, 0}, {n / 2, 0}, {0, n / 2}} {
		b.Run(fmt.Sprintf("resources=%d/records=%d", c.resources, c.records), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				e := newEnvB(b)
				p := Policy{FloorDays: 30, Default: Rule{Class: DefaultClass, Days: 60, Mode: Governance}}
				if _, _, err := e.s.SetPolicy(context.Background(), "default", p, "co", "60 days"); err != nil {
					b.Fatal(err)
				}
				spans := n - c.resources - c.records
				for done := 0; done < spans; done += 1000 {
					bigTraceSpans(b, e, min(1000, spans-done), done)
				}
				var blobs []string
				for i := range c.resources {
					blobs = append(blobs, fmt.Sprint("scope ", i))
					if len(blobs) == 1000 || i == c.resources-1 {
						resEntries(b, e, "ana", 9, blobs)
						blobs = nil
					}
				}
				for done := 0; done < c.records; done += 1000 {
					bigTraceRecords(b, e, min(1000, c.records-done), done)
				}
				e.clock.Add(61 * Day)
				b.StartTimer()
				start := time.Now()
				r, err := e.s.Sweep(context.Background(), "default")
				if err != nil || r.Erased != n {
					b.Fatalf("sweep = %+v, %v; want %d erased", r, err, n)
				}
				b.ReportMetric(time.Since(start).Seconds(), "sweep-s")
				e.l.Close()
			}
		})
	}
}

// bigTraceRecords appends n OTLP log records to the trace of
// bigTraceSpans, record from+i an event of its span from+i.
func bigTraceRecords(b *testing.B, e *env, n, from int) {
	rsc := resourceScope(b, "support-bot")
	digest := sha256.Sum256(rsc)
	var recs []ledger.Record
	for i := range n {
		r := ledger.Record{Kind: format.KindSpan, SubKind: uint8(v1.SpanKind_SPAN_KIND_OTHER), Subject: "ana", RetentionClass: DefaultClass}
		r.TraceID[0], r.TraceID[15] = 9, 1
		j := from + i
		r.ParentSpanID[0], r.ParentSpanID[5], r.ParentSpanID[6], r.ParentSpanID[7] = 0xa0, byte(j>>16), byte(j>>8), byte(j)
		lr, err := proto.Marshal(&otlogs.LogRecord{TraceId: r.TraceID[:], SpanId: r.ParentSpanID[:], EventName: "gen_ai.choice"})
		if err != nil {
			b.Fatal(err)
		}
		r.SpanID = bundle.LogEntrySpanID(digest[:], lr)
		if r.Payload, err = proto.Marshal(&v1.Span{TraceId: r.TraceID[:], SpanId: r.SpanID[:], ParentSpanId: r.ParentSpanID[:], Name: "gen_ai.choice", Kind: v1.SpanKind_SPAN_KIND_OTHER,
			Otlp: &v1.OtlpSource{LogRecord: lr, ResourceScopeSha256: digest[:]}}); err != nil {
			b.Fatal(err)
		}
		if !bundle.IsLogRecordEntry(&format.Header{Kind: r.Kind, SubKind: r.SubKind, TraceID: r.TraceID, SpanID: r.SpanID, ParentSpanID: r.ParentSpanID}, r.Payload) {
			b.Fatal("bigTraceRecords: not a log record's entry")
		}
		recs = append(recs, r)
	}
	if _, err := e.l.Append(context.Background(), "default", recs); err != nil {
		b.Fatal(err)
	}
}

func bigTraceSpans(b *testing.B, e *env, n, from int) {
	var recs []ledger.Record
	for i := range n {
		r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Subject: "ana", RetentionClass: DefaultClass, Payload: []byte("span")}
		r.TraceID[0], r.TraceID[15] = 9, 1
		j := from + i
		r.SpanID[0], r.SpanID[5], r.SpanID[6], r.SpanID[7] = 0xa0, byte(j>>16), byte(j>>8), byte(j)
		recs = append(recs, r)
	}
	if _, err := e.l.Append(context.Background(), "default", recs); err != nil {
		b.Fatal(err)
	}
}
