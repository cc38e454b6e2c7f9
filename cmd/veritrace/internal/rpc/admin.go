package rpc

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit"
	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
)

var rolesByProto = map[v1.Role]policy.Role{
	v1.Role_ROLE_INGESTER:           policy.Ingester,
	v1.Role_ROLE_AUDITOR:            policy.Auditor,
	v1.Role_ROLE_COMPLIANCE_OFFICER: policy.ComplianceOfficer,
	v1.Role_ROLE_ADMIN:              policy.Admin,
}

func roleProto(r policy.Role) v1.Role {
	for p, role := range rolesByProto {
		if role == r {
			return p
		}
	}
	return v1.Role_ROLE_UNSPECIFIED
}

func roleName(r v1.Role) string {
	if role, ok := rolesByProto[r]; ok {
		return string(role)
	}
	return r.String()
}

func apiKeyProto(k *ledger.APIKey) *v1.ApiKey {
	role, _ := policy.ParseRole(k.Role)
	m := &v1.ApiKey{
		Id: hex.EncodeToString(k.ID[:]), Role: roleProto(role), Tenants: k.Tenants, Label: k.Label,
		CreatedAt: timestamppb.New(k.CreatedAt), CreatedBy: k.CreatedBy,
	}
	if !k.ExpiresAt.IsZero() {
		m.ExpiresAt = timestamppb.New(k.ExpiresAt)
	}
	if !k.RevokedAt.IsZero() {
		m.RevokedAt = timestamppb.New(k.RevokedAt)
	}
	return m
}

type adminService struct{ *service }

func (s *adminService) CreateKey(ctx context.Context, req *connect.Request[v1.CreateKeyRequest]) (*connect.Response[v1.CreateKeyResponse], error) {
	caller, _ := principalFrom(ctx)
	role, ok := rolesByProto[req.Msg.GetRole()]
	if !ok {
		return nil, invalid("role", "must be INGESTER, AUDITOR, COMPLIANCE_OFFICER or ADMIN; got %d", req.Msg.GetRole())
	}
	tenants := req.Msg.GetTenants()
	if err := policy.ValidateBinding(tenants); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if !caller.Covers(tenants) {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf(
			"tenants: this admin key is bound to %s and may create keys only for those tenants, never for \"*\"", strings.Join(caller.Tenants, ",")))
	}
	known := s.l.Tenants()
	for i, t := range tenants {
		if t != policy.AllTenants && !slices.Contains(known, t) {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("tenants[%d]: tenant %q does not exist; create it first", i, t))
		}
	}
	if err := checkString("label", req.Msg.GetLabel(), false); err != nil {
		return nil, err
	}
	now := s.now()
	var expires time.Time // zero: never
	if e := req.Msg.GetExpiresAt(); e != nil {
		if err := e.CheckValid(); err != nil || !e.AsTime().After(now) {
			return nil, invalid("expires_at", "must be a valid time in the future")
		}
		expires = e.AsTime()
	}
	token, rec := NewKey(role, tenants, req.Msg.GetLabel(), expires, caller.KeyID, now)
	if err := s.l.PutAPIKey(ctx, rec); err != nil {
		return nil, s.fail(ctx, veritracev1connect.AdminServiceCreateKeyProcedure, err, nil)
	}
	s.log.InfoContext(ctx, "API key created", "key_id", hex.EncodeToString(rec.ID[:]), "role", role, "by", caller.KeyID)
	return connect.NewResponse(&v1.CreateKeyResponse{Key: apiKeyProto(rec), Token: token}), nil
}

// ListKeys lists the keys the caller covers: every key for an admin bound
// to "*", else the keys bound only to the caller's tenants.
func (s *adminService) ListKeys(ctx context.Context, _ *connect.Request[v1.ListKeysRequest]) (*connect.Response[v1.ListKeysResponse], error) {
	caller, _ := principalFrom(ctx)
	keys, err := s.l.ListAPIKeys(ctx)
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.AdminServiceListKeysProcedure, err, nil)
	}
	resp := &v1.ListKeysResponse{}
	for _, k := range keys {
		if caller.Covers(k.Tenants) {
			resp.Keys = append(resp.Keys, apiKeyProto(k))
		}
	}
	return connect.NewResponse(resp), nil
}

func (s *adminService) RevokeKey(ctx context.Context, req *connect.Request[v1.RevokeKeyRequest]) (*connect.Response[v1.RevokeKeyResponse], error) {
	caller, _ := principalFrom(ctx)
	var id [8]byte
	if b, err := hex.DecodeString(req.Msg.GetId()); err != nil || len(b) != len(id) {
		return nil, invalid("id", "must be 16 hex digits")
	} else {
		copy(id[:], b)
	}
	// A key the caller does not cover is answered like one that does not
	// exist.
	notFound := connect.NewError(connect.CodeNotFound, fmt.Errorf("id: no API key %x", id))
	k, err := s.l.GetAPIKey(ctx, id)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return nil, notFound
	case err != nil:
		return nil, s.fail(ctx, veritracev1connect.AdminServiceRevokeKeyProcedure, err, nil)
	case !caller.Covers(k.Tenants):
		return nil, notFound
	}
	if k, err = s.l.RevokeAPIKey(ctx, id, s.now()); err != nil {
		return nil, s.fail(ctx, veritracev1connect.AdminServiceRevokeKeyProcedure, err, nil)
	}
	s.log.InfoContext(ctx, "API key revoked", "key_id", req.Msg.GetId(), "by", caller.KeyID)
	return connect.NewResponse(&v1.RevokeKeyResponse{Key: apiKeyProto(k)}), nil
}

func (s *adminService) CreateTenant(ctx context.Context, req *connect.Request[v1.CreateTenantRequest]) (*connect.Response[v1.CreateTenantResponse], error) {
	name := req.Msg.GetName()
	if err := format.ValidateTenant(name); err != nil {
		return nil, invalid("name", "%v", err)
	}
	created, err := s.l.CreateTenant(ctx, name)
	if errors.Is(err, ledger.ErrInvalid) {
		return nil, invalid("name", "%q is reserved", name)
	}
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.AdminServiceCreateTenantProcedure, err, nil)
	}
	return connect.NewResponse(&v1.CreateTenantResponse{Name: name, Created: created}), nil
}

// ListTenants lists every tenant to an admin bound to "*", else the
// caller's own tenants.
func (s *adminService) ListTenants(ctx context.Context, _ *connect.Request[v1.ListTenantsRequest]) (*connect.Response[v1.ListTenantsResponse], error) {
	caller, _ := principalFrom(ctx)
	tenants := slices.DeleteFunc(s.l.Tenants(), func(t string) bool { return !caller.BoundTo(t) })
	return connect.NewResponse(&v1.ListTenantsResponse{Tenants: tenants}), nil
}

func (s *ledgerService) ListAccessLog(ctx context.Context, req *connect.Request[v1.ListAccessLogRequest]) (*connect.Response[v1.ListAccessLogResponse], error) {
	const proc = veritracev1connect.LedgerServiceListAccessLogProcedure
	_, tenant := principalFrom(ctx)
	size, err := pageSize(req.Msg.GetPageSize())
	if err != nil {
		return nil, err
	}
	want, err := s.concerning(ctx, tenant, req.Msg)
	if err != nil {
		return nil, s.fail(ctx, proc, err, nil)
	}
	resp := &v1.ListAccessLogResponse{}
	from, scanned := req.Msg.GetFromIndex(), 0
	for {
		limit := size
		if want != nil {
			limit = min(1000, maxFilteredScan-scanned)
		}
		es, next, err := s.l.EntriesOfKind(ctx, tenant, format.KindAccess, from, limit)
		if err != nil {
			return nil, s.fail(ctx, proc, err, nil)
		}
		scanned += len(es)
		for k, e := range es {
			ae := &v1.AccessEntry{Index: e.Header.Index, LeafHash: e.LeafHash[:]}
			if !e.Erased {
				// One undecodable record is shown as such, never an error of
				// the page: the log holds whatever was appended
				// (docs/FORMAT.md).
				if m, err := bundle.ParsePayload(format.KindAccess, e.Payload); err != nil {
					ae.DecodeError = err.Error()
				} else {
					ae.Record = m.(*v1.AccessRecord)
				}
			}
			if want != nil && !slices.ContainsFunc(namedIn(ae.GetRecord().GetTarget()), func(n string) bool { return slices.Contains(want, n) }) {
				continue
			}
			resp.Entries = append(resp.Entries, ae)
			if len(resp.Entries) == size && want != nil {
				if k+1 < len(es) {
					next = es[k+1].Header.Index
				}
				resp.NextIndex = next
				return connect.NewResponse(resp), nil
			}
		}
		resp.NextIndex = next
		if want == nil || next == 0 || scanned >= maxFilteredScan {
			return connect.NewResponse(resp), nil
		}
		from = next
	}
}

// maxFilteredScan bounds the access records one filtered ListAccessLog page
// reads.
const maxFilteredScan = 10000

// accessLogFilterPerm: filtering the access log by a subject or session id
// needs read_entries besides read_access_log. The filter links an id a
// caller knows to the pseudonyms of the records about it; a caller who may
// not read the tenant's entries (an admin) must not learn by it which ids
// the tenant's users searched, held or exported (docs/ACCESS.md).
func accessLogFilterPerm(m any) policy.Permission {
	r := m.(*v1.ListAccessLogRequest)
	if r.GetSubjectId() != "" || r.GetSessionId() != "" {
		return policy.ReadEntries
	}
	return ""
}

// concerning returns the names by which access-log targets name the
// subject or session a ListAccessLog request filters by (none if it
// filters by neither), as a target's structured field ("subject=" or
// "session=" and "pseudonym:" and a pseudonym, namedIn): the id's
// pseudonym if it has a pseudonym key (looked up, never made), and its
// stand-in (ledger.StandInPseudonym), by which refused calls, and calls
// made while the id had no data, name it.
func (s *ledgerService) concerning(ctx context.Context, tenant string, m *v1.ListAccessLogRequest) ([]string, error) {
	subject, session := m.GetSubjectId(), m.GetSessionId()
	if subject != "" && session != "" {
		return nil, invalid("session_id", "filter by a subject or a session, not both")
	}
	field, value, name := audit.FieldSubject, subject, "subject"
	if session != "" {
		field, value, name = audit.FieldSession, session, "session"
	}
	if value == "" {
		return nil, nil
	}
	if err := checkString(name+"_id", value, true); err != nil {
		return nil, err
	}
	ref, err := s.l.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)})
	if err != nil {
		return nil, err
	}
	standIn, err := s.l.StandInPseudonym(ctx, tenant, ref)
	if err != nil {
		return nil, err
	}
	want := []string{name + "=pseudonym:" + standIn}
	k, err := s.l.PseudonymKey(ctx, tenant, ref, false)
	if errors.Is(err, ledger.ErrNotFound) {
		return want, nil
	}
	if err != nil {
		return nil, err
	}
	return append(want, name+"=pseudonym:"+k.Pseudonym(value)), nil
}

// namedIn returns the structured names a target holds ("subject=..." and
// "session=..." fields): those right after its verb ("query", "aggregate",
// "export", "hold", "access log from N"), up to the first field that is
// not a trace id (records of earlier builds give it first) or a name.
// Every client-controlled field (a trace id, a model, a request id, a
// case reference) comes after them, so that nothing a caller writes can
// forge a name or push one past the target's cut.
func namedIn(target string) []string {
	var rest string
	switch {
	case strings.HasPrefix(target, "access log from "):
		n, r, _ := strings.Cut(strings.TrimPrefix(target, "access log from "), " ")
		if n == "" || strings.Trim(n, "0123456789") != "" {
			return nil
		}
		rest = r
	default:
		verb, r, _ := strings.Cut(target, " ")
		switch verb {
		case "query", "aggregate", "export", "hold":
			rest = r
		default:
			return nil
		}
	}
	var out []string
	for _, f := range strings.Split(rest, " ") {
		switch {
		case strings.HasPrefix(f, "subject=pseudonym:"), strings.HasPrefix(f, "session=pseudonym:"):
			out = append(out, f)
		case strings.HasPrefix(f, "trace=") && strings.Trim(f[len("trace="):], "0123456789abcdef") == "":
		default:
			return out
		}
	}
	return out
}
