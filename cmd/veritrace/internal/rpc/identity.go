package rpc

import (
	"context"
	"encoding/hex"
	"slices"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

type identityService struct{ *service }

// WhoAmI describes the caller's key: its record (never the secret), what
// its role grants and the tenants it may act on.
func (s *identityService) WhoAmI(ctx context.Context, _ *connect.Request[v1.WhoAmIRequest]) (*connect.Response[v1.WhoAmIResponse], error) {
	p, _ := principalFrom(ctx)
	var id [8]byte
	if _, err := hex.Decode(id[:], []byte(p.KeyID)); err != nil {
		return nil, s.fail(ctx, veritracev1connect.IdentityServiceWhoAmIProcedure, err, nil)
	}
	k, err := s.l.GetAPIKey(ctx, id)
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.IdentityServiceWhoAmIProcedure, err, nil)
	}
	resp := &v1.WhoAmIResponse{Key: apiKeyProto(k), DefaultTenant: p.DefaultTenant(ledger.DefaultTenant)}
	for _, perm := range p.Role.Permissions() {
		resp.Permissions = append(resp.Permissions, string(perm))
	}
	if p.BoundTo(policy.AllTenants) {
		resp.Tenants = s.l.Tenants()
	} else {
		resp.Tenants = slices.Sorted(slices.Values(p.Tenants))
	}
	return connect.NewResponse(resp), nil
}
