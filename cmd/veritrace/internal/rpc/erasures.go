package rpc

import (
	"context"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// ListErasures lists the tenant's erasure requests and sweeps, newest first.
func (s *retentionService) ListErasures(ctx context.Context, req *connect.Request[v1.ListErasuresRequest]) (*connect.Response[v1.ListErasuresResponse], error) {
	_, tenant := principalFrom(ctx)
	size, err := pageSize(req.Msg.GetPageSize())
	if err != nil {
		return nil, err
	}
	ers, err := s.r.Erasures(ctx, tenant, size)
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.RetentionServiceListErasuresProcedure, err)
	}
	resp := &v1.ListErasuresResponse{}
	for _, er := range ers {
		resp.Erasures = append(resp.Erasures, erasureProto(er))
	}
	return connect.NewResponse(resp), nil
}
