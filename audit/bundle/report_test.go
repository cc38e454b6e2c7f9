package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	resource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// TestReportIsBounded: however big the spans, the report stays small
// enough for the verifier's MaxReportBytes: texts are clipped, lists cut,
// and traces past MaxReportSpans only listed.
func TestReportIsBounded(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	var msgs []*v1.Message
	for range 100 {
		msgs = append(msgs, &v1.Message{Role: "user", Parts: []*v1.MessagePart{{Part: &v1.MessagePart_Text{Text: big}}}})
	}
	entry := func(i uint64) *Entry {
		sp := &v1.Span{Name: big, Kind: 1, Content: &v1.Content{SystemInstructions: big, InputMessages: msgs,
			ToolCall: &v1.ToolCall{Arguments: big, Result: big}}}
		payload, _ := proto.Marshal(sp)
		h := format.Header{Kind: format.KindSpan, SubKind: 1, Tenant: "default", Index: i, RetentionClass: "default"}
		h.SpanID[7] = byte(i + 1)
		return &Entry{Index: i, Header: h.Marshal(), Payload: payload}
	}
	var out bytes.Buffer
	rw := NewReportWriter(&out, ReportInfo{Tenant: "default"}, nil)
	rw.Trace([16]byte{1}, []*Entry{entry(0), entry(1), entry(2)})
	for i := range maxOmittedListed + 5 {
		if rw.Fits(MaxReportSpans) {
			t.Fatal("a trace of MaxReportSpans spans fits after three were shown")
		}
		rw.Omitted([16]byte{byte(i >> 8), byte(i), 2})
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	if n := out.Len(); n > 3<<20 {
		t.Errorf("the report of 3 spans of 100 MiB of text and %d omitted traces is %d bytes", maxOmittedListed+5, n)
	}
	for _, want := range []string{"the whole text is in the entry file", "Only the first 20 messages", "… and 5 more traces not shown"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report does not say %q", want)
		}
	}
}

// TestReportShowsOTLPResourceWithinSpans: an OpenTelemetry span is shown
// with the resource and scope its trace's resource entry holds, whichever
// of the two the report is given first, and the resource entry is not
// shown as a span; an erased resource entry is not shown either, and the
// span says its resource is not in the bundle.
func TestReportShowsOTLPResourceWithinSpans(t *testing.T) {
	traceID := [16]byte{7}
	rsc, err := proto.Marshal(&trace.ResourceSpans{
		Resource:   &resource.Resource{Attributes: []*common.KeyValue{{Key: "service.name", Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "support-bot"}}}}},
		ScopeSpans: []*trace.ScopeSpans{{Scope: &common.InstrumentationScope{Name: "app"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(rsc)
	resID := ResourceEntrySpanID(traceID[:], digest[:])
	entry := func(i uint64, spanID [8]byte, kind v1.SpanKind, sp *v1.Span, erased bool) *Entry {
		h := format.Header{Kind: format.KindSpan, SubKind: uint8(kind), Tenant: "default", Index: i, RetentionClass: "default", TraceID: traceID, SpanID: spanID}
		e := &Entry{Index: i, Header: h.Marshal(), Erased: erased}
		if !erased {
			e.Payload, _ = proto.Marshal(sp)
		}
		return e
	}
	resEntry := func(erased bool) *Entry {
		return entry(0, resID, v1.SpanKind_SPAN_KIND_OTHER, &v1.Span{Name: "otlp.resource_scope", Otlp: &v1.OtlpSource{ResourceScope: rsc}}, erased)
	}
	otlpSpan, err := proto.Marshal(&trace.Span{TraceId: traceID[:], SpanId: []byte{0, 0, 0, 0, 0, 0, 0, 1}, Name: "chat gpt-4o"})
	if err != nil {
		t.Fatal(err)
	}
	span := entry(1, [8]byte{7: 1}, v1.SpanKind_SPAN_KIND_GENERATION,
		&v1.Span{Name: "chat gpt-4o", Otlp: &v1.OtlpSource{Span: otlpSpan, ResourceScopeSha256: digest[:]}}, false)
	for _, c := range []struct {
		name    string
		entries []*Entry
		want    []string
		not     []string
	}{
		{"resource entry first", []*Entry{resEntry(false), span}, []string{"support-bot"}, []string{"otlp.resource_scope", "not in this bundle"}},
		{"resource entry last", []*Entry{span, resEntry(false)}, []string{"support-bot"}, []string{"otlp.resource_scope", "not in this bundle"}},
		{"resource entry erased", []*Entry{resEntry(true), span}, []string{"not in this bundle"}, []string{"support-bot", "(payload erased)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			rw := NewReportWriter(&out, ReportInfo{Tenant: "default"}, nil)
			rw.Trace(traceID, c.entries)
			if err := rw.Close(); err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("the report does not show %q", w)
				}
			}
			for _, w := range c.not {
				if strings.Contains(out.String(), w) {
					t.Errorf("the report shows %q", w)
				}
			}
			if n := strings.Count(out.String(), "chat gpt-4o</"); n != 1 {
				t.Errorf("the span is shown %d times, want once", n)
			}
		})
	}
}

// TestWriteTracesIsTrace: WriteTraces, which lays traces out on several
// goroutines, writes the bytes that Trace writes one trace after the other
// (traces shown, then listed once MaxReportSpans is reached), and returns
// the first error of read in trace order.
func TestWriteTracesIsTrace(t *testing.T) {
	var traces [][16]byte
	var entries [][]*Entry
	next := uint64(0)
	for ti, n := range []int{3, 1, 700, 5, 900, 380, 2, 1, 40, 7} { // the ninth passes MaxReportSpans
		tr := [16]byte{byte(ti + 1)}
		traces = append(traces, tr)
		var es []*Entry
		for j := range n {
			sp := &v1.Span{Name: "step " + strings.Repeat("é", j%5), Kind: v1.SpanKind(1 + j%8),
				Content: &v1.Content{InputMessages: []*v1.Message{{Role: "user", Parts: []*v1.MessagePart{{Part: &v1.MessagePart_Text{Text: "q"}}}}}}}
			payload, _ := proto.Marshal(sp)
			h := format.Header{Kind: format.KindSpan, SubKind: uint8(sp.Kind), Tenant: "default", Index: next, RetentionClass: "default", TraceID: tr}
			h.SpanID[6], h.SpanID[7] = byte(j>>8), byte(j+1)
			if j > 0 {
				h.ParentSpanID[7] = byte((j-1)/2 + 1)
			}
			es = append(es, &Entry{Index: next, Header: h.Marshal(), Payload: payload, Erased: j == 4})
			next++
		}
		entries = append(entries, es)
	}
	var want bytes.Buffer
	rw := NewReportWriter(&want, ReportInfo{Tenant: "default"}, nil)
	for i, tr := range traces {
		rw.Trace(tr, entries[i])
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(want.String(), "more traces not shown") && !strings.Contains(want.String(), hex.EncodeToString(traces[8][:])) {
		t.Fatal("the ninth trace is neither shown nor listed")
	}
	sizes := make([]int, len(traces))
	for i := range entries {
		sizes[i] = len(entries[i])
	}
	var got bytes.Buffer
	rw = NewReportWriter(&got, ReportInfo{Tenant: "default"}, nil)
	var mu sync.Mutex
	read := map[int]bool{}
	if err := rw.WriteTraces(traces, sizes, func(i int, add func(*Entry)) error {
		mu.Lock()
		read[i] = true
		mu.Unlock()
		for _, e := range entries[i] {
			add(e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Errorf("WriteTraces wrote %d bytes, Trace %d; they differ", got.Len(), want.Len())
	}
	if read[8] {
		t.Error("WriteTraces read the entries of a trace it only lists")
	}

	boom := errors.New("read failed")
	rw = NewReportWriter(io.Discard, ReportInfo{Tenant: "default"}, nil)
	err := rw.WriteTraces(traces, sizes, func(i int, add func(*Entry)) error {
		if i == 3 || i == 5 {
			return fmt.Errorf("trace %d: %w", i, boom)
		}
		return nil
	})
	if err == nil || err.Error() != "trace 3: read failed" {
		t.Errorf("WriteTraces with reads of traces 3 and 5 failing = %v, want trace 3's error", err)
	}
}

// TestFailedThenSkippedCheckStaysFailed: a check can fail and then be marked
// not run: skip sets Skipped whatever failed before. Verify does this to
// "consistency proof" when the bundle's consistency proof failed (the log
// at the bundle's size does not extend its old checkpoint: a fork) and the
// pinned checkpoint given then does not verify (verify.go, skip after the
// fails of the consistency block). Since ux1 such a check is printed as
// "--" ("found nothing wrong") and summed up as "not checked": the failure
// found, fork evidence included, is shown nowhere.
func TestFailedThenSkippedCheckStaysFailed(t *testing.T) {
	v := &verifier{rep: &Report{Format: FormatV2}, checks: map[string]*Check{}}
	for _, name := range []string{CheckSignature, CheckPinned, CheckConsistency} {
		c := &Check{Name: name}
		v.rep.Checks = append(v.rep.Checks, c)
		v.checks[name] = c
	}
	v.pass(CheckSignature)
	v.fail(CheckConsistency, "the log at size 9 does not extend its checkpoint at size 5: fork")
	v.fail(CheckPinned, "the pinned checkpoint does not verify")
	v.skip(CheckConsistency, "no valid pinned checkpoint")
	var out strings.Builder
	v.rep.Write(&out)
	t.Logf("Summary() = %q\nFailed() = %q\nWrite:\n%s", v.rep.Summary(), v.rep.Failed(), out.String())
	if !strings.Contains(v.rep.Summary(), CheckConsistency+" failed") && !strings.Contains(v.rep.Summary(), ", "+CheckConsistency+" failed") {
		t.Errorf("Summary() = %q: the consistency proof failed, and is not named as failed", v.rep.Summary())
	}
	if !strings.Contains(out.String(), "does not extend") {
		t.Errorf("the report does not show the consistency failure found")
	}
}
