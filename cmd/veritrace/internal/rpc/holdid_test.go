package rpc

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
)

// loseAnswers is a transport that carries a request to the server, reads
// the server's whole answer and then, for the first n requests, drops it
// and reports a reset connection: the request was carried out, the client
// never learns it (a timeout or a proxy reset after the server answered).
type loseAnswers struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    int
}

func (l *loseAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	lose := l.n > 0
	l.n--
	l.mu.Unlock()
	if !lose {
		return resp, nil
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, errors.New("connection reset by peer (the answer was lost)")
}

// holdEntries counts the hold entries of a tenant's log.
func holdEntries(t *testing.T, ts *testServer, tenant string) int {
	t.Helper()
	es, _, err := ts.l.EntriesOfKind(context.Background(), tenant, format.KindHold, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// A compliance officer's client places a hold, the server places it and
// the answer is lost; the client asks again, as it must. One hold is
// placed: one hold to release, one hold entry in the log, and the retry
// answered with the first hold.
func TestPlaceHoldRetriedAfterLostAnswer(t *testing.T) {
	for _, protocol := range []string{"connect", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			ts := startServer(t, 0)
			ctx := context.Background()
			tr := &http.Transport{Protocols: new(http.Protocols)}
			tr.Protocols.SetHTTP1(protocol == "connect")
			tr.Protocols.SetUnencryptedHTTP2(true)
			lossy := &loseAnswers{next: tr, n: 1}
			opts := []connect.ClientOption{connect.WithInterceptors(ClientHeaders("", ts.key(t, policy.ComplianceOfficer, "default")))}
			if protocol == "grpc" {
				opts = append(opts, connect.WithGRPC())
			}
			co := veritracev1connect.NewRetentionServiceClient(&http.Client{Transport: lossy}, ts.url, opts...)
			req := &v1.PlaceHoldRequest{RequestId: "hold-2026-11-22-a", Scope: &v1.HoldScope{SubjectId: "customer-42"}, CaseRef: "CASE-7", Reason: "litigation"}
			if _, err := co.PlaceHold(ctx, connect.NewRequest(req)); err == nil {
				t.Fatal("PlaceHold() with its answer lost = nil error")
			}
			again, err := co.PlaceHold(ctx, connect.NewRequest(req))
			if err != nil {
				t.Fatalf("PlaceHold() retried = %v", err)
			}
			list, err := co.ListHolds(ctx, connect.NewRequest(&v1.ListHoldsRequest{All: true}))
			if err != nil {
				t.Fatal(err)
			}
			if n := len(list.Msg.GetHolds()); n != 1 {
				t.Errorf("ListHolds() after a retry of a lost answer = %d holds, want 1", n)
			}
			if n := holdEntries(t, ts, "default"); n != 1 {
				t.Errorf("hold entries in the log after a retry of a lost answer = %d, want 1", n)
			}
			if hs := list.Msg.GetHolds(); len(hs) > 0 && (hs[0].GetId() != again.Msg.GetHold().GetId() || hs[0].GetRequestId() != req.RequestId) {
				t.Errorf("the retry answered hold %s, the hold placed is %s (request id %q)", again.Msg.GetHold().GetId(), hs[0].GetId(), hs[0].GetRequestId())
			}
			if h := again.Msg.GetHold(); h.GetScope().GetSubjectId() != "customer-42" || h.GetRequestId() != req.RequestId || h.GetCaseRef() != "CASE-7" {
				t.Errorf("the retry answered %v", h)
			}
		})
	}
}

// Through the server: two PlaceHolds with one request id at once place one
// hold and get one answer; the same id with another case reference is
// ALREADY_EXISTS naming the id and the field, not the subject; a bad id
// is INVALID_ARGUMENT naming request_id.
func TestPlaceHoldRequestIDThroughServer(t *testing.T) {
	ts := startServer(t, 0)
	ctx := context.Background()
	token := ts.key(t, policy.ComplianceOfficer, "default")
	req := &v1.PlaceHoldRequest{RequestId: "hold-race", Scope: &v1.HoldScope{SubjectId: "customer-42"}, CaseRef: "CASE-7", Reason: "litigation"}
	var answers [4]*v1.PlaceHoldResponse
	var errs [4]error
	var wg sync.WaitGroup
	for i := range answers {
		co := ts.clients([]string{"connect", "grpc"}[i%2], "", token)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := co.retention.PlaceHold(ctx, connect.NewRequest(req))
			if err == nil {
				answers[i] = resp.Msg
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i := range answers {
		if errs[i] != nil || answers[i].GetHold().GetId() != answers[0].GetHold().GetId() || answers[i].GetIndex() != answers[0].GetIndex() {
			t.Fatalf("PlaceHold() %d of 4 at once = %v, %v; want the answer %v", i, answers[i], errs[i], answers[0])
		}
	}
	if n := holdEntries(t, ts, "default"); n != 1 {
		t.Errorf("hold entries after 4 PlaceHolds with one request id at once = %d, want 1", n)
	}
	co := ts.clients("connect", "", token)
	other := &v1.PlaceHoldRequest{RequestId: req.RequestId, Scope: req.Scope, CaseRef: "CASE-8", Reason: req.Reason}
	_, err := co.retention.PlaceHold(ctx, connect.NewRequest(other))
	wantCode(t, "PlaceHold(same request id, other case_ref)", err, connect.CodeAlreadyExists, `"hold-race"`)
	if err != nil && (!strings.Contains(err.Error(), "different case_ref") || strings.Contains(err.Error(), "customer-42")) {
		t.Errorf("PlaceHold(same request id, other case_ref) = %v; want the field named and the subject not", err)
	}
	bad := &v1.PlaceHoldRequest{RequestId: "not ok", Scope: req.Scope, CaseRef: "CASE-7", Reason: "litigation"}
	_, err = co.retention.PlaceHold(ctx, connect.NewRequest(bad))
	wantCode(t, "PlaceHold(bad request id)", err, connect.CodeInvalidArgument, "request_id")
	if n := holdEntries(t, ts, "default"); n != 1 {
		t.Errorf("hold entries after the refusals = %d, want 1", n)
	}
}
