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

// TestRetentionPolicyLimits: a retention policy is bounded in rules and in
// every string it holds, and a bad value is invalid_argument naming its
// field; a period below the floor stays failed_precondition.
func TestRetentionPolicyLimits(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	gov := v1.RetentionMode_RETENTION_MODE_GOVERNANCE
	rule := func(class string, days int32) *v1.RetentionRule {
		return &v1.RetentionRule{Class: class, Days: days, Mode: gov}
	}
	manyRules := make([]*v1.RetentionRule, 101)
	for i := range manyRules {
		manyRules[i] = rule(fmt.Sprintf("c%d", i), 400)
	}
	manyAttrs := map[string]string{}
	for i := 0; i < 9; i++ {
		manyAttrs[fmt.Sprintf("k%d", i)] = "v"
	}
	for _, tc := range []struct {
		name  string
		pol   *v1.RetentionPolicy
		code  connect.Code
		field string
	}{
		{"negative default days", &v1.RetentionPolicy{FloorDays: 1, DefaultRule: rule("", -5)}, connect.CodeInvalidArgument, "policy.default_rule.days"},
		{"zero default days", &v1.RetentionPolicy{FloorDays: 1, DefaultRule: rule("", 0)}, connect.CodeInvalidArgument, "policy.default_rule.days"},
		{"negative rule days", &v1.RetentionPolicy{FloorDays: 1, DefaultRule: rule("", 200), Rules: []*v1.RetentionRule{rule("errors", -1)}}, connect.CodeInvalidArgument, "policy.rules[0].days"},
		{"negative floor", &v1.RetentionPolicy{FloorDays: -1, DefaultRule: rule("", 200)}, connect.CodeInvalidArgument, "policy.floor_days"},
		{"below the floor", &v1.RetentionPolicy{FloorDays: 30, DefaultRule: rule("", 10)}, connect.CodeFailedPrecondition, "floor"},
		{"too many rules", &v1.RetentionPolicy{FloorDays: 1, DefaultRule: rule("", 200), Rules: manyRules}, connect.CodeInvalidArgument, "policy.rules"},
		{"long class", &v1.RetentionPolicy{FloorDays: 1, DefaultRule: rule("", 200), Rules: []*v1.RetentionRule{rule(strings.Repeat("c", 100), 400)}}, connect.CodeInvalidArgument, "policy.rules[0].class"},
		{"too many attributes", &v1.RetentionPolicy{FloorDays: 1, DefaultRule: rule("", 200),
			Rules: []*v1.RetentionRule{{Class: "a", Days: 400, Mode: gov, Match: &v1.RuleMatch{Attributes: manyAttrs}}}}, connect.CodeInvalidArgument, "policy.rules[0].match.attributes"},
		{"long attribute name", &v1.RetentionPolicy{FloorDays: 1, DefaultRule: rule("", 200),
			Rules: []*v1.RetentionRule{{Class: "a", Days: 400, Mode: gov, Match: &v1.RuleMatch{Attributes: map[string]string{strings.Repeat("k", 100_000): "v"}}}}}, connect.CodeInvalidArgument, "policy.rules[0].match.attributes"},
		{"long attribute value", &v1.RetentionPolicy{FloorDays: 1, DefaultRule: rule("", 200),
			Rules: []*v1.RetentionRule{{Class: "a", Days: 400, Mode: gov, Match: &v1.RuleMatch{Attributes: map[string]string{"k": strings.Repeat("v", 100_000)}}}}}, connect.CodeInvalidArgument, "policy.rules[0].match.attributes"},
		{"repeated kinds", &v1.RetentionPolicy{FloorDays: 1, DefaultRule: rule("", 200),
			Rules: []*v1.RetentionRule{{Class: "a", Days: 400, Mode: gov, Match: &v1.RuleMatch{Kinds: make([]v1.SpanKind, 1000)}}}}, connect.CodeInvalidArgument, "policy.rules[0].match.kinds"},
	} {
		_, err := co.retention.SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: tc.pol, Reason: "limits"}))
		wantCode(t, "SetRetention("+tc.name+")", err, tc.code, tc.field)
	}
	got, err := co.retention.GetRetention(ctx, connect.NewRequest(&v1.GetRetentionRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Msg.GetPolicy().GetRevision() != 0 {
		t.Errorf("after refused changes: revision %d, %v; want the policy unchanged (revision 0)", got.Msg.GetPolicy().GetRevision(), err)
	}
}

// TestEraseRequestIDReused: reusing a request id for a different erasure
// is already_exists naming request_id, over the API.
func TestEraseRequestIDReused(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	app := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	sp := testSpan(0)
	other := testSpan(20)
	other.SubjectId = "customer-43"
	if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{sp, other}})); err != nil {
		t.Fatal(err)
	}
	req := &v1.EraseRequest{RequestId: "dsr-7", SubjectId: "customer-42", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "request"}
	if _, err := co.retention.Erase(ctx, connect.NewRequest(req)); err != nil {
		t.Fatal(err)
	}
	if _, err := co.retention.Erase(ctx, connect.NewRequest(req)); err != nil {
		t.Errorf("Erase(same request again) = %v", err)
	}
	req.SubjectId = "customer-43"
	_, err := co.retention.Erase(ctx, connect.NewRequest(req))
	wantCode(t, "Erase(request id reused for another subject)", err, connect.CodeAlreadyExists, "request_id")
	// The access log records the refusal once: its code apart, its message
	// without the code.
	rs := s.accessRecords(t, "default")
	last := rs[len(rs)-1]
	if last.GetOutcome() != v1.AccessOutcome_ACCESS_OUTCOME_FAILED || last.GetCode() != "already_exists" || !strings.HasPrefix(last.GetReason(), "request_id") {
		t.Errorf("access record of the refused erasure: code %q, reason %q", last.GetCode(), last.GetReason())
	}
}

// TestEraseBusyIsUnavailable: an erasure refused because another process
// is carrying out the same request (its lease, docs/FORMAT.md §6, held by
// another node) is unavailable, over both protocols: nothing was done and
// the same call, asked again later, succeeds.
func TestEraseBusyIsUnavailable(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	app := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	key := s.key(t, policy.ComplianceOfficer, "default")
	if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(0)}})); err != nil {
		t.Fatal(err)
	}
	lease := func(until string) {
		t.Helper()
		v := fmt.Sprintf(`{"node":"another-node","run":"0123456789abcdef","until":%q,"token":1}`, until)
		if err := s.l.PutState(ctx, "default", "erasure-lease/dsr-busy", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	lease("2999-01-01T00:00:00Z")
	req := &v1.EraseRequest{RequestId: "dsr-busy", SubjectId: "customer-42", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "request"}
	for _, protocol := range []string{"connect", "grpc"} {
		co := s.clients(protocol, "", key)
		_, err := co.retention.Erase(ctx, connect.NewRequest(req))
		wantCode(t, "Erase("+protocol+", while another node holds the request)", err, connect.CodeUnavailable, "another process")
		if err != nil && strings.Contains(err.Error(), "customer-42") {
			t.Errorf("the refusal names the subject: %v", err)
		}
	}
	lease("2000-01-01T00:00:00Z") // the other node's lease ended
	co := s.clients("connect", "", key)
	resp, err := co.retention.Erase(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatalf("Erase() asked again once the other node's lease ended = %v", err)
	}
	t.Logf("asked again: state %v", resp.Msg.GetErasure().GetState())
}
