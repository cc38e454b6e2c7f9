package retention

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestErasureRequestIDReuse: a request id names one request. Asking again
// with the same request returns its outcome; asking with the same id and
// anything else different (selector, its value, legal basis, reason,
// ticket) is refused, dry run or not, and erases nothing. The plan keeps a
// digest of the request, never the subject id.
func TestErasureRequestIDReuse(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "s1", 1, 2, false, "alice")
	bob := e.spans(t, "bob", "s2", 2, 2, false, "bob")
	req := ErasureRequest{ID: "dsr-1", Subject: "alice", LegalBasis: "GDPR Art. 17(1)(a)", Ticket: "DSR-1", Reason: "subject request", RequestedBy: "co-key"}
	first, err := e.s.Erase(ctx, "default", req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.s.Erase(ctx, "default", req)
	if err != nil || !bytes.Equal(again.Receipt, first.Receipt) {
		t.Fatalf("Erase(same request again) = %v, %v; want the first outcome", again, err)
	}
	retry := req
	retry.RequestedBy = "another-co-key" // a colleague retrying is the same request
	if _, err := e.s.Erase(ctx, "default", retry); err != nil {
		t.Errorf("Erase(same request, another requester) = %v", err)
	}
	for name, change := range map[string]func(r *ErasureRequest){
		"another subject": func(r *ErasureRequest) { r.Subject = "bob" },
		"a session":       func(r *ErasureRequest) { r.Subject, r.Session = "", "s2" },
		"traces":          func(r *ErasureRequest) { r.Subject, r.TraceIDs = "", [][16]byte{{2, 15: 1}} },
		"another basis":   func(r *ErasureRequest) { r.LegalBasis = "GDPR Art. 17(1)(d)" },
		"another reason":  func(r *ErasureRequest) { r.Reason = "other" },
		"another ticket":  func(r *ErasureRequest) { r.Ticket = "DSR-2" },
		"dry run for bob": func(r *ErasureRequest) { r.Subject, r.DryRun = "bob", true },
	} {
		r := req
		change(&r)
		if _, err := e.s.Erase(ctx, "default", r); !errors.Is(err, ErrRequestIDReused) {
			t.Errorf("Erase(request id reused with %s) = %v, want ErrRequestIDReused", name, err)
		}
	}
	// Once done, the erasure has destroyed alice's pseudonym key with her
	// data: an id without data or key (here alice with a suffix) cannot be
	// told from hers, since nothing kept identifies her; the request
	// matches on everything else and gets the first outcome.
	suffix := req
	suffix.Subject = "alice\x00"
	if again, err := e.s.Erase(ctx, "default", suffix); err != nil || !bytes.Equal(again.Receipt, first.Receipt) {
		t.Errorf("Erase(request id reused with a subject without data or key) = %v, %v; want the first outcome", again, err)
	}
	if got := e.erased(t, bob); got[0] || got[1] {
		t.Errorf("bob's entries were erased by a reused request id: %v", got)
	}
	plan, err := e.l.GetState(ctx, "default", stateErasure+req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plan, []byte("alice")) {
		t.Errorf("the stored plan holds the subject id: %s", plan)
	}
}
