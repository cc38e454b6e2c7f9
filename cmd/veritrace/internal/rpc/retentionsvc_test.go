package rpc

import (
	"context"
	"sync"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

func TestRetentionService(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	app := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))

	// Retention classes are fixed at append time from the rules in force.
	yes := true
	pol := &v1.RetentionPolicy{FloorDays: 30,
		DefaultRule: &v1.RetentionRule{Days: 90, Mode: v1.RetentionMode_RETENTION_MODE_GOVERNANCE},
		Rules: []*v1.RetentionRule{{Class: "errors", Days: 365, Mode: v1.RetentionMode_RETENTION_MODE_COMPLIANCE,
			Match: &v1.RuleMatch{Errors: &yes}}}}
	set, err := co.retention.SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: pol, Reason: "review"}))
	if err != nil {
		t.Fatal(err)
	}
	pol.Revision = set.Msg.GetPolicy().GetRevision() // later edits are made from it
	failing := testSpan(1)
	failing.Status = &v1.Status{Code: v1.StatusCode_STATUS_CODE_ERROR}
	appended, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(0), failing}}))
	if err != nil {
		t.Fatal(err)
	}
	rs := appended.Msg.GetReceipts()
	for i, want := range map[uint64]string{rs[0].GetIndex(): "default", rs[1].GetIndex(): "errors"} {
		e, err := aud.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: i}))
		if err != nil || e.Msg.GetEntry().GetHeader().GetRetentionClass() != want {
			t.Errorf("entry %d retention class = %q, %v; want %s", i, e.Msg.GetEntry().GetHeader().GetRetentionClass(), err, want)
		}
	}
	rec, err := aud.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: set.Msg.GetIndex()}))
	if err != nil || rec.Msg.GetEntry().GetHeader().GetKind() != v1.EntryKind_ENTRY_KIND_RETENTION || rec.Msg.GetEntry().GetRecordJson() == "" {
		t.Errorf("the rule change is not a ledger entry: %v, %v", rec, err)
	}

	// Bad requests.
	below := &v1.RetentionPolicy{Revision: pol.Revision, FloorDays: 30, DefaultRule: &v1.RetentionRule{Days: 10, Mode: v1.RetentionMode_RETENTION_MODE_GOVERNANCE}}
	_, err = co.retention.SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: below, Reason: "x"}))
	wantCode(t, "SetRetention(below floor)", err, connect.CodeFailedPrecondition, "floor")
	pol.Rules[0].Days = 100
	_, err = co.retention.SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: pol, Reason: "x"}))
	wantCode(t, "SetRetention(shorten compliance)", err, connect.CodeFailedPrecondition, "may only be extended")
	pol.Rules[0].Days = 365
	pol.DefaultRule.Days = 60
	_, err = co.retention.SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: pol}))
	wantCode(t, "SetRetention(shorten without reason)", err, connect.CodeInvalidArgument, "reason")
	_, err = co.retention.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: "a", SubjectId: "nobody", LegalBasis: "x", Reason: "y"}))
	wantCode(t, "Erase(unknown subject)", err, connect.CodeNotFound, "")
	_, err = co.retention.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: "b", SubjectId: "customer-42", LegalBasis: "x"}))
	wantCode(t, "Erase(no reason)", err, connect.CodeInvalidArgument, "reason")
	_, err = co.retention.PlaceHold(ctx, connect.NewRequest(&v1.PlaceHoldRequest{Scope: &v1.HoldScope{SubjectId: "a", SessionId: "b"}, CaseRef: "c", Reason: "r"}))
	wantCode(t, "PlaceHold(two scopes)", err, connect.CodeInvalidArgument, "exactly one")
	_, err = co.retention.ReleaseHold(ctx, connect.NewRequest(&v1.ReleaseHoldRequest{HoldId: "nope", Reason: "r"}))
	wantCode(t, "ReleaseHold(unknown)", err, connect.CodeNotFound, "")
	_, err = co.retention.GetErasure(ctx, connect.NewRequest(&v1.GetErasureRequest{RequestId: "nope"}))
	wantCode(t, "GetErasure(unknown)", err, connect.CodeNotFound, "request_id")

	// A hold blocks erasure, and the refusal is in the receipt.
	hold, err := co.retention.PlaceHold(ctx, connect.NewRequest(&v1.PlaceHoldRequest{Scope: &v1.HoldScope{TraceId: failing.TraceId}, CaseRef: "CASE-1", Reason: "audit"}))
	if err != nil {
		t.Fatal(err)
	}
	// Erase while the app keeps appending spans of the same subject.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 100; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			sp := testSpan(i)
			sp.TraceId[0] = 0xee // another trace, same subject
			if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{sp}})); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	er, err := co.retention.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: "dsr-1", TraceIds: [][]byte{failing.TraceId}, LegalBasis: "GDPR Art. 17", Reason: "request"}))
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	e := er.Msg.GetErasure()
	if len(e.GetErased()) != 0 || len(e.GetHeld()) != 2 || e.GetHeld()[0].GetHoldId() != hold.Msg.GetHold().GetId() || e.GetReceiptSignature() == "" {
		t.Errorf("Erase(held trace) = %v", e)
	}
	if _, err := co.retention.ReleaseHold(ctx, connect.NewRequest(&v1.ReleaseHoldRequest{HoldId: hold.Msg.GetHold().GetId(), Reason: "closed"})); err != nil {
		t.Fatal(err)
	}
	er, err = co.retention.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: "dsr-2", TraceIds: [][]byte{failing.TraceId}, LegalBasis: "GDPR Art. 17", Reason: "request"}))
	if err != nil || len(er.Msg.GetErasure().GetErased()) != 2 {
		t.Fatalf("Erase(after release) = %v, %v", er, err)
	}
	got, err := aud.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: er.Msg.GetErasure().GetErased()[0]}))
	if err != nil || !got.Msg.GetEntry().GetErased() || got.Msg.GetEntry().GetErasedByTombstone() != er.Msg.GetErasure().GetTombstoneIndex() || got.Msg.GetEntry().GetSpan() != nil {
		t.Errorf("GetEntry(erased) = %v, %v", got, err)
	}
	// Auditors cannot erase; their attempt is recorded.
	_, err = aud.retention.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: "c", SubjectId: "customer-42", LegalBasis: "x", Reason: "y"}))
	wantCode(t, "Erase(auditor)", err, connect.CodePermissionDenied, "")
}
