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
		got = append(got, fmt.Sprintf("%s %s %s %s %d/%d", e.GetRequestId(), e.GetKind(), e.GetState(), e.GetSelector(), e.GetErasedCount(), len(e.GetErased())))
	}
	// Dry runs change nothing and are not kept; the list carries counts,
	// not the lists of entries, nor receipts.
	if want := "[dsr-3 erasure done subject 1/0 dsr-2 erasure done session 1/0]"; fmt.Sprint(got) != want {
		t.Errorf("ListErasures = %v, want %s", got, want)
	}
	if done := resp.Msg.GetErasures()[0]; done.GetReceipt() != "" || done.GetTicket() != "T-9" || done.GetCompletedAt() == nil {
		t.Errorf("the listed erasure: %v; want its ticket and completion, no receipt", done)
	}
	one, err := co.retention.ListErasures(ctx, connect.NewRequest(&v1.ListErasuresRequest{PageSize: 1}))
	if err != nil || len(one.Msg.GetErasures()) != 1 || one.Msg.GetErasures()[0].GetRequestId() != "dsr-3" || one.Msg.GetNextPageToken() == "" {
		t.Fatalf("ListErasures(page size 1) = %v, %v", one, err)
	}
	two, err := co.retention.ListErasures(ctx, connect.NewRequest(&v1.ListErasuresRequest{PageSize: 1, PageToken: one.Msg.GetNextPageToken()}))
	if err != nil || len(two.Msg.GetErasures()) != 1 || two.Msg.GetErasures()[0].GetRequestId() != "dsr-2" || two.Msg.GetNextPageToken() != "" {
		t.Errorf("ListErasures(the second page) = %v, %v", two, err)
	}
	_, err = co.retention.ListErasures(ctx, connect.NewRequest(&v1.ListErasuresRequest{PageToken: "ZXJhc3VyZS8"}))
	wantCode(t, "ListErasures(a token of another list)", err, connect.CodeInvalidArgument, "page_token")
	_, err = co.retention.ListErasures(ctx, connect.NewRequest(&v1.ListErasuresRequest{PageSize: 1001}))
	wantCode(t, "ListErasures(1001)", err, connect.CodeInvalidArgument, "page_size")
	_, err = s.clients("connect", "", s.key(t, policy.Auditor, "default")).retention.ListErasures(ctx, connect.NewRequest(&v1.ListErasuresRequest{}))
	wantCode(t, "ListErasures(auditor)", err, connect.CodePermissionDenied, "")

	// GetErasure gives the receipt and the lists, a page at a time.
	g, err := co.retention.GetErasure(ctx, connect.NewRequest(&v1.GetErasureRequest{RequestId: "dsr-3"}))
	if err != nil || g.Msg.GetErasure().GetReceipt() == "" || len(g.Msg.GetErasure().GetErased()) != 1 || g.Msg.GetNextFrom() != 0 {
		t.Errorf("GetErasure(dsr-3) = %v, %v", g, err)
	}
	g, err = co.retention.GetErasure(ctx, connect.NewRequest(&v1.GetErasureRequest{RequestId: "dsr-3", From: 1}))
	if err != nil || len(g.Msg.GetErasure().GetErased()) != 0 || g.Msg.GetErasure().GetErasedCount() != 1 {
		t.Errorf("GetErasure(dsr-3, from 1) = %v, %v", g, err)
	}
	_, err = co.retention.GetErasure(ctx, connect.NewRequest(&v1.GetErasureRequest{RequestId: "dsr-3", PageSize: 10001}))
	wantCode(t, "GetErasure(page size 10001)", err, connect.CodeInvalidArgument, "page_size")
}
