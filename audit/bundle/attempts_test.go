package bundle

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

func TestAttempts(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	gen, tool, emb := v1.SpanKind_SPAN_KIND_GENERATION, v1.SpanKind_SPAN_KIND_TOOL, v1.SpanKind_SPAN_KIND_EMBEDDING
	at := func(s int, k v1.SpanKind, failed bool) AttemptSpan {
		return AttemptSpan{Kind: k, Start: t0.Add(time.Duration(s) * time.Second), Error: failed}
	}
	for _, tc := range []struct {
		name string
		in   []AttemptSpan
		want []Attempt
	}{
		{"one call", []AttemptSpan{at(0, gen, false)}, []Attempt{{}}},
		{"retry then success, given out of order", []AttemptSpan{at(2, gen, false), at(0, gen, true), at(1, gen, true)},
			[]Attempt{{3, 3}, {1, 3}, {2, 3}}},
		{"all failed", []AttemptSpan{at(0, gen, true), at(1, gen, true)}, []Attempt{{1, 2}, {2, 2}}},
		{"two steps that both succeeded", []AttemptSpan{at(0, gen, false), at(1, gen, false)}, []Attempt{{}, {}}},
		{"a tool call between separates steps", []AttemptSpan{at(0, gen, true), at(1, tool, false), at(2, gen, false)}, []Attempt{{}, {}, {}}},
		{"kinds differ", []AttemptSpan{at(0, emb, true), at(1, gen, false)}, []Attempt{{}, {}}},
		{"a failed tool is not an attempt", []AttemptSpan{at(0, tool, true), at(1, tool, false)}, []Attempt{{}, {}}},
		{"a success ends a run", []AttemptSpan{at(0, gen, true), at(1, gen, false), at(2, gen, true), at(3, gen, false)},
			[]Attempt{{1, 2}, {2, 2}, {1, 2}, {2, 2}}},
	} {
		if diff := cmp.Diff(tc.want, Attempts(tc.in)); diff != "" {
			t.Errorf("%s: Attempts (-want +got):\n%s", tc.name, diff)
		}
	}
}
