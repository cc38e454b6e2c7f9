package main

import (
	"context"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// pagedAudit answers GetTrace with the pages given, by page token.
type pagedAudit struct {
	veritracev1connect.AuditServiceClient
	pages map[string]*v1.GetTraceResponse
}

func (a pagedAudit) GetTrace(_ context.Context, req *connect.Request[v1.GetTraceRequest]) (*connect.Response[v1.GetTraceResponse], error) {
	return connect.NewResponse(a.pages[req.Msg.GetPageToken()]), nil
}

// Attack 31, A (--json over pages): a span whose content the first page
// omits is erased before the page that would give it. The second page
// shows it erased (no content, not omitted). fetchTrace copies that node's
// empty content into the first page's node and clears content_omitted,
// but leaves erased false: `veritrace trace --json` then shows a span that
// is neither erased nor omitted and has no content, which says nothing
// true about it (it was erased).
func TestAttack31FetchTraceSpanErasedBetweenPages(t *testing.T) {
	id := make([]byte, 16)
	first := &v1.GetTraceResponse{TraceId: id, NextPageToken: "p2", Roots: []*v1.SpanNode{
		{Index: 4, SpanId: []byte{1}, Span: &v1.Span{Name: "a"}},
		{Index: 5, SpanId: []byte{2}, ContentOmitted: true},
	}}
	second := &v1.GetTraceResponse{TraceId: id, Roots: []*v1.SpanNode{
		{Index: 4, SpanId: []byte{1}, ContentOmitted: true},
		{Index: 5, SpanId: []byte{2}, Erased: true},
	}}
	got, err := fetchTrace(context.Background(), pagedAudit{pages: map[string]*v1.GetTraceResponse{"": first, "p2": second}}, id)
	if err != nil {
		t.Fatal(err)
	}
	n := got.GetRoots()[1]
	if !n.GetErased() && !n.GetContentOmitted() && n.GetSpan() == nil && n.GetDecodeError() == "" {
		t.Errorf("span 5, erased between pages, comes out of fetchTrace as %v: neither erased nor content_omitted, and no content", n)
	}
}

// Attack 31, A (spans appended between pages): a trace still being written
// is read while spans are appended to it (one a page here, cap one span's
// content). The server's later pages give the first page's last omitted
// span, then the new spans, each naming the next new span as where the
// next page starts, as GetTrace does (its token is the next ledger index).
// fetchTrace counts the pages against the first page's spans and fails
// the whole read ("more pages than the trace has spans") though every span
// of the first page had its content given.
func TestAttack31FetchTraceOfGrowingTrace(t *testing.T) {
	id := make([]byte, 16)
	pages := map[string]*v1.GetTraceResponse{
		"": {TraceId: id, NextPageToken: "p2", Roots: []*v1.SpanNode{
			{Index: 1, SpanId: []byte{1}, Span: &v1.Span{Name: "a"}},
			{Index: 2, SpanId: []byte{2}, ContentOmitted: true},
		}},
		"p2": {TraceId: id, NextPageToken: "p3", Roots: []*v1.SpanNode{
			{Index: 1, SpanId: []byte{1}, ContentOmitted: true},
			{Index: 2, SpanId: []byte{2}, Span: &v1.Span{Name: "b"}},
			{Index: 3, SpanId: []byte{3}, ContentOmitted: true},
		}},
		"p3": {TraceId: id, NextPageToken: "p4", Roots: []*v1.SpanNode{
			{Index: 1, SpanId: []byte{1}, ContentOmitted: true},
			{Index: 2, SpanId: []byte{2}, ContentOmitted: true},
			{Index: 3, SpanId: []byte{3}, Span: &v1.Span{Name: "c"}},
			{Index: 4, SpanId: []byte{4}, ContentOmitted: true},
		}},
		"p4": {TraceId: id, Roots: []*v1.SpanNode{
			{Index: 1, SpanId: []byte{1}, ContentOmitted: true},
			{Index: 2, SpanId: []byte{2}, ContentOmitted: true},
			{Index: 3, SpanId: []byte{3}, ContentOmitted: true},
			{Index: 4, SpanId: []byte{4}, Span: &v1.Span{Name: "d"}},
		}},
	}
	got, err := fetchTrace(context.Background(), pagedAudit{pages: pages}, id)
	if err != nil {
		t.Fatalf("reading a trace that grew by a span a page: %v; want the first page's spans, each with its content", err)
	}
	for _, n := range got.GetRoots() {
		if n.GetContentOmitted() {
			t.Errorf("span %d's content is missing", n.GetIndex())
		}
	}
}
