package ledger

import (
	"context"
	"errors"
	"testing"
)

// Shred destroys a pseudonym key only if it is still the key the caller
// named by its stamp: a key made again for the same id after the named one
// was destroyed (the id seen again) survives a second run of the same
// destruction, as a resumed or stale plan makes.
func TestShredDestroysOnlyTheStampedPseudonymKey(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	mustAppend(t, l, "default", subjectSpan(1, "alice", "a"))
	ref, err := l.TermRefOf(ctx, "default", Term{Field: SubjectField, Value: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	k1, err := l.PseudonymKey(ctx, "default", ref, true)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := l.PseudonymKey(ctx, "default", ref, false); err != nil || again.Stamp != k1.Stamp {
		t.Fatalf("PseudonymKey read again: stamp %v, %v; want %s", again, err, k1.Stamp)
	}
	// A stamp that is not the key's leaves it.
	if _, err := l.Shred(ctx, "default", nil, nil, nil, PseudonymRef{Ref: ref, Stamp: "00"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.PseudonymKey(ctx, "default", ref, false); err != nil {
		t.Fatalf("PseudonymKey after Shred with another stamp = %v, want the key kept", err)
	}
	plan := PseudonymRef{Ref: ref, Stamp: k1.Stamp}
	if _, err := l.Shred(ctx, "default", nil, nil, nil, plan); err != nil {
		t.Fatal(err)
	}
	if _, err := l.PseudonymKey(ctx, "default", ref, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("PseudonymKey after Shred = %v, want ErrNotFound", err)
	}
	k2, err := l.PseudonymKey(ctx, "default", ref, true)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Stamp == k1.Stamp || k2.Pseudonym("alice") == k1.Pseudonym("alice") {
		t.Fatal("the new key has the old key's stamp or pseudonym")
	}
	if _, err := l.Shred(ctx, "default", nil, nil, nil, plan); err != nil {
		t.Fatal(err)
	}
	k, err := l.PseudonymKey(ctx, "default", ref, false)
	if err != nil || k.Pseudonym("alice") != k2.Pseudonym("alice") {
		t.Fatalf("the new key after the old plan ran again: %v; want it kept", err)
	}
	// No stamp (a plan of an earlier build): whichever key the ref has.
	if _, err := l.Shred(ctx, "default", nil, nil, nil, PseudonymRef{Ref: ref}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.PseudonymKey(ctx, "default", ref, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("PseudonymKey after Shred without a stamp = %v, want ErrNotFound", err)
	}
}
