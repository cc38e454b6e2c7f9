package rpc

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/retention"
)

type retentionService struct {
	*service
	r *retention.Service
}

// retentionError maps the retention package's errors to Connect codes.
func (s *retentionService) fail(ctx context.Context, proc string, err error) error {
	switch {
	case errors.Is(err, retention.ErrBelowFloor), errors.Is(err, retention.ErrLocked), errors.Is(err, retention.ErrHoldReleased):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, retention.ErrBadPolicy), errors.Is(err, retention.ErrNoReason), errors.Is(err, retention.ErrInvalid):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, retention.ErrNothingToErase):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, retention.ErrRequestIDReused), errors.Is(err, retention.ErrHoldRequestReused):
		return connect.NewError(connect.CodeAlreadyExists, err)
	case errors.Is(err, retention.ErrBusy):
		// Another process is carrying out this request, or another plan
		// has yet to erase entries it selected: this request erased
		// nothing (it may be stored, uncommitted: retention.BusyError),
		// and the same call, asked again later, is safe.
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, retention.ErrHoldsChanging), errors.Is(err, retention.ErrPolicyChanged):
		return connect.NewError(connect.CodeAborted, err)
	}
	return s.service.fail(ctx, proc, err, nil)
}

func caller(ctx context.Context) string {
	p, _ := principalFrom(ctx)
	if p == nil {
		return ""
	}
	return p.KeyID
}

var modes = map[v1.RetentionMode]retention.Mode{
	v1.RetentionMode_RETENTION_MODE_GOVERNANCE: retention.Governance,
	v1.RetentionMode_RETENTION_MODE_COMPLIANCE: retention.Compliance,
}

func ruleFromProto(field string, r *v1.RetentionRule) (retention.Rule, error) {
	mode, ok := modes[r.GetMode()]
	if !ok {
		return retention.Rule{}, invalid(field+".mode", "must be GOVERNANCE or COMPLIANCE")
	}
	out := retention.Rule{Class: r.GetClass(), Days: int(r.GetDays()), Mode: mode}
	if m := r.GetMatch(); m != nil { // a rule without match matches every span
		out.Match = retention.Match{Errors: m.Errors, Attributes: m.GetAttributes()}
		if len(m.GetKinds()) > 8 {
			return retention.Rule{}, invalid(field+".match.kinds", "at most the 8 span kinds, got %d", len(m.GetKinds()))
		}
		for i, k := range m.GetKinds() {
			if k < v1.SpanKind_SPAN_KIND_GENERATION || k > v1.SpanKind_SPAN_KIND_OTHER {
				return retention.Rule{}, invalid(fmt.Sprintf("%s.match.kinds[%d]", field, i), "unknown span kind %d", k)
			}
			out.Match.Kinds = append(out.Match.Kinds, uint8(k))
		}
	}
	return out, nil
}

func ruleProto(r retention.Rule) *v1.RetentionRule {
	m := &v1.RuleMatch{Errors: r.Match.Errors, Attributes: r.Match.Attributes}
	for _, k := range r.Match.Kinds {
		m.Kinds = append(m.Kinds, v1.SpanKind(k))
	}
	var mode v1.RetentionMode
	for pm, rm := range modes {
		if rm == r.Mode {
			mode = pm
		}
	}
	return &v1.RetentionRule{Class: r.Class, Days: int32(r.Days), Mode: mode, Match: m}
}

func policyProto(p *retention.Policy) *v1.RetentionPolicy {
	out := &v1.RetentionPolicy{HighRisk: p.HighRisk, FloorDays: int32(p.FloorDays), DefaultRule: ruleProto(p.Default),
		Revision: int32(p.Revision), UpdatedBy: p.UpdatedBy, Reason: p.Reason}
	if !p.UpdatedAt.IsZero() {
		out.UpdatedAt = timestamppb.New(p.UpdatedAt)
	}
	for _, r := range p.Rules {
		out.Rules = append(out.Rules, ruleProto(r))
	}
	return out
}

func (s *retentionService) GetRetention(ctx context.Context, _ *connect.Request[v1.GetRetentionRequest]) (*connect.Response[v1.GetRetentionResponse], error) {
	_, tenant := principalFrom(ctx)
	p, err := s.r.Policy(ctx, tenant)
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.RetentionServiceGetRetentionProcedure, err)
	}
	return connect.NewResponse(&v1.GetRetentionResponse{Policy: policyProto(p)}), nil
}

func (s *retentionService) SetRetention(ctx context.Context, req *connect.Request[v1.SetRetentionRequest]) (*connect.Response[v1.SetRetentionResponse], error) {
	const proc = veritracev1connect.RetentionServiceSetRetentionProcedure
	_, tenant := principalFrom(ctx)
	in := req.Msg.GetPolicy()
	if in == nil || in.GetDefaultRule() == nil {
		return nil, invalid("policy.default_rule", "required")
	}
	if err := checkString("reason", req.Msg.GetReason(), false); err != nil {
		return nil, err
	}
	if n := len(in.GetRules()); n > retention.MaxRules {
		return nil, invalid("policy.rules", "%d rules, at most %d", n, retention.MaxRules)
	}
	p := retention.Policy{HighRisk: in.GetHighRisk(), FloorDays: int(in.GetFloorDays())}
	var err error
	dr := in.GetDefaultRule()
	if dr.GetClass() == "" {
		dr.Class = retention.DefaultClass
	}
	if p.Default, err = ruleFromProto("policy.default_rule", dr); err != nil {
		return nil, err
	}
	for i, r := range in.GetRules() {
		rule, err := ruleFromProto(fmt.Sprintf("policy.rules[%d]", i), r)
		if err != nil {
			return nil, err
		}
		p.Rules = append(p.Rules, rule)
	}
	out, idx, err := s.r.SetPolicy(ctx, tenant, p, caller(ctx), req.Msg.GetReason())
	if err != nil {
		return nil, s.fail(ctx, proc, err)
	}
	return connect.NewResponse(&v1.SetRetentionResponse{Policy: policyProto(out), Index: idx}), nil
}

func holdProto(h *retention.Hold) *v1.Hold {
	out := &v1.Hold{Id: h.ID, RequestId: h.RequestID, CaseRef: h.CaseRef, Reason: h.Reason, PlacedBy: h.PlacedBy, PlacedAt: timestamppb.New(h.PlacedAt),
		ReleasedBy: h.ReleasedBy, ReleaseReason: h.ReleaseReason,
		Scope: &v1.HoldScope{Tenant: h.Scope.Tenant, SubjectId: h.Scope.Subject, SessionId: h.Scope.Session,
			Pseudonym: h.Scope.Pseudonym, Erased: h.Scope.Erased, PseudonymKind: h.Scope.Kind}}
	if h.Scope.TraceID != "" {
		fmt.Sscanf(h.Scope.TraceID, "%x", &out.Scope.TraceId)
	}
	if !h.Scope.From.IsZero() {
		out.Scope.From = timestamppb.New(h.Scope.From)
	}
	if !h.Scope.To.IsZero() {
		out.Scope.To = timestamppb.New(h.Scope.To)
	}
	if !h.ReleasedAt.IsZero() {
		out.ReleasedAt = timestamppb.New(h.ReleasedAt)
	}
	return out
}

func (s *retentionService) PlaceHold(ctx context.Context, req *connect.Request[v1.PlaceHoldRequest]) (*connect.Response[v1.PlaceHoldResponse], error) {
	_, tenant := principalFrom(ctx)
	sc := req.Msg.GetScope()
	scope := retention.HoldScope{Tenant: sc.GetTenant(), Subject: sc.GetSubjectId(), Session: sc.GetSessionId()}
	if len(sc.GetTraceId()) > 0 {
		if err := checkID("scope.trace_id", sc.GetTraceId(), 16, true); err != nil {
			return nil, err
		}
		scope.TraceID = fmt.Sprintf("%x", sc.GetTraceId())
	}
	for name, ts := range map[string]*timestamppb.Timestamp{"from": sc.GetFrom(), "to": sc.GetTo()} {
		if ts != nil && ts.CheckValid() != nil {
			return nil, invalid("scope."+name, "not a valid time")
		}
	}
	if sc.GetFrom() != nil {
		scope.From = sc.GetFrom().AsTime()
	}
	if sc.GetTo() != nil {
		scope.To = sc.GetTo().AsTime()
	}
	for name, v := range map[string]string{"case_ref": req.Msg.GetCaseRef(), "reason": req.Msg.GetReason(), "scope.subject_id": scope.Subject, "scope.session_id": scope.Session} {
		if err := checkString(name, v, false); err != nil {
			return nil, err
		}
	}
	h, idx, err := s.r.PlaceHoldRequest(ctx, tenant, retention.HoldRequest{ID: req.Msg.GetRequestId(), Scope: scope,
		CaseRef: req.Msg.GetCaseRef(), Reason: req.Msg.GetReason(), By: caller(ctx)})
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.RetentionServicePlaceHoldProcedure, err)
	}
	return connect.NewResponse(&v1.PlaceHoldResponse{Hold: holdProto(h), Index: idx}), nil
}

func (s *retentionService) ReleaseHold(ctx context.Context, req *connect.Request[v1.ReleaseHoldRequest]) (*connect.Response[v1.ReleaseHoldResponse], error) {
	_, tenant := principalFrom(ctx)
	if err := checkString("hold_id", req.Msg.GetHoldId(), true); err != nil {
		return nil, err
	}
	h, idx, err := s.r.ReleaseHold(ctx, tenant, req.Msg.GetHoldId(), req.Msg.GetReason(), caller(ctx))
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.RetentionServiceReleaseHoldProcedure, err)
	}
	return connect.NewResponse(&v1.ReleaseHoldResponse{Hold: holdProto(h), Index: idx}), nil
}

func (s *retentionService) ListHolds(ctx context.Context, req *connect.Request[v1.ListHoldsRequest]) (*connect.Response[v1.ListHoldsResponse], error) {
	_, tenant := principalFrom(ctx)
	hs, err := s.r.Holds(ctx, tenant, req.Msg.GetAll())
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.RetentionServiceListHoldsProcedure, err)
	}
	resp := &v1.ListHoldsResponse{}
	for _, h := range hs {
		resp.Holds = append(resp.Holds, holdProto(h))
	}
	return connect.NewResponse(resp), nil
}

func (s *retentionService) Erase(ctx context.Context, req *connect.Request[v1.EraseRequest]) (*connect.Response[v1.EraseResponse], error) {
	_, tenant := principalFrom(ctx)
	m := req.Msg
	r := retention.ErasureRequest{ID: m.GetRequestId(), Subject: m.GetSubjectId(), Session: m.GetSessionId(),
		LegalBasis: m.GetLegalBasis(), Ticket: m.GetTicket(), Reason: m.GetReason(), RequestedBy: caller(ctx), DryRun: m.GetDryRun()}
	for name, v := range map[string]string{"subject_id": r.Subject, "session_id": r.Session, "legal_basis": r.LegalBasis, "ticket": r.Ticket, "reason": r.Reason} {
		if err := checkString(name, v, false); err != nil {
			return nil, err
		}
	}
	if len(m.GetTraceIds()) > 1000 {
		return nil, invalid("trace_ids", "at most 1000")
	}
	for i, t := range m.GetTraceIds() {
		if err := checkID(fmt.Sprintf("trace_ids[%d]", i), t, 16, true); err != nil {
			return nil, err
		}
		var id [16]byte
		copy(id[:], t)
		r.TraceIDs = append(r.TraceIDs, id)
	}
	er, err := s.r.Erase(ctx, tenant, r)
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.RetentionServiceEraseProcedure, err)
	}
	// The answer carries the first page of each list (Erase returns them
	// whole, in memory) and the lists' lengths.
	page := *er
	page.Erase, page.Held = er.Erase[:min(len(er.Erase), erasePageEntries)], er.Held[:min(len(er.Held), erasePageEntries)]
	return connect.NewResponse(&v1.EraseResponse{Erasure: erasureProto(&page, len(er.Erase), len(er.Held))}), nil
}

func (s *retentionService) Sweep(ctx context.Context, _ *connect.Request[v1.SweepRequest]) (*connect.Response[v1.SweepResponse], error) {
	_, tenant := principalFrom(ctx)
	r, err := s.r.Sweep(ctx, tenant)
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.RetentionServiceSweepProcedure, err)
	}
	return connect.NewResponse(&v1.SweepResponse{Expired: uint64(r.Erased), Held: uint64(r.Held), TombstoneIndex: r.Tombstone}), nil
}

// spanClass is the retention class of a span under classify, its tenant's
// policy (retention.Service.Classifier).
func spanClass(classify func(retention.SpanFacts) string, sp *v1.Span) string {
	attrs := map[string]string{}
	for k, v := range sp.GetAttributes() {
		if sv, ok := v.GetKind().(*structpb.Value_StringValue); ok {
			attrs[k] = sv.StringValue
		}
	}
	return classify(retention.SpanFacts{Kind: uint8(sp.GetKind()), Error: sp.GetStatus().GetCode() == v1.StatusCode_STATUS_CODE_ERROR, Attributes: attrs})
}
