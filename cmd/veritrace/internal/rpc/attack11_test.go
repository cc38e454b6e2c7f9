package rpc

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

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
		if connect.CodeOf(err) == connect.CodePermissionDenied {
			// holds2: the subject filter needs read_entries; the same
			// refusal for every id is an equal answer.
			answers[id] = "permission_denied"
			continue
		}
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

// Attack 11, bounds. The erasure receipt repeats each held entry's hold
// case reference (up to 1,024 bytes, which JSON escapes up to six-fold:
// `<` is \u003c), and Erase and GetErasure answer the whole receipt (their
// erased and held lists are paged to 1,000, the receipt is not): a
// subject of 2,000 entries under one hold with such a case reference
// gives an answer of over 12 MB, above the 4 MiB a gRPC client takes by
// default; the plan record keeps it (and the held list again) too. The
// answer grows with the entries, unbounded.
func TestAttack11ErasureAnswerGrowsWithHeldEntries(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	app := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	const entries = 2000
	for b := range entries / 1000 {
		var spans []*v1.Span
		for i := range 1000 {
			sp := testSpan(1)
			sp.SubjectId, sp.SessionId = "big", ""
			sp.TraceId = []byte{15: byte(b), 14: byte(i >> 8), 13: byte(i), 0: 1}
			spans = append(spans, sp)
		}
		if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: spans})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := co.retention.PlaceHold(ctx, connect.NewRequest(&v1.PlaceHoldRequest{Scope: &v1.HoldScope{SubjectId: "big"},
		CaseRef: strings.Repeat("<", maxShortString), Reason: "litigation"})); err != nil {
		t.Fatal(err)
	}
	er, err := co.retention.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: "dsr-big", SubjectId: "big", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}))
	if err != nil {
		t.Fatal(err)
	}
	if n := er.Msg.GetErasure().GetHeldCount(); n != entries {
		t.Fatalf("held %d, want %d", n, entries)
	}
	const grpcDefault = 4 << 20
	size := proto.Size(er.Msg)
	t.Logf("Erase answer: %d bytes for %d held entries (receipt %d bytes)", size, entries, len(er.Msg.GetErasure().GetReceipt()))
	if size > grpcDefault {
		t.Errorf("DEFECT: the Erase answer for %d held entries is %d bytes (receipt %d bytes), over a gRPC client's default 4 MiB: the receipt is not paged and repeats the case reference per held entry", entries, size, len(er.Msg.GetErasure().GetReceipt()))
	}

	ge, err := co.retention.GetErasure(ctx, connect.NewRequest(&v1.GetErasureRequest{RequestId: "dsr-big"}))
	if err != nil {
		t.Fatal(err)
	}
	if size := proto.Size(ge.Msg); size > grpcDefault {
		t.Errorf("DEFECT: GetErasure answers %d bytes for one erasure of %d held entries", size, entries)
	}
}
