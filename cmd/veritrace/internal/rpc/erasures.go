package rpc

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/retention"
)

// An erasure's lists of entries grow with what it erased (a sweep can name
// hundreds of thousands): answers carry one page of them and their counts.
const (
	erasePageEntries   = 1000  // Erase's answer: the first of each list
	maxErasurePageSize = 10000 // GetErasure's page_size
)

// ListErasures lists the tenant's erasure requests and sweeps, newest
// first, a page at a time, without their lists of entries: it reads the
// page's summaries, not every plan.
func (s *retentionService) ListErasures(ctx context.Context, req *connect.Request[v1.ListErasuresRequest]) (*connect.Response[v1.ListErasuresResponse], error) {
	_, tenant := principalFrom(ctx)
	size, err := pageSize(req.Msg.GetPageSize())
	if err != nil {
		return nil, err
	}
	var cursor string
	if t := req.Msg.GetPageToken(); t != "" {
		b, err := base64.RawURLEncoding.DecodeString(t)
		if err != nil {
			return nil, invalid("page_token", "not a token returned by ListErasures")
		}
		cursor = string(b)
	}
	sums, next, err := s.r.Erasures(ctx, tenant, cursor, size)
	if errors.Is(err, retention.ErrInvalid) {
		return nil, invalid("page_token", "not a token returned by ListErasures")
	}
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.RetentionServiceListErasuresProcedure, err)
	}
	resp := &v1.ListErasuresResponse{}
	for _, e := range sums {
		out := &v1.Erasure{RequestId: e.ID, State: e.State, Selector: e.Selector, LegalBasis: e.LegalBasis, Ticket: e.Ticket,
			Reason: e.Reason, RequestedBy: e.RequestedBy, RequestedAt: timestamppb.New(e.RequestedAt), TombstoneIndex: e.Tombstone,
			Kind: cmp.Or(e.Kind, "erasure"), ErasedCount: uint64(e.Erased), HeldCount: uint64(e.Held)}
		if !e.CompletedAt.IsZero() {
			out.CompletedAt = timestamppb.New(e.CompletedAt)
		}
		resp.Erasures = append(resp.Erasures, out)
	}
	if next != "" {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(next))
	}
	return connect.NewResponse(resp), nil
}

func (s *retentionService) GetErasure(ctx context.Context, req *connect.Request[v1.GetErasureRequest]) (*connect.Response[v1.GetErasureResponse], error) {
	_, tenant := principalFrom(ctx)
	size := int(req.Msg.GetPageSize())
	switch {
	case size == 0:
		size = erasePageEntries
	case size < 0 || size > maxErasurePageSize:
		return nil, invalid("page_size", "must be 1 to %d, got %d", maxErasurePageSize, size)
	}
	from := req.Msg.GetFrom()
	er, erased, held, err := s.r.ErasurePage(ctx, tenant, req.Msg.GetRequestId(), from, size)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("request_id: no erasure request %q", req.Msg.GetRequestId()))
	}
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.RetentionServiceGetErasureProcedure, err)
	}
	resp := &v1.GetErasureResponse{Erasure: erasureProto(er, erased, held)}
	if end := from + uint64(size); end < uint64(max(erased, held)) {
		resp.NextFrom = end
	}
	return connect.NewResponse(resp), nil
}

// erasureProto is an erasure with the page of its lists of erased and held
// entries it holds, and the lists' lengths.
func erasureProto(e *retention.Erasure, erased, held int) *v1.Erasure {
	out := &v1.Erasure{RequestId: e.ID, State: e.State, Selector: e.Selector, LegalBasis: e.LegalBasis, Ticket: e.Ticket,
		Reason: e.Reason, RequestedBy: e.RequestedBy, RequestedAt: timestamppb.New(e.RequestedAt), Erased: e.Erase,
		TombstoneIndex: e.Tombstone, Receipt: string(e.Receipt), ReceiptSignature: e.ReceiptSig, Kind: cmp.Or(e.Kind, "erasure"),
		ErasedCount: uint64(erased), HeldCount: uint64(held)}
	if !e.CompletedAt.IsZero() {
		out.CompletedAt = timestamppb.New(e.CompletedAt)
	}
	for _, h := range e.Held {
		out.Held = append(out.Held, &v1.HeldEntry{Index: h.Index, HoldId: h.HoldID, CaseRef: h.CaseRef})
	}
	return out
}
