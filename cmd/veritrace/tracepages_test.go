package main

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// pagedAudit answers GetTrace with the pages given, by page token.
type pagedAudit struct {
	veritracev1connect.AuditServiceClient
	pages map[string]*v1.GetTraceResponse
	asked *int // if not nil, counts the pages asked for
}

func (a pagedAudit) GetTrace(_ context.Context, req *connect.Request[v1.GetTraceRequest]) (*connect.Response[v1.GetTraceResponse], error) {
	if a.asked != nil {
		*a.asked++
	}
	p, ok := a.pages[req.Msg.GetPageToken()]
	if !ok {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("no page %q", req.Msg.GetPageToken()))
	}
	return connect.NewResponse(proto.Clone(p).(*v1.GetTraceResponse)), nil
}

// A span whose content the first page omits is erased before the page
// that would give it (attack 31, D2): the second page shows it erased,
// and so does fetchTrace's tree (it copied the empty content and cleared
// content_omitted, but left erased false: a span neither erased nor
// omitted, without content). So does a span the first page gave, erased
// since: its content is dropped, and the tombstone named.
func TestFetchTraceMarksSpansErasedBetweenPages(t *testing.T) {
	id := make([]byte, 16)
	tomb := uint64(9)
	first := &v1.GetTraceResponse{TraceId: id, NextPageToken: "p2", Roots: []*v1.SpanNode{
		{Index: 4, SpanId: []byte{1}, Span: &v1.Span{Name: "a"}},
		{Index: 5, SpanId: []byte{2}, ContentOmitted: true},
	}}
	second := &v1.GetTraceResponse{TraceId: id, Roots: []*v1.SpanNode{
		{Index: 4, SpanId: []byte{1}, Erased: true, ErasedByTombstone: &tomb},
		{Index: 5, SpanId: []byte{2}, Erased: true, ErasedByTombstone: &tomb},
	}}
	got, err := fetchTrace(context.Background(), pagedAudit{pages: map[string]*v1.GetTraceResponse{"": first, "p2": second}}, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range got.GetRoots() {
		if !n.GetErased() || n.GetContentOmitted() || n.GetSpan() != nil || n.GetErasedByTombstone() != tomb {
			t.Errorf("span %d, erased between pages, comes out of fetchTrace as %v; want erased by tombstone %d, no content", n.GetIndex(), n, tomb)
		}
	}
}

// A trace still being written is read while spans are appended to it (one
// a page here, cap one span's content; attack 31, D3). The server's later
// pages give the first page's last omitted span, then the new spans, each
// naming the next new span as where the next page starts, as GetTrace does
// (its token is the next ledger index). fetchTrace stops once every span
// of the first page has its content (it counted the pages against the
// first page's spans and failed the read: "more pages than the trace has
// spans").
func TestFetchTraceOfTraceGrowingBetweenPages(t *testing.T) {
	asked := 0
	pages := growingPages()
	got, err := fetchTrace(context.Background(), pagedAudit{pages: pages, asked: &asked}, make([]byte, 16))
	if err != nil {
		t.Fatalf("reading a trace that grew by a span a page: %v; want the first page's spans, each with its content", err)
	}
	for _, n := range got.GetRoots() {
		if n.GetContentOmitted() {
			t.Errorf("span %d's content is missing", n.GetIndex())
		}
	}
	if len(got.GetRoots()) != 2 || asked != 2 {
		t.Errorf("fetchTrace read %d pages and shows %d spans; want the first page's 2 spans, read in 2 pages", asked, len(got.GetRoots()))
	}
}

// growingPages are the pages of a trace that grows by a span a page.
func growingPages() map[string]*v1.GetTraceResponse {
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
	return pages
}

// An entry the first page shows as a span whose content it omits, and a
// later page leaves out of its tree, is an OTLP resource entry: the first
// page read none of its payload, so could not tell. fetchTrace leaves it
// out too, its children (if any) in its place, and does not wait for its
// content.
func TestFetchTraceLeavesOutResourceEntriesALaterPageFinds(t *testing.T) {
	id := make([]byte, 16)
	pages := map[string]*v1.GetTraceResponse{
		"": {TraceId: id, NextPageToken: "p2", Roots: []*v1.SpanNode{
			{Index: 1, SpanId: []byte{1}, Span: &v1.Span{Name: "a"}},
			{Index: 2, SpanId: []byte{2}, ContentOmitted: true, Children: []*v1.SpanNode{{Index: 4, SpanId: []byte{4}, ContentOmitted: true}}},
			{Index: 3, SpanId: []byte{3}, ContentOmitted: true},
		}},
		"p2": {TraceId: id, Roots: []*v1.SpanNode{
			{Index: 1, SpanId: []byte{1}, ContentOmitted: true},
			{Index: 3, SpanId: []byte{3}, Span: &v1.Span{Name: "c"}},
			{Index: 4, SpanId: []byte{4}, Span: &v1.Span{Name: "d"}},
		}},
	}
	got, err := fetchTrace(context.Background(), pagedAudit{pages: pages}, id)
	if err != nil {
		t.Fatal(err)
	}
	var shown []string
	walkSpanNodes(got.GetRoots(), func(n *v1.SpanNode) {
		shown = append(shown, fmt.Sprintf("%d:%s:%v", n.GetIndex(), n.GetSpan().GetName(), n.GetContentOmitted()))
	})
	if diff := cmp.Diff([]string{"1:a:false", "3:c:false", "4:d:false"}, sortedStrings(shown)); diff != "" {
		t.Errorf("fetchTrace's tree (-want +got):\n%s", diff)
	}
}

func sortedStrings(s []string) []string { slices.Sort(s); return s }
