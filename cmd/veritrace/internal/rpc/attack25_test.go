package rpc

// Attack on the ux1 merge (trace as a tree): traces an untrusted app can
// append whose decision path the server or the CLI cannot show.

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// TestAttack25TraceParentCycle: two spans of one trace, each naming the
// other as its parent (an app may send any parent_span_id; the parent may
// arrive later, so ingest cannot refuse it). GetTrace links each under the
// other and neither becomes a root: both vanish from the answer, and
// `veritrace trace` shows an empty decision path, though the ledger holds
// both spans. An untrusted app can hide any spans from the tree this way.
func TestAttack25TraceParentCycle(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	s.tenant(t, "cycle")
	app := s.clients("connect", "cycle", s.key(t, policy.Ingester, "cycle"))
	aud := s.clients("connect", "cycle", s.key(t, policy.Auditor, "cycle"))
	root, a, b := testSpan(0), testSpan(1), testSpan(2)
	a.ParentSpanId, b.ParentSpanId = b.SpanId, a.SpanId
	if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{root, a, b}})); err != nil {
		t.Fatal(err)
	}
	tr, err := aud.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: a.TraceId}))
	if err != nil {
		t.Fatalf("GetTrace() = %v", err)
	}
	if got := countNodes(tr.Msg.GetRoots(), 10); got != 3 {
		t.Errorf("GetTrace() of 3 spans (2 each other's parent) shows %d reachable from its %d roots", got, len(tr.Msg.GetRoots()))
	}
}

// countNodes counts the nodes under ns, stopping at limit.
func countNodes(ns []*v1.SpanNode, limit int) int {
	n := 0
	for _, c := range ns {
		if n >= limit {
			break
		}
		n += 1 + countNodes(c.GetChildren(), limit-n-1)
	}
	return n
}

// TestAttack25TraceDeepNesting: a trace of spans each the child of the
// previous (a chain, within MaxPathSpans) is a GetTraceResponse nested as
// deep as the chain is long. The generated client's decoder refuses a
// message nested deeper than protobuf's recursion limit (10,000), so the
// auditor cannot read the trace at all (veritrace trace, with or without
// --json), though every span was accepted.
func TestAttack25TraceDeepNesting(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 10,000 spans")
	}
	s := startServer(t, 0)
	ctx := context.Background()
	s.tenant(t, "deep")
	app := s.clients("connect", "deep", s.key(t, policy.Ingester, "deep"))
	aud := s.clients("connect", "deep", s.key(t, policy.Auditor, "deep"))
	const n = 10_000 // audit.MaxPathSpans: the largest trace GetTrace shows
	var batch []*v1.Span
	var prev []byte
	trace := testSpan(0).TraceId
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for i := range n {
		sp := &v1.Span{TraceId: trace, SpanId: []byte{0xd, 0xe, 0xe, 0xb, 0, 0, byte(i >> 8), byte(i)},
			Name: "step", Kind: v1.SpanKind_SPAN_KIND_CHAIN, SubjectId: "customer-42", ParentSpanId: prev,
			StartTime: timestamppb.New(t0.Add(time.Duration(i) * time.Millisecond)), EndTime: timestamppb.New(t0.Add(time.Hour))}
		prev = sp.SpanId
		batch = append(batch, sp)
		if len(batch) == 500 {
			if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: batch})); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	_, err := aud.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: trace}))
	if err != nil {
		t.Fatalf("GetTrace() of a %d-span chain = %v", n, err)
	}
}
