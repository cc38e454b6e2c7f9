package rpc

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// accessRecords returns the tenant's access records of one procedure, in
// log order, with their indexes.
func accessRecords(t *testing.T, c clients, procedure string) []*v1.AccessEntry {
	t.Helper()
	log, err := c.ledger.ListAccessLog(context.Background(), connect.NewRequest(&v1.ListAccessLogRequest{PageSize: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	var out []*v1.AccessEntry
	for _, e := range log.Msg.GetEntries() {
		if strings.HasSuffix(e.GetRecord().GetProcedure(), procedure) {
			out = append(out, e)
		}
	}
	return out
}

// An export is recorded ALLOWED before its first byte (docs/ACCESS.md);
// one that then fails is recorded again, FAILED, and that record names
// the ALLOWED one: two records of one access, linked. A call that does
// not fail, and a unary call that fails, is one record.
func TestFailedExportRecordsAreLinked(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	for _, protocol := range []string{"connect", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			tenant := "linked-" + protocol
			s.tenant(t, tenant)
			app := s.clients(protocol, tenant, s.key(t, policy.Ingester, tenant))
			aud := s.clients(protocol, tenant, s.key(t, policy.Auditor, tenant))
			if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(0)}})); err != nil {
				t.Fatal(err)
			}
			if _, err := readBundle(ctx, aud, &v1.TraceQuery{SubjectId: "customer-42"}, 0); err != nil {
				t.Fatal(err)
			}
			_, err := readBundle(ctx, aud, &v1.TraceQuery{SubjectId: "nobody"}, 0)
			wantCode(t, "ExportBundle(nobody)", err, connect.CodeNotFound, "")
			recs := accessRecords(t, aud, "/ExportBundle")
			if len(recs) != 3 {
				t.Fatalf("%d export records, want 3 (allowed; allowed, failed)", len(recs))
			}
			ok, allowed, failed := recs[0].GetRecord(), recs[1], recs[2].GetRecord()
			if ok.GetOutcome() != v1.AccessOutcome_ACCESS_OUTCOME_ALLOWED || ok.AllowedIndex != nil {
				t.Errorf("the export that succeeded: %v", ok)
			}
			if allowed.GetRecord().GetOutcome() != v1.AccessOutcome_ACCESS_OUTCOME_ALLOWED || failed.GetOutcome() != v1.AccessOutcome_ACCESS_OUTCOME_FAILED {
				t.Fatalf("the export that failed is recorded %v then %v; want ALLOWED then FAILED", allowed.GetRecord().GetOutcome(), failed.GetOutcome())
			}
			if failed.AllowedIndex == nil || failed.GetAllowedIndex() != allowed.GetIndex() {
				t.Errorf("the FAILED record's allowed_index = %v, want %d (the ALLOWED record of the same export)", failed.AllowedIndex, allowed.GetIndex())
			}
			if failed.GetTarget() != allowed.GetRecord().GetTarget() || failed.GetCode() != "not_found" {
				t.Errorf("FAILED record %v of ALLOWED record %v: want the same target, code not_found", failed, allowed.GetRecord())
			}
		})
	}
}

// SetRetention's access records name the revision the policy was edited
// from (docs/ACCESS.md): whether allowed, failed (stale) or refused.
func TestSetRetentionAccessTarget(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	pol := &v1.RetentionPolicy{FloorDays: 30, DefaultRule: &v1.RetentionRule{Days: 400, Mode: v1.RetentionMode_RETENTION_MODE_GOVERNANCE}}
	if _, err := co.retention.SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: pol, Reason: "r"})); err != nil {
		t.Fatal(err)
	}
	_, err := co.retention.SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: pol, Reason: "again"}))
	wantCode(t, "SetRetention(stale)", err, connect.CodeAborted, "")
	_, err = aud.retention.SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: pol, Reason: "r"}))
	wantCode(t, "SetRetention(auditor)", err, connect.CodePermissionDenied, "")
	var got []string
	for _, e := range accessRecords(t, aud, "/SetRetention") {
		got = append(got, e.GetRecord().GetOutcome().String()+" "+e.GetRecord().GetTarget())
	}
	want := "[ACCESS_OUTCOME_ALLOWED retention policy from revision 0 ACCESS_OUTCOME_FAILED retention policy from revision 0 ACCESS_OUTCOME_DENIED retention policy from revision 0]"
	if strings.Join(got, " ") != strings.Trim(want, "[]") {
		t.Errorf("SetRetention access records = %v\nwant %s", got, want)
	}
}
