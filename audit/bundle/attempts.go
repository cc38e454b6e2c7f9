package bundle

import (
	"sort"
	"time"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// AttemptSpan is a span as attempt grouping sees it.
type AttemptSpan struct {
	Kind  v1.SpanKind
	Start time.Time
	Error bool
}

// Attempt numbers a span among the attempts at one step: the Nth of Of.
// The zero Attempt means the step was tried once.
type Attempt struct{ N, Of int }

// Attempts finds retries and fallbacks among the children of one parent
// (siblings, in any order): a run of model calls (GENERATION or EMBEDDING
// spans of one kind) that are consecutive in order of start, in which
// every call but the last failed, is one step tried several times (with
// the same model: retries; with another: fallbacks). It returns one
// Attempt per sibling, in the order given.
func Attempts(siblings []AttemptSpan) []Attempt {
	out := make([]Attempt, len(siblings))
	order := make([]int, len(siblings))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return siblings[order[a]].Start.Before(siblings[order[b]].Start) })
	model := func(k v1.SpanKind) bool {
		return k == v1.SpanKind_SPAN_KIND_GENERATION || k == v1.SpanKind_SPAN_KIND_EMBEDDING
	}
	for i := 0; i < len(order); {
		first := siblings[order[i]]
		j := i + 1
		if model(first.Kind) {
			// Extend the run while the last call in it failed and the next
			// sibling is a model call of the same kind.
			for j < len(order) && siblings[order[j-1]].Error && siblings[order[j]].Kind == first.Kind {
				j++
			}
		}
		if n := j - i; n > 1 {
			for k := i; k < j; k++ {
				out[order[k]] = Attempt{N: k - i + 1, Of: n}
			}
		}
		i = j
	}
	return out
}
