package rpc

import (
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// MaxTraceDepth is how deep GetTrace nests span nodes (roots are depth
// 1). A span whose parent is at this depth is shown beside its parent,
// marked TREE_PLACEMENT_DEPTH_CAPPED. Protobuf decoders refuse a message
// nested past their recursion limit: 10,000 levels in Go, 100 in
// protobuf-es (the console) and other runtimes. A span holds up to 65
// levels of its own (an attribute value nested bundle.MaxValueDepth deep
// is 63), so that 1 + 32 + 65 = 98 levels: any answer decodes with every
// runtime's default limit (the console's test/tracedepth.test.ts checks
// it at this depth), and the CLI and console can indent it.
const MaxTraceDepth = 32

// linkTree finds a trace's roots and each span's children, as its spans
// name them, so that every span is reachable from exactly one root: a
// span with no parent, or a parent not among nodes (marked
// TREE_PLACEMENT_PARENT_MISSING), is a root; so is one span of every loop
// of parents no root is above (TREE_PLACEMENT_PARENT_CYCLE), its link to
// its parent cut. order is nodes by start; roots and every children list
// keep that order. parents maps each node to its parent_span_id. It costs
// O(len(order)).
func linkTree(order []*v1.SpanNode, nodes map[[8]byte]*v1.SpanNode, parents map[*v1.SpanNode][8]byte) (roots []*v1.SpanNode, kids map[*v1.SpanNode][]*v1.SpanNode) {
	kids = map[*v1.SpanNode][]*v1.SpanNode{}
	parent := func(n *v1.SpanNode) *v1.SpanNode {
		if id := parents[n]; id != ([8]byte{}) {
			return nodes[id]
		}
		return nil
	}
	isRoot := map[*v1.SpanNode]bool{}
	for _, n := range order {
		switch p := parent(n); {
		case parents[n] == ([8]byte{}):
			isRoot[n] = true
		case p == nil:
			n.Placement = v1.TreePlacement_TREE_PLACEMENT_PARENT_MISSING
			isRoot[n] = true
		case p == n:
			n.Placement = v1.TreePlacement_TREE_PLACEMENT_PARENT_CYCLE
			isRoot[n] = true
		default:
			kids[p] = append(kids[p], n)
		}
	}
	// Every span is now a root, or below a root, or on or below a loop.
	reached := map[*v1.SpanNode]bool{}
	reach := func(r *v1.SpanNode) {
		stack := []*v1.SpanNode{r}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			reached[n] = true
			for _, c := range kids[n] {
				if !isRoot[c] {
					stack = append(stack, c)
				}
			}
		}
	}
	for _, n := range order {
		if isRoot[n] {
			reach(n)
		}
	}
	for _, n := range order {
		if reached[n] {
			continue
		}
		// Parents from n lead into a loop no root is above: the first
		// span met twice is on it. It becomes a root; its parent's list
		// of children drops it.
		seen := map[*v1.SpanNode]bool{}
		m := n
		for !seen[m] {
			seen[m] = true
			m = parent(m)
		}
		m.Placement = v1.TreePlacement_TREE_PLACEMENT_PARENT_CYCLE
		isRoot[m] = true
		p := parent(m)
		for i, c := range kids[p] {
			if c == m {
				kids[p] = append(kids[p][:i:i], kids[p][i+1:]...)
				break
			}
		}
		reach(m)
	}
	for _, n := range order {
		if isRoot[n] {
			roots = append(roots, n)
		}
	}
	return roots, kids
}

// nestTree sets each node's Children from kids, below roots, at most
// MaxTraceDepth deep: the children of a span at the cap are placed
// beside it (TREE_PLACEMENT_DEPTH_CAPPED), in the order a depth-first
// walk meets them. It returns roots. kids must be a forest (linkTree).
func nestTree(roots []*v1.SpanNode, kids map[*v1.SpanNode][]*v1.SpanNode) []*v1.SpanNode {
	type item struct {
		n, holder *v1.SpanNode // holder: whose Children n is shown in
		depth     int
	}
	var stack []item
	push := func(n *v1.SpanNode, depth int, holder *v1.SpanNode) {
		cs := kids[n]
		for i := len(cs) - 1; i >= 0; i-- {
			if depth < MaxTraceDepth {
				stack = append(stack, item{cs[i], n, depth + 1})
			} else {
				cs[i].Placement = v1.TreePlacement_TREE_PLACEMENT_DEPTH_CAPPED
				stack = append(stack, item{cs[i], holder, depth})
			}
		}
	}
	for _, r := range roots {
		push(r, 1, nil)
		for len(stack) > 0 {
			it := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			it.holder.Children = append(it.holder.Children, it.n)
			push(it.n, it.depth, it.holder)
		}
	}
	return roots
}
