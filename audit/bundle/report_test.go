package bundle

import (
	"bytes"
	"strings"
	"testing"

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
