package retention

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/veritrace/veritrace/ledger"
)

// TestAttackSweepIDReusedForErasure (issue 9, item 9: "Reusing an erasure
// request id with a different selector returns the old receipt silently
// (refuse with already_exists naming request_id)"). Sweeps are stored
// beside erasures, under their ids ("sweep-<uuid>", listed by
// ListErasures and written in every expiry tombstone), and keep no request
// digest; a plan without a digest "matches any request with its id". So an
// erasure of alice sent with a sweep's id is answered with the sweep's
// plan, state "done", its expired entries as "erased", and no error:
// alice's data is not erased, and the caller is told it was.
func TestAttackSweepIDReusedForErasure(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, _, err := e.s.SetPolicy(ctx, "default", Policy{FloorDays: 30, Default: Rule{Class: DefaultClass, Days: 30, Mode: Governance}}, "co-key", "short"); err != nil {
		t.Fatal(err)
	}
	e.spans(t, "old", "", 1, 2, false, "old")
	e.clock.Add(31 * Day)
	alice := e.spans(t, "alice", "", 2, 2, false, "alice")
	if r, err := e.s.Sweep(ctx, "default"); err != nil || r.Erased != 2 {
		t.Fatalf("Sweep() = %+v, %v", r, err)
	}
	ers, _, err := e.s.Erasures(ctx, "default", "", 10)
	if err != nil || len(ers) != 1 || ers[0].Kind != "expiry" {
		t.Fatalf("Erasures() = %v, %v; want the sweep", ers, err)
	}
	sweepID := ers[0].ID
	er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: sweepID, Subject: "alice", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})
	if !errors.Is(err, ErrRequestIDReused) {
		state, n := "", 0
		if er != nil {
			state, n = er.State, len(er.Erase)
		}
		t.Errorf("Erase(alice, request id %s of a sweep) = state %q, %d entries \"erased\", err %v; want ErrRequestIDReused",
			sweepID, state, n, err)
	}
	if got := e.erased(t, alice); got[0] || got[1] {
		return
	}
	if err == nil {
		t.Errorf("alice's entries %v were not erased, yet the erasure answered without an error", alice)
	}
}

// TestAttackRequestDigestConfirmsAGuess: the plan keeps, "instead of the
// subject or session id", an HMAC of the request under a key stored in the
// same record. Whoever reads the plan (an operator, a backup) confirms a
// guessed subject id offline with one HMAC per guess: the digest protects
// nothing that the subject id in the clear would not reveal to a guesser.
// (Related to issue 9 item 2, erasure leaving nothing that identifies the
// subject.)
func TestAttackRequestDigestConfirmsAGuess(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "customer-4711", "", 1, 1, false, "x")
	req := ErasureRequest{ID: "dsr-9", Subject: "customer-4711", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}
	if _, err := e.s.Erase(ctx, "default", req); err != nil {
		t.Fatal(err)
	}
	b, err := e.l.GetState(ctx, "default", stateErasure+req.ID)
	if err != nil {
		t.Fatal(err)
	}
	var plan Erasure
	if err := json.Unmarshal(b, &plan); err != nil {
		t.Fatal(err)
	}
	if plan.DigestKey != "" || plan.RequestDigest != "" {
		t.Errorf("the plan keeps a digest over the subject id itself: digest_key %q, request_digest %q", plan.DigestKey, plan.RequestDigest)
	}
	// What the plan keeps now: a MAC of the request with the subject's
	// pseudonym in place of its id. The pseudonym needs the subject's
	// pseudonym key, which the erasure destroyed; a guesser holding the plan
	// (and the server's master key) has only the guess itself to try.
	key, _ := hex.DecodeString(plan.RequestKey)
	want, _ := hex.DecodeString(plan.RequestMAC)
	for i := 4700; i < 4800; i++ {
		guess := req
		guess.Subject = "customer-" + strconv.Itoa(i)
		pseudonym := guess.Subject
		if k, err := e.s.pseudonymKey(ctx, "default", ledger.SubjectField, guess.Subject, false); err == nil {
			pseudonym = k.Pseudonym(guess.Subject)
		}
		if hmac.Equal(requestMAC(key, guess, pseudonym), want) || hmac.Equal(requestDigestV1(key, guess), want) {
			t.Errorf("the stored erasure plan confirms the guessed subject id %q after %d guesses", guess.Subject, i-4700+1)
			return
		}
	}
}
