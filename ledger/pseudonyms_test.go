package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// HavePseudonymKeys answers, in one pass, what PseudonymKey answers ref by
// ref: which refs have a key, in this tenant only, and its stamp.
func TestHavePseudonymKeys(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", span(0, "a"))
	if _, err := l.CreateTenant(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	var refs []TermRef
	for i := range 40 {
		for _, f := range []uint8{SubjectField, 9} {
			r, err := l.TermRefOf(ctx, "default", Term{Field: f, Value: fmt.Appendf(nil, "id-%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			refs = append(refs, r)
			if i%3 == 0 {
				if _, err := l.PseudonymKey(ctx, "default", r, true); err != nil {
					t.Fatal(err)
				}
			}
			if i%5 == 0 { // the same ref in another tenant: not this tenant's key
				if _, err := l.PseudonymKey(ctx, "other", r, true); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	var want []PseudonymRef
	for _, r := range refs {
		if k, err := l.PseudonymKey(ctx, "default", r, false); err == nil {
			want = append(want, PseudonymRef{Ref: r, Stamp: k.Stamp})
		} else if !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	slices.SortFunc(want, func(a, b PseudonymRef) int { return compareRefs(a.Ref, b.Ref) })
	slices.Reverse(refs)
	got, err := l.HavePseudonymKeys(ctx, "default", append(refs, refs[:7]...))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 28 {
		t.Fatalf("%d refs have a key, want 28", len(want))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("HavePseudonymKeys() differs from PseudonymKey ref by ref (-want +got):\n%s", diff)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.HavePseudonymKeys(cctx, "default", refs); !errors.Is(err, context.Canceled) {
		t.Errorf("HavePseudonymKeys(cancelled) = %v, want context.Canceled", err)
	}
}

// RetireBuckets lists with each entry the refs of its terms of the fields
// asked for, read from its envelope: those TermRefOf gives for its
// subject and session.
func TestRetireBucketsTerms(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	const session = 9
	for i := range 6 {
		r := span(i, "p")
		r.Terms = []Term{{Field: session, Value: fmt.Appendf(nil, "s-%d", i%2)}, {Field: 5, Value: []byte("model")}}
		mustAppend(t, l, "default", r)
	}
	buckets, err := l.Buckets(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := l.RetireBuckets(ctx, "default", buckets, SubjectField, session)
	if err != nil || len(entries) != 6 {
		t.Fatalf("RetireBuckets() = %d entries, %v; want 6", len(entries), err)
	}
	for i, e := range entries {
		var want []TermRef
		for _, tm := range []Term{{Field: SubjectField, Value: fmt.Appendf(nil, "user-%d", i%3)}, {Field: session, Value: fmt.Appendf(nil, "s-%d", i%2)}} {
			r, err := l.TermRefOf(ctx, "default", tm)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, r)
		}
		got := slices.Clone(e.Terms)
		slices.SortFunc(got, compareRefs)
		slices.SortFunc(want, compareRefs)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("entry %d: terms (-want +got):\n%s", e.Index, diff)
		}
	}
	if entries, err := l.RetireBuckets(ctx, "default", buckets); err != nil || entries[0].Terms != nil {
		t.Errorf("RetireBuckets(no fields) = %v, %v; want entries without terms", entries[0].Terms, err)
	}
}
