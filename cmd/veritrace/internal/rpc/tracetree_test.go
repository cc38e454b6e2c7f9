package rpc

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// TestTraceParentCycle: two spans of one trace, each naming the
// other as its parent (an app may send any parent_span_id; the parent may
// arrive later, so ingest cannot refuse it). GetTrace links each under the
// other and neither becomes a root: both vanish from the answer, and
// `veritrace trace` shows an empty decision path, though the ledger holds
// both spans. An untrusted app can hide any spans from the tree this way.
func TestTraceParentCycle(t *testing.T) {
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
	var cycle int
	for _, r := range tr.Msg.GetRoots() {
		if r.GetPlacement() == v1.TreePlacement_TREE_PLACEMENT_PARENT_CYCLE {
			cycle++
		}
	}
	if cycle != 1 {
		t.Errorf("GetTrace() of a 2-span parent loop has %d roots marked PARENT_CYCLE, want 1", cycle)
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

// TestTraceDeepNesting: a trace of spans each the child of the
// previous (a chain, within MaxPathSpans) is a GetTraceResponse nested as
// deep as the chain is long. The generated client's decoder refuses a
// message nested deeper than protobuf's recursion limit (10,000), so the
// auditor cannot read the trace at all (veritrace trace, with or without
// --json), though every span was accepted.
func TestTraceDeepNesting(t *testing.T) {
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
	tr, err := aud.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: trace}))
	if err != nil {
		t.Fatalf("GetTrace() of a %d-span chain = %v", n, err)
	}
	if got := countNodes(tr.Msg.GetRoots(), n+1); got != n {
		t.Errorf("GetTrace() of a %d-span chain shows %d spans", n, got)
	}
	if d := treeDepth(tr.Msg.GetRoots()); d != MaxTraceDepth {
		t.Errorf("GetTrace() of a %d-span chain nests %d deep, want %d", n, d, MaxTraceDepth)
	}
}

// treeDepth is how deep ns nests (roots are depth 1).
func treeDepth(ns []*v1.SpanNode) int {
	d := 0
	for _, n := range ns {
		d = max(d, 1+treeDepth(n.GetChildren()))
	}
	return d
}

// TestLinkTree: every span appears exactly once, at most MaxTraceDepth
// deep, whatever its spans name as parents, and those not shown under
// their parent say why.
func TestLinkTree(t *testing.T) {
	id := func(i int) [8]byte { return [8]byte{1, byte(i >> 8), byte(i)} }
	// build makes spans 0..len(parent)-1 in start order; parent[i] is the
	// index of span i's parent, -1 for none, or 9999 for one not in the
	// trace.
	build := func(parent []int) ([]*v1.SpanNode, map[[8]byte]*v1.SpanNode, map[*v1.SpanNode][8]byte) {
		var order []*v1.SpanNode
		nodes := map[[8]byte]*v1.SpanNode{}
		parents := map[*v1.SpanNode][8]byte{}
		for i, p := range parent {
			n := &v1.SpanNode{Index: uint64(i)}
			order = append(order, n)
			nodes[id(i)] = n
			if p >= 0 {
				parents[n] = id(p)
			}
		}
		return order, nodes, parents
	}
	chain := make([]int, 250)
	for i := range chain {
		chain[i] = i - 1
	}
	for _, tc := range []struct {
		name   string
		parent []int
		want   map[v1.TreePlacement]int
		depth  int
	}{
		{"tree", []int{-1, 0, 0, 1}, map[v1.TreePlacement]int{0: 4}, 3},
		{"parent missing", []int{-1, 9999, 1}, map[v1.TreePlacement]int{0: 2, 1: 1}, 2},
		{"own parent", []int{0, 0}, map[v1.TreePlacement]int{0: 1, 2: 1}, 2},
		// 0 hangs from the loop 1 -> 3 -> 2 -> 1 and starts first: 1, the
		// first span met twice going up from 0, becomes the root.
		{"loop with a descendant first", []int{1, 3, 1, 2}, map[v1.TreePlacement]int{0: 3, 2: 1}, 3},
		{"two loops", []int{1, 0, 3, 2, -1}, map[v1.TreePlacement]int{0: 3, 2: 2}, 2},
		{"chain past the cap", chain, map[v1.TreePlacement]int{0: MaxTraceDepth, 3: 250 - MaxTraceDepth}, MaxTraceDepth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			order, nodes, parents := build(tc.parent)
			roots := nestTree(linkTree(order, nodes, parents))
			seen := map[*v1.SpanNode]int{}
			got := map[v1.TreePlacement]int{}
			var walk func(ns []*v1.SpanNode)
			walk = func(ns []*v1.SpanNode) {
				for _, n := range ns {
					if seen[n]++; seen[n] == 1 {
						got[n.GetPlacement()]++
						walk(n.GetChildren())
					}
				}
			}
			walk(roots)
			for _, n := range order {
				if seen[n] != 1 {
					t.Errorf("span %d shown %d times, want once", n.GetIndex(), seen[n])
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("placements (-want +got):\n%s", diff)
			}
			if d := treeDepth(roots); d != tc.depth {
				t.Errorf("depth %d, want %d", d, tc.depth)
			}
		})
	}
}
