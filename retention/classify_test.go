package retention

import (
	"context"
	"encoding/json"
	"errors"
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

// Appends on node a race policy changes on node b that move error spans
// from one class to another and back: every span, whichever revision it
// was first classified under, has the class the revision in force where
// it committed gives it.
func TestNodesSpansRacePolicyChanges(t *testing.T) {
	const maxChanges = 200
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	a, b := e.node("a"), e.node("b")
	done := make(chan struct{})
	changes := make(chan error, 1)
	go func() {
		defer close(changes)
		yes := true
		// At most maxChanges: an append that loses maxClassifyAttempts
		// races in a row is answered ErrPolicyChanged and sent again
		// (below), and must then get through once the changes end.
		for i := 0; i < maxChanges; i++ {
			select {
			case <-done:
				return
			default:
			}
			p, err := b.Policy(ctx, "default")
			if err != nil {
				changes <- err
				return
			}
			if len(p.Rules) == 0 {
				p.Rules = []Rule{{Class: fmt.Sprintf("errors-%d", i), Days: 400, Mode: Governance, Match: Match{Errors: &yes}}}
			} else {
				p.Rules = nil
			}
			if _, _, err := b.SetPolicy(ctx, "default", *p, "co", "toggle the errors rule"); err != nil {
				changes <- err
				return
			}
		}
	}()
	type appended struct {
		index uint64
		revs  []int
	}
	var got []appended
	gaveUp := 0
	for n := 0; n < 40; n++ {
		var revs []int
		rs, err := a.AppendSpans(ctx, "default", errorSpan(byte(n+1), &revs), nil)
		if errors.Is(err, ErrPolicyChanged) && gaveUp < maxChanges {
			gaveUp++ // nothing appended: sent again, as a client would
			n--
			continue
		}
		if err != nil {
			t.Fatalf("AppendSpans(span %d) = %v", n, err)
		}
		got = append(got, appended{rs[0].Index, revs})
	}
	close(done)
	if err := <-changes; err != nil {
		t.Fatalf("a policy change: %v", err)
	}
	retried := 0
	for _, g := range got {
		h, err := e.l.Headers(ctx, "default", []uint64{g.index})
		if err != nil {
			t.Fatal(err)
		}
		in := revisionAt(t, e, g.index)
		if want := in.Classify(SpanFacts{Kind: 1, Error: true}); h[0].RetentionClass != want {
			t.Errorf("the span at %d has class %q (classified under revisions %v); revision %d, in force where it committed, gives %q", g.index, h[0].RetentionClass, g.revs, in.Revision, want)
		}
		if len(g.revs) > 1 {
			retried++
		}
	}
	p, _ := a.Policy(ctx, "default")
	t.Logf("%d spans, %d revisions, %d spans classified again, %d appends sent again", len(got), p.Revision, retried, gaveUp)
}

// A policy changed each time the spans are classified: after
// maxClassifyAttempts classifications the append fails with
// ErrPolicyChanged, having appended nothing; sent again, it is appended.
func TestAppendSpansGivesUpWhileThePolicyKeepsChanging(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	a, b := e.node("a"), e.node("b")
	days := 60
	a.beforeSpanAppend = func() {
		days++
		p, err := b.Policy(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		p.Default.Days = days
		if _, _, err := b.SetPolicy(ctx, "default", *p, "co", "longer"); err != nil {
			t.Fatal(err)
		}
	}
	size, _ := e.l.Size(ctx, "default")
	var revs []int
	_, err := a.AppendSpans(ctx, "default", errorSpan(1, &revs), nil)
	var ce *ChangingError
	if !errors.Is(err, ErrPolicyChanged) || !errors.As(err, &ce) || ce.Attempts != maxClassifyAttempts || len(revs) != maxClassifyAttempts {
		t.Fatalf("AppendSpans(while every classification is followed by a policy change) = %v after %d classifications; want a *ChangingError after %d", err, len(revs), maxClassifyAttempts)
	}
	if now, _ := e.l.Size(ctx, "default"); now != size+maxClassifyAttempts {
		t.Errorf("the log grew by %d entries, want %d (the policy changes only)", now-size, maxClassifyAttempts)
	}
	a.beforeSpanAppend = nil
	if _, err := a.AppendSpans(ctx, "default", errorSpan(1, &revs), nil); err != nil {
		t.Errorf("AppendSpans(sent again) = %v", err)
	}
}

// A span appended before is not appended again: sent again after a
// policy change that would classify it otherwise, it gets its first
// receipt and keeps the class it committed with.
func TestAppendSpansRetryKeepsTheCommittedClass(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	var revs []int
	first, err := e.s.AppendSpans(ctx, "default", errorSpan(1, &revs), nil)
	if err != nil {
		t.Fatal(err)
	}
	keepErrors(t, e.s)
	again, err := e.s.AppendSpans(ctx, "default", errorSpan(1, &revs), nil)
	if err != nil || !again[0].Duplicate || again[0].Index != first[0].Index {
		t.Fatalf("AppendSpans(the same span again) = %+v, %v; want the first receipt (index %d), a duplicate", again, err, first[0].Index)
	}
	h, err := e.l.Headers(ctx, "default", []uint64{first[0].Index})
	if err != nil {
		t.Fatal(err)
	}
	if h[0].RetentionClass != DefaultClass {
		t.Errorf("the span committed under revision 1 has class %q, want %q", h[0].RetentionClass, DefaultClass)
	}
}

// A policy change recorded on node b between node a's sweep planning and
// its commit: the sweep never expires by the superseded revision. It
// plans again under the new one, which keeps everything longer, and
// erases nothing.
func TestNodesSweepPlannedBeforeAPolicyChangeErasesByTheNewOne(t *testing.T) {
	t.Cleanup(func() { testHookBeforeCommit = nil })
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	a, b := e.node("a"), e.node("b")
	idxs := e.spans(t, "jan", "", 1, 3, false, "j")
	e.clock.Add(61 * Day)
	var at uint64
	testHookBeforeCommit = func(er *Erasure, attempt int) error {
		if attempt == 0 {
			p, err := b.Policy(ctx, "default")
			if err != nil {
				return err
			}
			p.Default.Days = 400
			_, at, err = b.SetPolicy(ctx, "default", *p, "co", "keep a year")
			return err
		}
		return nil
	}
	r, err := a.Sweep(ctx, "default")
	if err != nil {
		t.Fatalf("Sweep() = %v", err)
	}
	if at == 0 {
		t.Fatal("the sweep committed without planning: the hook never ran")
	}
	if r.Erased != 0 || r.Tombstone != nil {
		t.Errorf("Sweep(planned under 60 days, committed after revision 2 keeping 400 days at %d) = erased %d, tombstone %v; want nothing erased, no tombstone", at, r.Erased, r.Tombstone)
	}
	if got := fmt.Sprint(e.erased(t, idxs)); got != "[false false false]" {
		t.Errorf("erased after the sweep: %s", got)
	}
	e.verify(t)
}
