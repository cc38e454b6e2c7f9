package rpc

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// procedureCalls makes one call of every procedure in the rules table.
// Requests are valid where that is cheap; an authorised call may still fail
// for other reasons (NotFound, InvalidArgument), which is not an auth code.
func procedureCalls(n *int) map[string]func(ctx context.Context, c clients) error {
	next := func() int { *n++; return *n }
	return map[string]func(ctx context.Context, c clients) error{
		veritracev1connect.IngestServiceAppendSpansProcedure: func(ctx context.Context, c clients) error {
			_, err := c.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(next())}}))
			return err
		},
		veritracev1connect.IngestServiceRegisterVersionProcedure: func(ctx context.Context, c clients) error {
			_, err := c.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{Kind: v1.VersionKind_VERSION_KIND_POLICY, Name: "p", Label: fmt.Sprint(next()), Content: []byte("x")}))
			return err
		},
		veritracev1connect.IngestServiceGetVersionProcedure: func(ctx context.Context, c clients) error {
			_, err := c.ingest.GetVersion(ctx, connect.NewRequest(&v1.GetVersionRequest{Id: strings.Repeat("ab", 32)}))
			return err
		},
		veritracev1connect.IngestServiceListVersionsProcedure: func(ctx context.Context, c clients) error {
			_, err := c.ingest.ListVersions(ctx, connect.NewRequest(&v1.ListVersionsRequest{}))
			return err
		},
		veritracev1connect.LedgerServiceGetCheckpointProcedure: func(ctx context.Context, c clients) error {
			_, err := c.ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{}))
			return err
		},
		veritracev1connect.LedgerServiceGetInclusionProofProcedure: func(ctx context.Context, c clients) error {
			_, err := c.ledger.GetInclusionProof(ctx, connect.NewRequest(&v1.GetInclusionProofRequest{Index: 0}))
			return err
		},
		veritracev1connect.LedgerServiceGetConsistencyProofProcedure: func(ctx context.Context, c clients) error {
			_, err := c.ledger.GetConsistencyProof(ctx, connect.NewRequest(&v1.GetConsistencyProofRequest{OldSize: 0}))
			return err
		},
		veritracev1connect.LedgerServiceGetEntryProcedure: func(ctx context.Context, c clients) error {
			_, err := c.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: 0}))
			return err
		},
		veritracev1connect.LedgerServiceListAccessLogProcedure: func(ctx context.Context, c clients) error {
			_, err := c.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{}))
			return err
		},
		veritracev1connect.AuditServiceGetTraceProcedure: func(ctx context.Context, c clients) error {
			_, err := c.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: testSpan(0).TraceId}))
			return err
		},
		veritracev1connect.AuditServiceQueryTracesProcedure: func(ctx context.Context, c clients) error {
			_, err := c.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: &v1.TraceQuery{SubjectId: "customer-42"}}))
			return err
		},
		veritracev1connect.AuditServiceExportBundleProcedure: func(ctx context.Context, c clients) error {
			_, err := readBundle(ctx, c, &v1.TraceQuery{TraceId: testSpan(0).TraceId}, 0)
			return err
		},
		veritracev1connect.RetentionServiceGetRetentionProcedure: func(ctx context.Context, c clients) error {
			_, err := c.retention.GetRetention(ctx, connect.NewRequest(&v1.GetRetentionRequest{}))
			return err
		},
		veritracev1connect.RetentionServiceSetRetentionProcedure: func(ctx context.Context, c clients) error {
			_, err := c.retention.SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: &v1.RetentionPolicy{FloorDays: 1,
				DefaultRule: &v1.RetentionRule{Days: int32(200 + next()), Mode: v1.RetentionMode_RETENTION_MODE_GOVERNANCE}}}))
			return err
		},
		veritracev1connect.RetentionServiceSweepProcedure: func(ctx context.Context, c clients) error {
			_, err := c.retention.Sweep(ctx, connect.NewRequest(&v1.SweepRequest{}))
			return err
		},
		veritracev1connect.RetentionServicePlaceHoldProcedure: func(ctx context.Context, c clients) error {
			_, err := c.retention.PlaceHold(ctx, connect.NewRequest(&v1.PlaceHoldRequest{Scope: &v1.HoldScope{SubjectId: "someone"}, CaseRef: "C-1", Reason: "r"}))
			return err
		},
		veritracev1connect.RetentionServiceReleaseHoldProcedure: func(ctx context.Context, c clients) error {
			_, err := c.retention.ReleaseHold(ctx, connect.NewRequest(&v1.ReleaseHoldRequest{HoldId: "no-such-hold", Reason: "r"}))
			return err
		},
		veritracev1connect.RetentionServiceListHoldsProcedure: func(ctx context.Context, c clients) error {
			_, err := c.retention.ListHolds(ctx, connect.NewRequest(&v1.ListHoldsRequest{}))
			return err
		},
		veritracev1connect.RetentionServiceEraseProcedure: func(ctx context.Context, c clients) error {
			_, err := c.retention.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: fmt.Sprint("m", next()), SubjectId: "customer-42", LegalBasis: "test", Reason: "test", DryRun: true}))
			return err
		},
		veritracev1connect.RetentionServiceGetErasureProcedure: func(ctx context.Context, c clients) error {
			_, err := c.retention.GetErasure(ctx, connect.NewRequest(&v1.GetErasureRequest{RequestId: "nope"}))
			return err
		},
		veritracev1connect.AdminServiceCreateKeyProcedure: func(ctx context.Context, c clients) error {
			_, err := c.admin.CreateKey(ctx, connect.NewRequest(&v1.CreateKeyRequest{Role: v1.Role_ROLE_AUDITOR, Tenants: []string{"acme"}}))
			return err
		},
		veritracev1connect.AdminServiceListKeysProcedure: func(ctx context.Context, c clients) error {
			_, err := c.admin.ListKeys(ctx, connect.NewRequest(&v1.ListKeysRequest{}))
			return err
		},
		veritracev1connect.AdminServiceRevokeKeyProcedure: func(ctx context.Context, c clients) error {
			_, err := c.admin.RevokeKey(ctx, connect.NewRequest(&v1.RevokeKeyRequest{Id: "0000000000000000"}))
			return err
		},
		veritracev1connect.AdminServiceCreateTenantProcedure: func(ctx context.Context, c clients) error {
			_, err := c.admin.CreateTenant(ctx, connect.NewRequest(&v1.CreateTenantRequest{Name: fmt.Sprint("t", next())}))
			return err
		},
		veritracev1connect.AdminServiceListTenantsProcedure: func(ctx context.Context, c clients) error {
			_, err := c.admin.ListTenants(ctx, connect.NewRequest(&v1.ListTenantsRequest{}))
			return err
		},
		veritracev1connect.AuditServiceAggregateTracesProcedure: func(ctx context.Context, c clients) error {
			now := time.Now()
			_, err := c.audit.AggregateTraces(ctx, connect.NewRequest(&v1.AggregateTracesRequest{Query: &v1.TraceQuery{From: timestamppb.New(now.Add(-time.Hour)), To: timestamppb.New(now)}}))
			return err
		},
		veritracev1connect.RetentionServiceListErasuresProcedure: func(ctx context.Context, c clients) error {
			_, err := c.retention.ListErasures(ctx, connect.NewRequest(&v1.ListErasuresRequest{}))
			return err
		},
		veritracev1connect.IdentityServiceWhoAmIProcedure: func(ctx context.Context, c clients) error {
			_, err := c.identity.WhoAmI(ctx, connect.NewRequest(&v1.WhoAmIRequest{}))
			return err
		},
		otlp.TraceExportProcedure: func(ctx context.Context, c clients) error {
			_, err := c.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(next()))))
			return err
		},
		otlp.LogsExportProcedure: func(ctx context.Context, c clients) error {
			_, err := c.otlp.logs.CallUnary(ctx, connect.NewRequest(otlpLogs(otlpLogRecord(next()))))
			return err
		},
		otlp.TracesPath: func(ctx context.Context, c clients) error {
			_, _, err := c.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(otlpSpan(next()))))
			return err
		},
		otlp.LogsPath: func(ctx context.Context, c clients) error {
			_, _, err := c.otlp.post(ctx, otlp.LogsPath, otlp.ContentJSON, []byte(`{"resourceLogs":[]}`))
			return err
		},
	}
}

func isAuthCode(c connect.Code) bool {
	return c == connect.CodeUnauthenticated || c == connect.CodePermissionDenied
}

// TestAccessMatrix calls every RPC with every role, on its own and on a
// foreign tenant, and with no key, a malformed, unknown, revoked and
// expired key, over Connect and gRPC, and checks the code.
func TestAccessMatrix(t *testing.T) {
	// Every unauthenticated call answers unauthenticated: the limiter of
	// failed authentications is tested in TestUnauthenticatedRateLimited.
	s := startServerWith(t, Options{AuthFailureBurst: 1 << 20})
	ctx := context.Background()
	s.tenant(t, "acme")
	s.tenant(t, "globex")
	// Something to read in acme.
	ing := s.clients("connect", "", s.key(t, policy.Ingester, "acme"))
	if _, err := ing.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(0)}})); err != nil {
		t.Fatal(err)
	}
	revoked := s.key(t, policy.Auditor, "acme")
	id, _, _ := parseToken(revoked)
	if _, err := s.l.RevokeAPIKey(ctx, id, s.now); err != nil {
		t.Fatal(err)
	}
	expiredToken, rec := NewKey(policy.Auditor, []string{"acme"}, "", s.now.Add(-time.Minute), "", s.now.Add(-time.Hour))
	if err := s.l.PutAPIKey(ctx, rec); err != nil {
		t.Fatal(err)
	}
	unknownToken, _ := NewKey(policy.Admin, []string{"*"}, "", time.Time{}, "", s.now)
	wrongSecret := revoked[:len(revoked)-43] + strings.Repeat("A", 43)

	n := 100
	calls := procedureCalls(&n)
	if len(calls) != len(rules) {
		t.Fatalf("the matrix covers %d procedures, the rules table has %d", len(calls), len(rules))
	}
	for proc := range rules {
		if calls[proc] == nil {
			t.Fatalf("no matrix call for %s", proc)
		}
	}
	for _, protocol := range []string{"connect", "grpc"} {
		for _, role := range policy.Roles {
			token := s.key(t, role, "acme")
			for _, tenant := range []string{"acme", "globex"} {
				c := s.clients(protocol, tenant, token)
				for proc, call := range calls {
					err := call(ctx, c)
					p := &policy.Principal{Role: role, Tenants: []string{"acme"}}
					allowed := policy.Decide(p, rules[proc].perm, tenant) == nil
					code := connect.CodeOf(err)
					switch {
					case allowed && isAuthCode(code):
						t.Errorf("%s %s on %s: %s = %v, want allowed", protocol, role, tenant, proc, err)
					case !allowed && code != connect.CodePermissionDenied:
						t.Errorf("%s %s on %s: %s = %v, want permission_denied", protocol, role, tenant, proc, err)
					}
				}
			}
		}
		for name, token := range map[string]string{
			"no key": "", "malformed key": "vtk_nothex_x", "unknown key": unknownToken, "wrong secret": wrongSecret,
			"revoked key": revoked, "expired key": expiredToken,
		} {
			c := s.clients(protocol, "acme", token)
			for proc, call := range calls {
				if err := call(ctx, c); connect.CodeOf(err) != connect.CodeUnauthenticated {
					t.Errorf("%s %s: %s = %v, want unauthenticated", protocol, name, proc, err)
				}
			}
		}
	}
	// Spot checks that do not lean on the policy package.
	for _, tc := range []struct {
		role policy.Role
		call func(c clients) error
		want connect.Code // 0: success
	}{
		{policy.Admin, func(c clients) error {
			_, err := c.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{}))
			return err
		}, connect.CodePermissionDenied},
		{policy.Auditor, func(c clients) error {
			_, err := c.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(900)}}))
			return err
		}, connect.CodePermissionDenied},
		{policy.Ingester, func(c clients) error {
			_, err := c.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{}))
			return err
		}, connect.CodePermissionDenied},
		{policy.Auditor, func(c clients) error {
			_, err := c.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{}))
			return err
		}, 0}, // allowed
		{policy.ComplianceOfficer, func(c clients) error {
			_, err := c.admin.ListKeys(ctx, connect.NewRequest(&v1.ListKeysRequest{}))
			return err
		}, connect.CodePermissionDenied},
	} {
		err := tc.call(s.clients("connect", "acme", s.key(t, tc.role, "acme")))
		if (tc.want == 0 && err != nil) || (tc.want != 0 && connect.CodeOf(err) != tc.want) {
			t.Errorf("%s: %v, want %v", tc.role, err, tc.want)
		}
	}
}

func TestAccessLog(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	s.tenant(t, "acme")
	ing := s.clients("connect", "", s.key(t, policy.Ingester, "acme"))
	if _, err := ing.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(0)}})); err != nil {
		t.Fatal(err)
	}
	auditorToken := s.key(t, policy.Auditor, "acme")
	auditorID, _, _ := parseToken(auditorToken)
	aud := s.clients("connect", "", auditorToken)
	if _, err := aud.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: 0})); err != nil {
		t.Fatal(err)
	}
	_, err := ing.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: 0})) // denied
	wantCode(t, "ingester GetEntry", err, connect.CodePermissionDenied, "")

	resp, err := aud.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range resp.Msg.GetEntries() {
		r := e.GetRecord()
		got = append(got, fmt.Sprintf("%s %s %s %s", r.GetOutcome(), r.GetRole(), strings.TrimPrefix(r.GetProcedure(), "/veritrace.v1."), r.GetTarget()))
		if r.GetPeer() == "" || r.GetTime() == nil || r.GetTenant() != "acme" {
			t.Errorf("access record %d lacks peer, time or tenant: %v", e.GetIndex(), r)
		}
	}
	want := []string{
		"ACCESS_OUTCOME_ALLOWED ROLE_AUDITOR LedgerService/GetEntry entry 0",
		"ACCESS_OUTCOME_DENIED ROLE_INGESTER LedgerService/GetEntry entry 0",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("access log = %q, want %q", got, want)
	}
	if k := resp.Msg.GetEntries()[0].GetRecord().GetKeyId(); k != fmt.Sprintf("%x", auditorID) {
		t.Errorf("access record key id = %q, want %x", k, auditorID)
	}
	// The access entries are ledger entries: they verify against a checkpoint.
	cp, err := aud.ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{Fresh: true}))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range resp.Msg.GetEntries() {
		p, err := aud.ledger.GetInclusionProof(ctx, connect.NewRequest(&v1.GetInclusionProofRequest{Index: e.GetIndex(), TreeSize: cp.Msg.GetCheckpoint().GetSize()}))
		if err != nil {
			t.Fatal(err)
		}
		var leaf, root tlog.Hash
		copy(leaf[:], e.GetLeafHash())
		copy(root[:], cp.Msg.GetCheckpoint().GetRootHash())
		proof := make(tlog.RecordProof, len(p.Msg.GetProof().GetHashes()))
		for i, h := range p.Msg.GetProof().GetHashes() {
			copy(proof[i][:], h)
		}
		if err := tlog.CheckRecord(proof, int64(cp.Msg.GetCheckpoint().GetSize()), root, int64(e.GetIndex()), leaf); err != nil {
			t.Errorf("access entry %d does not verify: %v", e.GetIndex(), err)
		}
	}
	// An auditor reading an access entry through GetEntry sees it decoded.
	ge, err := aud.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: resp.Msg.GetEntries()[0].GetIndex()}))
	if err != nil || ge.Msg.GetEntry().GetAccess().GetTarget() != "entry 0" || ge.Msg.GetEntry().GetHeader().GetKind() != v1.EntryKind_ENTRY_KIND_ACCESS {
		t.Errorf("GetEntry(access entry) = %v, %v", ge, err)
	}

	// Key changes and unauthenticated attempts go to the system log.
	adminToken := s.key(t, policy.Admin, policy.AllTenants)
	adm := s.clients("connect", "", adminToken)
	created, err := adm.admin.CreateKey(ctx, connect.NewRequest(&v1.CreateKeyRequest{Role: v1.Role_ROLE_INGESTER, Tenants: []string{"acme"}, Label: "app"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.admin.RevokeKey(ctx, connect.NewRequest(&v1.RevokeKeyRequest{Id: created.Msg.GetKey().GetId()})); err != nil {
		t.Fatal(err)
	}
	_, err = s.clients("connect", "acme", created.Msg.GetToken()).ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}}))
	wantCode(t, "AppendSpans(revoked key)", err, connect.CodeUnauthenticated, "revoked")
	sys, err := s.clients("connect", ledger.SystemTenant, adminToken).ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, e := range sys.Msg.GetEntries() {
		r := e.GetRecord()
		got = append(got, fmt.Sprintf("%s %s %s", r.GetOutcome(), strings.TrimPrefix(r.GetProcedure(), "/veritrace.v1."), r.GetCode()))
	}
	want = []string{
		"ACCESS_OUTCOME_ALLOWED AdminService/CreateKey ",
		"ACCESS_OUTCOME_ALLOWED AdminService/RevokeKey ",
		"ACCESS_OUTCOME_DENIED IngestService/AppendSpans unauthenticated",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("system access log = %q, want %q", got, want)
	}
}

// TestPlaintextKeysRefused sends a request as if from a non-loopback
// address over plaintext, in process.
func TestPlaintextKeysRefused(t *testing.T) {
	s := startServer(t, 0)
	token := s.key(t, policy.Auditor, "default")
	for _, allow := range []bool{false, true} {
		h := NewHandler(s.l, Options{AllowPlaintextKeys: allow})
		defer h.Close(context.Background())
		req := httptest.NewRequest(http.MethodPost, "/veritrace.v1.LedgerService/GetCheckpoint", strings.NewReader("{}"))
		req.RemoteAddr = "192.0.2.10:40000" // TEST-NET-1; no traffic is sent
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		want := http.StatusUnauthorized
		if allow {
			want = http.StatusOK
		}
		if rec.Code != want {
			t.Errorf("AllowPlaintextKeys=%v: status %d (%s), want %d", allow, rec.Code, rec.Body, want)
		}
	}
}

// TestSecretsNeverLogged runs key creation, use, revocation and failed
// authentication, then searches everything the server logged.
func TestSecretsNeverLogged(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	adminToken := s.key(t, policy.Admin, policy.AllTenants)
	adm := s.clients("connect", "", adminToken)
	created, err := adm.admin.CreateKey(ctx, connect.NewRequest(&v1.CreateKeyRequest{Role: v1.Role_ROLE_INGESTER, Tenants: []string{"default"}, ExpiresAt: timestamppb.New(time.Now().Add(time.Hour))}))
	if err != nil {
		t.Fatal(err)
	}
	token := created.Msg.GetToken()
	ing := s.clients("grpc", "", token)
	if _, err := ing.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}})); err != nil {
		t.Fatal(err)
	}
	s.clients("connect", "", token+"x").ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{}))
	s.clients("connect", "", token[:len(token)-1]+"Q").ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{}))
	adm.admin.RevokeKey(ctx, connect.NewRequest(&v1.RevokeKeyRequest{Id: created.Msg.GetKey().GetId()}))
	ing.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(2)}}))

	logs := s.logs.String()
	if !strings.Contains(logs, "API key created") {
		t.Fatalf("the server logged nothing about the key; is the capture working?\n%s", logs)
	}
	for _, tok := range []string{token, adminToken} {
		secret := tok[len(tok)-43:]
		if strings.Contains(logs, secret) || strings.Contains(logs, secret[:16]) {
			t.Errorf("a key secret appears in the server log")
		}
	}
	// Nor in the access log.
	sys, err := s.clients("connect", ledger.SystemTenant, adminToken).ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fmt.Sprint(sys.Msg), token[len(token)-43:]) {
		t.Error("a key secret appears in the access log")
	}
}

func TestAdminErrors(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	adm := s.clients("connect", "", s.key(t, policy.Admin, policy.AllTenants))
	for _, tc := range []struct {
		name  string
		req   *v1.CreateKeyRequest
		code  connect.Code
		field string
	}{
		{"no role", &v1.CreateKeyRequest{Tenants: []string{"default"}}, connect.CodeInvalidArgument, "role"},
		{"no tenants", &v1.CreateKeyRequest{Role: v1.Role_ROLE_AUDITOR}, connect.CodeInvalidArgument, "tenants"},
		{"star and names", &v1.CreateKeyRequest{Role: v1.Role_ROLE_AUDITOR, Tenants: []string{"*", "default"}}, connect.CodeInvalidArgument, "tenants"},
		{"unknown tenant", &v1.CreateKeyRequest{Role: v1.Role_ROLE_AUDITOR, Tenants: []string{"nope"}}, connect.CodeFailedPrecondition, "tenants[0]"},
		{"expiry in the past", &v1.CreateKeyRequest{Role: v1.Role_ROLE_AUDITOR, Tenants: []string{"default"}, ExpiresAt: timestamppb.New(time.Now().Add(-time.Hour))}, connect.CodeInvalidArgument, "expires_at"},
	} {
		_, err := adm.admin.CreateKey(ctx, connect.NewRequest(tc.req))
		wantCode(t, "CreateKey("+tc.name+")", err, tc.code, tc.field)
	}
	_, err := adm.admin.CreateTenant(ctx, connect.NewRequest(&v1.CreateTenantRequest{Name: "system"}))
	wantCode(t, "CreateTenant(system)", err, connect.CodeInvalidArgument, "reserved")
	_, err = adm.admin.CreateTenant(ctx, connect.NewRequest(&v1.CreateTenantRequest{Name: "Bad Name"}))
	wantCode(t, "CreateTenant(Bad Name)", err, connect.CodeInvalidArgument, "name")
	_, err = adm.admin.RevokeKey(ctx, connect.NewRequest(&v1.RevokeKeyRequest{Id: "zz"}))
	wantCode(t, "RevokeKey(zz)", err, connect.CodeInvalidArgument, "id")
	_, err = adm.admin.RevokeKey(ctx, connect.NewRequest(&v1.RevokeKeyRequest{Id: "0123456789abcdef"}))
	wantCode(t, "RevokeKey(unknown)", err, connect.CodeNotFound, "")
	if r, err := adm.admin.CreateTenant(ctx, connect.NewRequest(&v1.CreateTenantRequest{Name: "acme"})); err != nil || !r.Msg.GetCreated() {
		t.Errorf("CreateTenant(acme) = %v, %v", r, err)
	}
	if r, err := adm.admin.ListTenants(ctx, connect.NewRequest(&v1.ListTenantsRequest{})); err != nil || fmt.Sprint(r.Msg.GetTenants()) != "[acme default system]" {
		t.Errorf("ListTenants() = %v, %v", r, err)
	}
}
