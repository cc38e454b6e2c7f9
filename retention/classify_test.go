package retention

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// A span is classified under the revision in force where its append
// commits: the policy whose retention entry is the last one before the
// span's entry in the log (the default policy if there is none). An
// auditor can tell it from the log alone.

// revisionAt returns the policy in force at index i of the tenant's log:
// the one recorded by the last retention entry before i.
func revisionAt(t *testing.T, e *env, i uint64) *Policy {
	t.Helper()
	ctx := context.Background()
	p := DefaultPolicy()
	in := &p
	for from := uint64(0); ; {
		ens, next, err := e.l.EntriesOfKind(ctx, "default", format.KindRetention, from, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range ens {
			if en.Header.Index >= i {
				return in
			}
			q := &Policy{}
			if err := json.Unmarshal(en.Payload, q); err != nil {
				t.Fatal(err)
			}
			in = q
		}
		if next == 0 {
			return in
		}
		from = next
	}
}

// errorSpan is a build for AppendSpans: one error span of trace tr,
// classified under the classification it is given.
func errorSpan(tr byte, revs *[]int) func(c *Classification) ([]ledger.Record, error) {
	return func(c *Classification) ([]ledger.Record, error) {
		*revs = append(*revs, c.Revision())
		f := SpanFacts{Kind: 1, Error: true}
		r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Subject: "ines", RetentionClass: c.Class(f), Payload: []byte(fmt.Sprintf("error span %d", tr))}
		r.TraceID[0], r.TraceID[15], r.SpanID[0] = tr, 1, 1
		return []ledger.Record{r}, nil
	}
}

// keepErrors adds a compliance rule keeping error spans six years to the
// tenant's policy, on node s.
func keepErrors(t *testing.T, s *Service) (*Policy, uint64) {
	t.Helper()
	ctx := context.Background()
	p, err := s.Policy(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	p.Rules = append(p.Rules, Rule{Class: "errors", Days: 2190, Mode: Compliance, Match: Match{Errors: &yes}})
	p, at, err := s.SetPolicy(ctx, "default", *p, "co", "AI Act: keep errors six years")
	if err != nil {
		t.Fatal(err)
	}
	return p, at
}

// Node a classifies an error span under revision 1 (the default rule
// keeps it 60 days); node b records revision 2, a compliance rule keeping
// error spans six years; node a's append then commits after revision 2's
// entry. The span must be classified under revision 2, the one in force
// where it commits: with revision 1's class, recorded in its header for
// good, the next sweep would expire it after 60 days although a
// compliance rule in force before it was appended keeps it six years.
func TestNodesSpanClassifiedUnderTheRevisionInForceWhereItCommits(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	a, b := e.node("a"), e.node("b")
	var at uint64
	a.beforeSpanAppend = func() {
		a.beforeSpanAppend = nil
		_, at = keepErrors(t, b)
	}
	var revs []int
	rs, err := a.AppendSpans(ctx, "default", errorSpan(1, &revs), nil)
	if err != nil {
		t.Fatalf("AppendSpans() = %v", err)
	}
	i := rs[0].Index
	h, err := e.l.Headers(ctx, "default", []uint64{i})
	if err != nil {
		t.Fatal(err)
	}
	in := revisionAt(t, e, i)
	if i < at || in.Revision != 2 {
		t.Fatalf("the span's entry %d, revision 2's %d: in force at the span is revision %d", i, at, in.Revision)
	}
	if got, want := h[0].RetentionClass, in.Classify(SpanFacts{Kind: 1, Error: true}); got != want {
		t.Errorf("the error span appended at %d after revision 2 (entry %d) has class %q (classified under revisions %v); revision 2, in force where it committed, gives %q", i, at, got, revs, want)
	}
	e.clock.Add(61 * Day)
	if _, err := b.Sweep(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	if e.erased(t, []uint64{i})[0] {
		t.Errorf("an error span appended after the compliance rule keeping errors six years was recorded is expired after 61 days")
	}
	e.verify(t)
}
