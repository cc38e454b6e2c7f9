package rpc

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// A GetTrace answer is bounded in bytes, whatever the trace's spans hold:
// a trace whose content exceeds the cap (here 8 KiB, spans of 2 KiB each)
// is answered in pages, each with the whole tree, the content of the spans
// that fit, content_omitted on the others and a next_page_token that
// continues where it stopped, until every span's content has been given
// exactly once. A token GetTrace did not return is refused.
func TestGetTraceAnswerIsPaged(t *testing.T) {
	const capBytes, n = 8 << 10, 12
	s := startServerWith(t, Options{MaxTraceAnswerBytes: capBytes})
	ctx := context.Background()
	s.tenant(t, "big")
	app := s.clients("connect", "big", s.key(t, policy.Ingester, "big"))
	aud := s.clients("connect", "big", s.key(t, policy.Auditor, "big"))
	var spans []*v1.Span
	for i := range n {
		sp := testSpan(i % 10) // one trace
		sp.SpanId[7] = byte(i + 1)
		sp.Content.OutputMessages[0].Parts[0].Part = &v1.MessagePart_Text{Text: strings.Repeat("x", 2<<10)}
		spans = append(spans, sp)
	}
	if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: spans})); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]int{}
	token, pages := "", 0
	for {
		pages++
		if pages > n+1 {
			t.Fatalf("GetTrace pages do not end after %d pages", pages)
		}
		resp, err := aud.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: spans[0].TraceId, PageToken: token}))
		if err != nil {
			t.Fatalf("GetTrace page %d = %v", pages, err)
		}
		content, nodes := 0, 0
		walkNodes(resp.Msg.GetRoots(), func(nd *v1.SpanNode) {
			nodes++
			if nd.GetContentOmitted() {
				if nd.GetSpan() != nil || nd.GetOtlpJson() != "" {
					t.Errorf("page %d: span %d is content_omitted but has content", pages, nd.GetIndex())
				}
				return
			}
			seen[nd.GetIndex()]++
			content += proto.Size(nd.GetSpan()) + len(nd.GetOtlpJson()) + len(nd.GetDecodeError())
		})
		if nodes != n {
			t.Errorf("page %d shows %d spans in its tree, want all %d", pages, nodes, n)
		}
		if content > capBytes {
			t.Errorf("page %d gives %d bytes of span content, more than the %d-byte cap", pages, content, capBytes)
		}
		if token = resp.Msg.GetNextPageToken(); token == "" {
			break
		}
	}
	if pages < 3 {
		t.Errorf("a trace of %d 2-KiB spans under an 8-KiB cap came in %d pages, want at least 3", n, pages)
	}
	if len(seen) != n {
		t.Errorf("the pages gave the content of %d spans, want all %d", len(seen), n)
	}
	for i, c := range seen {
		if c != 1 {
			t.Errorf("span %d's content was given %d times, want once", i, c)
		}
	}
	for _, bad := range []string{"x", "AAAAAAAAAAAAAAAAAAAA", "!!"} {
		_, err := aud.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: spans[0].TraceId, PageToken: bad}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "page_token") {
			t.Errorf("GetTrace with page_token %q = %v, want invalid_argument naming page_token", bad, err)
		}
	}
}

// walkNodes calls f on every node of a tree.
func walkNodes(ns []*v1.SpanNode, f func(*v1.SpanNode)) {
	for _, nd := range ns {
		f(nd)
		walkNodes(nd.GetChildren(), f)
	}
}
