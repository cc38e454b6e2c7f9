package rpc

import (
	"context"
	"strings"
	"testing"
	"unicode"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
)

// accessRecords reads a tenant's access log straight from the ledger (not
// through ListAccessLog, which would record itself).
func (s *testServer) accessRecords(t *testing.T, tenant string) []*v1.AccessRecord {
	t.Helper()
	var out []*v1.AccessRecord
	for from := uint64(0); ; {
		es, next, err := s.l.EntriesOfKind(context.Background(), tenant, format.KindAccess, from, 1000)
		if err != nil {
			t.Fatalf("EntriesOfKind(%s) = %v", tenant, err)
		}
		for _, e := range es {
			r := &v1.AccessRecord{}
			if err := proto.Unmarshal(e.Payload, r); err != nil {
				t.Fatalf("access entry %d of %s: %v", e.Header.Index, tenant, err)
			}
			out = append(out, r)
		}
		if next == 0 {
			return out
		}
		from = next
	}
}

// allAccessRecords reads the access logs of every tenant.
func (s *testServer) allAccessRecords(t *testing.T) map[string][]*v1.AccessRecord {
	t.Helper()
	out := map[string][]*v1.AccessRecord{}
	for _, tenant := range s.l.Tenants() {
		out[tenant] = s.accessRecords(t, tenant)
	}
	return out
}

func countRecords(m map[string][]*v1.AccessRecord) int {
	n := 0
	for _, rs := range m {
		n += len(rs)
	}
	return n
}

// accessRecordLimit is the most an access record may take, whatever the
// request: every string in it is bounded.
const accessRecordLimit = 2048

// TestAccessRecordsBounded sends requests whose targets, reasons and
// headers are as large as a request may be, and full of control
// characters, and checks that no access record grows with them.
func TestAccessRecordsBounded(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	s.tenant(t, "acme")
	s.tenant(t, "globex")
	huge := strings.Repeat("A\n\x1b[31m", 150_000) // about 1 MiB, with newlines and terminal escapes
	// A key bound to acme, naming globex: the refusal is recorded in
	// globex's log.
	ing := s.clients("connect", "globex", s.key(t, policy.Ingester, "acme"))
	_, err := ing.ingest.GetVersion(ctx, connect.NewRequest(&v1.GetVersionRequest{Id: huge}))
	wantCode(t, "GetVersion(foreign tenant)", err, connect.CodePermissionDenied, "")
	_, err = ing.admin.RevokeKey(ctx, connect.NewRequest(&v1.RevokeKeyRequest{Id: huge}))
	wantCode(t, "RevokeKey(ingester)", err, connect.CodePermissionDenied, "")
	_, err = ing.admin.CreateTenant(ctx, connect.NewRequest(&v1.CreateTenantRequest{Name: huge}))
	wantCode(t, "CreateTenant(ingester)", err, connect.CodePermissionDenied, "")
	co := s.clients("connect", "globex", s.key(t, policy.ComplianceOfficer, "acme"))
	_, err = co.retention.ReleaseHold(ctx, connect.NewRequest(&v1.ReleaseHoldRequest{HoldId: huge, Reason: huge}))
	wantCode(t, "ReleaseHold(foreign tenant)", err, connect.CodePermissionDenied, "")
	_, err = co.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: []byte(huge)}))
	wantCode(t, "GetTrace(foreign tenant)", err, connect.CodePermissionDenied, "")
	// Allowed calls that fail: the reason echoes the request.
	own := s.clients("connect", "acme", s.key(t, policy.ComplianceOfficer, "acme"))
	_, err = own.retention.GetErasure(ctx, connect.NewRequest(&v1.GetErasureRequest{RequestId: huge}))
	wantCode(t, "GetErasure(huge id)", err, connect.CodeNotFound, "")
	_, err = own.retention.ReleaseHold(ctx, connect.NewRequest(&v1.ReleaseHoldRequest{HoldId: huge[:900], Reason: "r"}))
	wantCode(t, "ReleaseHold(unknown)", err, connect.CodeNotFound, "")
	adm := s.clients("connect", "", s.key(t, policy.Admin, policy.AllTenants))
	_, err = adm.admin.RevokeKey(ctx, connect.NewRequest(&v1.RevokeKeyRequest{Id: huge}))
	wantCode(t, "RevokeKey(huge id)", err, connect.CodeInvalidArgument, "id")
	_, err = adm.admin.CreateTenant(ctx, connect.NewRequest(&v1.CreateTenantRequest{Name: huge}))
	wantCode(t, "CreateTenant(huge name)", err, connect.CodeInvalidArgument, "name")

	all := s.allAccessRecords(t)
	if len(all["globex"]) == 0 || len(all["system"]) == 0 || len(all["acme"]) == 0 {
		t.Fatalf("expected records in globex, system and acme; got %d, %d, %d", len(all["globex"]), len(all["system"]), len(all["acme"]))
	}
	for tenant, rs := range all {
		for i, r := range rs {
			if n := proto.Size(r); n > accessRecordLimit {
				t.Errorf("%s access record %d is %d bytes (target %d, reason %d bytes), want at most %d", tenant, i, n, len(r.GetTarget()), len(r.GetReason()), accessRecordLimit)
			}
			for name, v := range map[string]string{"target": r.GetTarget(), "reason": r.GetReason(), "peer": r.GetPeer(), "tenant": r.GetTenant(), "key_id": r.GetKeyId()} {
				if at := strings.IndexFunc(v, unicode.IsControl); at >= 0 {
					t.Errorf("%s access record %d: %s holds a control character at %d: %.80q", tenant, i, name, at, v)
				}
			}
		}
	}
}

// TestMalformedTenantHeader: a request whose Veritrace-Tenant header is
// not a tenant name is refused with invalid_argument and leaves no record,
// with or without a valid key.
func TestMalformedTenantHeader(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	token := s.key(t, policy.Auditor, policy.AllTenants)
	before := countRecords(s.allAccessRecords(t))
	for _, tenant := range []string{"Not A Tenant", strings.Repeat("x", 5000), "../system", "a\tb"} {
		for name, tok := range map[string]string{"valid key": token, "no key": "", "bad key": "vtk_0123"} {
			c := s.clients("connect", "", tok)
			req := connect.NewRequest(&v1.GetEntryRequest{})
			req.Header().Set(TenantHeader, tenant)
			_, err := c.ledger.GetEntry(ctx, req)
			wantCode(t, "GetEntry(tenant "+tenant[:min(len(tenant), 20)]+", "+name+")", err, connect.CodeInvalidArgument, TenantHeader)
		}
	}
	if after := countRecords(s.allAccessRecords(t)); after != before {
		t.Errorf("malformed tenant headers left %d access records, want none", after-before)
	}
}
