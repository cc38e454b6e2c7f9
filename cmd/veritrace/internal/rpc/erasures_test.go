package rpc

import (
	"context"
	"fmt"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

func TestListErasures(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	app := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	other := testSpan(1)
	other.SubjectId, other.SessionId = "someone-else", "s-other"
	if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(0), other}})); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*v1.EraseRequest{
		{RequestId: "dsr-1", SubjectId: "customer-42", LegalBasis: "GDPR Art. 17", Reason: "request", DryRun: true},
		{RequestId: "dsr-2", SessionId: "s-other", LegalBasis: "GDPR Art. 17", Reason: "request"},
		{RequestId: "dsr-3", SubjectId: "customer-42", LegalBasis: "GDPR Art. 17", Reason: "request", Ticket: "T-9"},
	} {
		if _, err := co.retention.Erase(ctx, connect.NewRequest(r)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := co.retention.ListErasures(ctx, connect.NewRequest(&v1.ListErasuresRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range resp.Msg.GetErasures() {
		got = append(got, fmt.Sprintf("%s %s %s %s %d", e.GetRequestId(), e.GetKind(), e.GetState(), e.GetSelector(), len(e.GetErased())))
	}
	// Dry runs change nothing and are not kept.
	if want := "[dsr-3 erasure done subject 1 dsr-2 erasure done session 1]"; fmt.Sprint(got) != want {
		t.Errorf("ListErasures = %v, want %s", got, want)
	}
	if done := resp.Msg.GetErasures()[0]; done.GetReceipt() == "" || done.GetReceiptSignature() == "" || done.GetTicket() != "T-9" {
		t.Errorf("the executed erasure lacks its receipt or ticket: %v", done)
	}
	one, err := co.retention.ListErasures(ctx, connect.NewRequest(&v1.ListErasuresRequest{PageSize: 1}))
	if err != nil || len(one.Msg.GetErasures()) != 1 || one.Msg.GetErasures()[0].GetRequestId() != "dsr-3" {
		t.Errorf("ListErasures(page size 1) = %v, %v", one, err)
	}
	_, err = co.retention.ListErasures(ctx, connect.NewRequest(&v1.ListErasuresRequest{PageSize: 1001}))
	wantCode(t, "ListErasures(1001)", err, connect.CodeInvalidArgument, "page_size")
	_, err = s.clients("connect", "", s.key(t, policy.Auditor, "default")).retention.ListErasures(ctx, connect.NewRequest(&v1.ListErasuresRequest{}))
	wantCode(t, "ListErasures(auditor)", err, connect.CodePermissionDenied, "")
}
