package rpc

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// Attack 11. An admin may read a tenant's access log but not its entries
// (policy: Admin has ReadAccessLog, not ReadEntries), so it must not learn
// which subjects have data. But the pseudonym of a subject with data is
// made when a target first names it, and an id without data is named
// "pseudonym:none": the admin sends a query it is refused, for a guessed
// id, then reads the record of its own refusal (or simply filters the
// access log by the id; with a key per guess, each refusal is a record of
// its own), and tells an id with data from one without.
func TestAttack11AdminLearnsWhichSubjectsHaveData(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	app := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}})); err != nil {
		t.Fatal(err)
	}
	answers := map[string]string{}
	var admin clients
	for _, id := range []string{"customer-42", "nobody-at-all"} { // testSpan's subject has data
		// A key per guess: each key's first refusal is recorded on its own.
		admin = s.clients("connect", "default", s.key(t, policy.Admin, "*"))
		_, err := admin.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: &v1.TraceQuery{SubjectId: id}}))
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("admin QueryTraces = %v, want permission_denied", err)
		}
		r, err := admin.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{SubjectId: id}))
		if err != nil {
			t.Fatal(err)
		}
		answers[id] = fmt.Sprintf("%d records", len(r.Msg.GetEntries()))
	}
	if answers["customer-42"] != answers["nobody-at-all"] {
		t.Errorf("DEFECT: an admin (no read_entries) tells a subject with data from one without through the access-log subject filter: %v", answers)
	}
	all, err := admin.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{PageSize: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, e := range all.Msg.GetEntries() {
		if tg := e.GetRecord().GetTarget(); strings.HasPrefix(tg, "query ") {
			targets = append(targets, tg)
		}
	}
	t.Logf("access log: %d entries, query targets %q", len(all.Msg.GetEntries()), targets)
	for _, tg := range targets {
		if strings.Contains(tg, "pseudonym:none") {
			t.Errorf("DEFECT: the admin's own refused queries are recorded as %q: `pseudonym:none` against a real pseudonym tells it which guessed id has data", targets)
			break
		}
	}
}
