package retention

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func summaryIDs(ss []*ErasureSummary) string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("%s:%s:%d", s.ID, s.State, s.Erased))
	}
	return strings.Join(out, " ")
}

// TestErasuresArePaged: the list of erasures is read a page at a time,
// newest first, from summaries; a request stored before the list existed,
// or whose summary a crash left stale, is listed as its plan says once the
// service resumes.
func TestErasuresArePaged(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for i := range 5 {
		subject := fmt.Sprint("s", i)
		e.spans(t, subject, "", byte(10+i), 2, false, subject)
		e.clock.Add(time.Minute)
		if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: fmt.Sprint("dsr-", i), Subject: subject, LegalBasis: "GDPR Art. 17(1)(a)", Reason: "request"}); err != nil {
			t.Fatal(err)
		}
	}
	var pages []string
	for cursor, n := "", 0; n < 10; n++ {
		ss, next, err := e.s.Erasures(ctx, "default", cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, summaryIDs(ss))
		if cursor = next; next == "" {
			break
		}
	}
	if got, want := strings.Join(pages, " | "), "dsr-4:done:2 dsr-3:done:2 | dsr-2:done:2 dsr-1:done:2 | dsr-0:done:2"; got != want {
		t.Errorf("pages = %q, want %q", got, want)
	}
	if _, _, err := e.s.Erasures(ctx, "default", "erasure/dsr-1", 2); err == nil {
		t.Error("Erasures(a cursor that is not one) = nil error")
	}

	// A plan stored before the list existed, and a stale summary.
	old := &Erasure{ID: "old-1", Tenant: "default", State: "done", Selector: "subject", LegalBasis: "x", Reason: "y",
		RequestedAt: e.clock.Now().Add(-24 * time.Hour), Erase: []uint64{1, 2, 3}}
	b, _ := json.Marshal(old)
	if err := e.l.PutState(ctx, "default", stateErasure+old.ID, b); err != nil {
		t.Fatal(err)
	}
	stale, err := e.s.ErasureStatus(ctx, "default", "dsr-4")
	if err != nil {
		t.Fatal(err)
	}
	stale.State = "executing"
	if err := e.s.indexErasure(ctx, stale); err != nil {
		t.Fatal(err)
	}
	ss, _, err := e.s.Erasures(ctx, "default", "", 10)
	if err != nil || !strings.HasPrefix(summaryIDs(ss), "dsr-4:executing") || strings.Contains(summaryIDs(ss), "old-1") {
		t.Fatalf("before Resume: %s, %v", summaryIDs(ss), err)
	}
	if err := e.s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	ss, _, err = e.s.Erasures(ctx, "default", "", 10)
	if want := "dsr-4:done:2 dsr-3:done:2 dsr-2:done:2 dsr-1:done:2 dsr-0:done:2 old-1:done:3"; err != nil || summaryIDs(ss) != want {
		t.Errorf("after Resume: %s, %v; want %s", summaryIDs(ss), err, want)
	}
}
