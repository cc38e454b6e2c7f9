package main

import (
	"strings"
	"testing"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// TestPrintTraceTreeDeep: a tree deeper than maxTreeIndent prints a line
// a span, indented at most maxTreeIndent levels, the deeper ones with
// their depth; a span not under its parent says why.
func TestPrintTraceTreeDeep(t *testing.T) {
	const n = 300
	root := &v1.SpanNode{SpanId: []byte{1}, Span: &v1.Span{Name: "root"}}
	at := root
	for i := 1; i < n; i++ {
		c := &v1.SpanNode{SpanId: []byte{2, byte(i >> 8), byte(i)}, Span: &v1.Span{Name: "step", ParentSpanId: at.SpanId}}
		at.Children = append(at.Children, c)
		at = c
	}
	at.Children = append(at.Children, &v1.SpanNode{SpanId: []byte{3}, Span: &v1.Span{Name: "capped", ParentSpanId: []byte{0xca, 0xfe}}, Placement: v1.TreePlacement_TREE_PLACEMENT_DEPTH_CAPPED})
	loop := &v1.SpanNode{SpanId: []byte{4}, Span: &v1.Span{Name: "loop", ParentSpanId: []byte{0xbe, 0xef}}, Placement: v1.TreePlacement_TREE_PLACEMENT_PARENT_CYCLE}
	var out strings.Builder
	printTraceTree(&out, &v1.GetTraceResponse{Roots: []*v1.SpanNode{root, loop}})
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1+n+2 {
		t.Fatalf("printTraceTree printed %d lines, want %d", len(lines), 1+n+2)
	}
	for _, l := range lines {
		if ind := len(l) - len(strings.TrimLeft(l, " ")); ind > 2*maxTreeIndent {
			t.Fatalf("line indented %d spaces, want at most %d: %q", ind, 2*maxTreeIndent, l)
		}
	}
	for _, want := range []string{"[depth 300] step", "parent cafe: nested too deep, shown beside it", "parent beef is on a loop of parents"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printTraceTree printed no %q", want)
		}
	}
}
