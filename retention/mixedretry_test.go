package retention

import (
	"context"
	"fmt"
	"testing"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// A retry (lost answer) of [A] sent as [A, B] after revision 2, while
// revision 3 is recorded between B's classification and its commit.
func TestMixedRetryAcrossPolicyChanges(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	a, b := e.node("a"), e.node("b")
	mk := func(c *Classification, tr byte) ledger.Record {
		f := SpanFacts{Kind: 1, Error: true}
		r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Subject: "ines", RetentionClass: c.Class(f), Payload: []byte(fmt.Sprintf("error span %d", tr))}
		r.TraceID[0], r.TraceID[15], r.SpanID[0] = tr, 1, 1
		return r
	}
	first, err := a.AppendSpans(ctx, "default", func(c *Classification) ([]ledger.Record, error) { return []ledger.Record{mk(c, 1)}, nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	keepErrors(t, b)
	size0, _ := e.l.Size(ctx, "default")
	var revs []int
	a.beforeSpanAppend = func() {
		a.beforeSpanAppend = nil
		p, _ := b.Policy(ctx, "default")
		p.Rules[len(p.Rules)-1].Days = 2500
		if _, _, err := b.SetPolicy(ctx, "default", *p, "co", "longer"); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := a.AppendSpans(ctx, "default", func(c *Classification) ([]ledger.Record, error) {
		revs = append(revs, c.Revision())
		return []ledger.Record{mk(c, 1), mk(c, 2)}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rs[0].Duplicate || rs[0].Index != first[0].Index || rs[1].Duplicate {
		t.Fatalf("receipts %+v, first %+v", rs, first)
	}
	if size, _ := e.l.Size(ctx, "default"); size != size0+2 {
		t.Errorf("log grew by %d, want 2 (revision 3 and B)", size-size0)
	}
	hs, _ := e.l.Headers(ctx, "default", []uint64{rs[0].Index, rs[1].Index})
	if in := revisionAt(t, e, rs[1].Index); in.Revision != 3 || hs[1].RetentionClass != in.Classify(SpanFacts{Kind: 1, Error: true}) {
		t.Errorf("B at %d: class %q, revision in force %d (classified under %v)", rs[1].Index, hs[1].RetentionClass, in.Revision, revs)
	}
	if hs[0].RetentionClass != DefaultClass {
		t.Errorf("A (duplicate) class %q, want %q", hs[0].RetentionClass, DefaultClass)
	}
	t.Logf("classified under %v; A %s at %d, B %s at %d", revs, hs[0].RetentionClass, rs[0].Index, hs[1].RetentionClass, rs[1].Index)
}
