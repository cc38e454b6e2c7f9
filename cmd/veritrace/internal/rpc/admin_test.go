package rpc

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// TestTenantAdminConfined: an admin key bound to tenants manages keys of
// those tenants only; it cannot mint "*" keys or keys for other tenants,
// see or revoke their keys, create tenants or read the system log. An
// admin bound to "*" can do all of it.
func TestTenantAdminConfined(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	s.tenant(t, "acme")
	s.tenant(t, "globex")
	server := s.clients("connect", "", s.key(t, policy.Admin, policy.AllTenants))
	acmeAdmin := s.key(t, policy.Admin, "acme")
	adm := s.clients("connect", "", acmeAdmin)
	globexKey := s.key(t, policy.Auditor, "globex")
	globexID, _, _ := parseToken(globexKey)
	bothKey := s.key(t, policy.Auditor, "acme", "globex")
	bothID, _, _ := parseToken(bothKey)

	for _, tc := range []struct {
		role    v1.Role
		tenants []string
	}{
		{v1.Role_ROLE_ADMIN, []string{"*"}},
		{v1.Role_ROLE_AUDITOR, []string{"*"}},
		{v1.Role_ROLE_AUDITOR, []string{"globex"}},
		{v1.Role_ROLE_INGESTER, []string{"acme", "globex"}},
		{v1.Role_ROLE_ADMIN, []string{"globex"}},
	} {
		_, err := adm.admin.CreateKey(ctx, connect.NewRequest(&v1.CreateKeyRequest{Role: tc.role, Tenants: tc.tenants}))
		wantCode(t, fmt.Sprintf("tenant admin: CreateKey(%s, %v)", tc.role, tc.tenants), err, connect.CodePermissionDenied, "tenants")
	}
	var made []string
	for _, role := range []v1.Role{v1.Role_ROLE_AUDITOR, v1.Role_ROLE_ADMIN} {
		r, err := adm.admin.CreateKey(ctx, connect.NewRequest(&v1.CreateKeyRequest{Role: role, Tenants: []string{"acme"}}))
		if err != nil {
			t.Fatalf("tenant admin: CreateKey(%s, [acme]) = %v", role, err)
		}
		made = append(made, r.Msg.GetKey().GetId())
	}
	lk, err := adm.admin.ListKeys(ctx, connect.NewRequest(&v1.ListKeysRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range lk.Msg.GetKeys() {
		for _, tenant := range k.GetTenants() {
			if tenant != "acme" {
				t.Errorf("tenant admin's ListKeys shows key %s bound to %v", k.GetId(), k.GetTenants())
			}
		}
		made = slices.DeleteFunc(made, func(id string) bool { return id == k.GetId() })
	}
	if len(made) != 0 {
		t.Errorf("tenant admin's ListKeys misses the keys it made: %v", made)
	}
	for _, id := range [][8]byte{globexID, bothID} {
		_, err := adm.admin.RevokeKey(ctx, connect.NewRequest(&v1.RevokeKeyRequest{Id: fmt.Sprintf("%x", id)}))
		wantCode(t, fmt.Sprintf("tenant admin: RevokeKey(%x)", id), err, connect.CodeNotFound, "")
	}
	if k, err := s.l.GetAPIKey(ctx, globexID); err != nil || !k.RevokedAt.IsZero() {
		t.Errorf("globex's key after the tenant admin's attempt: %v, %v", k, err)
	}
	_, err = adm.admin.CreateTenant(ctx, connect.NewRequest(&v1.CreateTenantRequest{Name: "initech"}))
	wantCode(t, "tenant admin: CreateTenant", err, connect.CodePermissionDenied, "")
	lt, err := adm.admin.ListTenants(ctx, connect.NewRequest(&v1.ListTenantsRequest{}))
	if err != nil || fmt.Sprint(lt.Msg.GetTenants()) != "[acme]" {
		t.Errorf("tenant admin: ListTenants() = %v, %v; want [acme]", lt, err)
	}
	_, err = s.clients("connect", ledger.SystemTenant, acmeAdmin).ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{}))
	wantCode(t, "tenant admin: ListAccessLog(system)", err, connect.CodePermissionDenied, "")

	// The server-wide admin can do all of it.
	if _, err := server.admin.CreateKey(ctx, connect.NewRequest(&v1.CreateKeyRequest{Role: v1.Role_ROLE_ADMIN, Tenants: []string{"*"}})); err != nil {
		t.Errorf("server admin: CreateKey(admin, *) = %v", err)
	}
	if _, err := server.admin.RevokeKey(ctx, connect.NewRequest(&v1.RevokeKeyRequest{Id: fmt.Sprintf("%x", globexID)})); err != nil {
		t.Errorf("server admin: RevokeKey(globex key) = %v", err)
	}
	if _, err := server.admin.CreateTenant(ctx, connect.NewRequest(&v1.CreateTenantRequest{Name: "initech"})); err != nil {
		t.Errorf("server admin: CreateTenant = %v", err)
	}
	all, err := server.admin.ListKeys(ctx, connect.NewRequest(&v1.ListKeysRequest{}))
	if err != nil || len(all.Msg.GetKeys()) <= len(lk.Msg.GetKeys()) {
		t.Errorf("server admin: ListKeys() = %d keys, %v; want more than the tenant admin's %d", len(all.Msg.GetKeys()), err, len(lk.Msg.GetKeys()))
	}
}

// TestSystemTenantReadOnly: the system tenant holds the server's access
// log; no request may append to it or change its rules, and no key may be
// bound to it. Keys bound to "*" read it.
func TestSystemTenantReadOnly(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("connect", ledger.SystemTenant, s.key(t, policy.Ingester, policy.AllTenants))
	co := s.clients("grpc", ledger.SystemTenant, s.key(t, policy.ComplianceOfficer, policy.AllTenants))
	before, err := s.l.Size(ctx, ledger.SystemTenant)
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"AppendSpans": func() error {
			_, err := ing.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(0)}}))
			return err
		},
		"RegisterVersion": func() error {
			_, err := ing.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{Kind: v1.VersionKind_VERSION_KIND_POLICY, Name: "p", Label: "1", Content: []byte("x")}))
			return err
		},
		"PlaceHold": func() error {
			_, err := co.retention.PlaceHold(ctx, connect.NewRequest(&v1.PlaceHoldRequest{Scope: &v1.HoldScope{SubjectId: "someone"}, CaseRef: "C-1", Reason: "r"}))
			return err
		},
		"SetRetention": func() error {
			_, err := co.retention.SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: &v1.RetentionPolicy{FloorDays: 1,
				DefaultRule: &v1.RetentionRule{Days: 400, Mode: v1.RetentionMode_RETENTION_MODE_COMPLIANCE}}}))
			return err
		},
		"Erase": func() error {
			_, err := co.retention.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: "e1", SubjectId: "someone", LegalBasis: "x", Reason: "y"}))
			return err
		},
	} {
		wantCode(t, name+"(system)", call(), connect.CodePermissionDenied, "system tenant")
	}
	// Nothing but the refusals' record was appended.
	rs := s.accessRecords(t, ledger.SystemTenant)
	after, _ := s.l.Size(ctx, ledger.SystemTenant)
	if after-before != uint64(len(rs)) {
		t.Errorf("the system log grew by %d entries, %d of them access records", after-before, len(rs))
	}
	_, err = s.clients("connect", "", s.key(t, policy.Admin, policy.AllTenants)).admin.CreateKey(ctx, connect.NewRequest(&v1.CreateKeyRequest{Role: v1.Role_ROLE_AUDITOR, Tenants: []string{"default", ledger.SystemTenant}}))
	wantCode(t, "CreateKey(bound to system)", err, connect.CodeInvalidArgument, "tenants[1]")
	// Keys bound to "*" read it.
	aud := s.clients("connect", ledger.SystemTenant, s.key(t, policy.Auditor, policy.AllTenants))
	if _, err := aud.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{})); err != nil {
		t.Errorf("auditor bound to *: ListAccessLog(system) = %v", err)
	}
	if _, err := aud.ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{Fresh: true})); err != nil {
		t.Errorf("auditor bound to *: GetCheckpoint(system) = %v", err)
	}
}

// The policy package, which imports nothing of ours, names the system
// tenant itself.
func TestSystemTenantName(t *testing.T) {
	if policy.SystemTenant != ledger.SystemTenant {
		t.Errorf("policy.SystemTenant = %q, ledger.SystemTenant = %q", policy.SystemTenant, ledger.SystemTenant)
	}
}
