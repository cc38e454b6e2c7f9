package rpc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit"
	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// maxAttributeValue bounds an attribute value used as a group key.
const maxAttributeValue = 128

// spanFigures decodes span payloads into the figures aggregates add up;
// attr, when not empty, is the attribute whose value groups spans.
func spanFigures(attr string) audit.FiguresFunc {
	return func(payload []byte) (audit.SpanFigures, error) {
		var sp v1.Span
		if err := proto.Unmarshal(payload, &sp); err != nil {
			return audit.SpanFigures{}, err
		}
		f := audit.SpanFigures{
			NotASpan:     bundle.FormOf(sp.GetOtlp()) == bundle.OTLPResource,
			Name:         sp.GetName(),
			Model:        cmp.Or(sp.GetModel().GetRequestModel(), sp.GetModel().GetResponseModel()),
			Error:        sp.GetStatus().GetCode() == v1.StatusCode_STATUS_CODE_ERROR,
			InputTokens:  sp.GetUsage().GetInputTokens(),
			OutputTokens: sp.GetUsage().GetOutputTokens(),
			Cost:         sp.GetUsage().GetCost(),
			Currency:     sp.GetUsage().GetCurrency(),
		}
		if sp.GetStartTime() != nil {
			f.Start = sp.GetStartTime().AsTime()
		}
		if sp.GetEndTime() != nil {
			f.End = sp.GetEndTime().AsTime()
		}
		if v, ok := sp.GetAttributes()[attr]; ok && attr != "" {
			f.Attribute, f.HasAttribute = attributeKey(v)
		}
		return f, nil
	}
}

// attributeKey turns a scalar attribute value into a group key (at most
// maxAttributeValue bytes); lists and structs do not group.
func attributeKey(v *structpb.Value) (string, bool) {
	var s string
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		s = k.StringValue
	case *structpb.Value_NumberValue:
		s = strconv.FormatFloat(k.NumberValue, 'g', -1, 64)
	case *structpb.Value_BoolValue:
		s = strconv.FormatBool(k.BoolValue)
	default:
		return "", false
	}
	if len(s) > maxAttributeValue {
		s = s[:maxAttributeValue]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s, true
}

// niceBuckets are the bucket widths AggregateTraces picks from.
var niceBuckets = []time.Duration{
	time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour,
	6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour,
}

// pickBucket returns the smallest nice width that splits span into at
// most 48 buckets, or the smallest that fits the bucket limit.
func pickBucket(span time.Duration) time.Duration {
	for _, b := range niceBuckets {
		if span/b <= 48 {
			return b
		}
	}
	return max(niceBuckets[len(niceBuckets)-1], (span+audit.MaxAggregateBuckets-1)/audit.MaxAggregateBuckets)
}

func (s *auditService) AggregateTraces(ctx context.Context, req *connect.Request[v1.AggregateTracesRequest]) (*connect.Response[v1.AggregateTracesResponse], error) {
	const proc = veritracev1connect.AuditServiceAggregateTracesProcedure
	_, tenant := principalFrom(ctx)
	q, _, err := toQuery("query", req.Msg.GetQuery())
	if err != nil {
		return nil, err
	}
	switch {
	case q.From.IsZero():
		return nil, invalid("query.from", "required: aggregates cover a time range")
	case q.To.IsZero():
		return nil, invalid("query.to", "required: aggregates cover a time range")
	}
	attr := req.Msg.GetGroupByAttribute()
	if err := checkString("group_by_attribute", attr, false); err != nil {
		return nil, err
	}
	bucket := time.Duration(req.Msg.GetBucketSeconds()) * time.Second
	switch secs := req.Msg.GetBucketSeconds(); {
	case secs == 0:
		bucket = pickBucket(q.To.Sub(q.From))
	case secs < int64(audit.MinAggregateBucket/time.Second) || secs > int64(100*365*24*time.Hour/time.Second):
		return nil, invalid("bucket_seconds", "must be %d to %d, got %d", int64(audit.MinAggregateBucket/time.Second), int64(100*365*24*time.Hour/time.Second), secs)
	}
	agg, err := s.search.Aggregate(ctx, audit.AggregateRequest{Tenant: tenant, Query: q, Bucket: bucket, Figures: spanFigures(attr)})
	if errors.Is(err, audit.ErrBadAggregate) {
		return nil, invalid("bucket_seconds", "%s", strings.TrimPrefix(err.Error(), audit.ErrBadAggregate.Error()+": "))
	}
	if err != nil {
		return nil, s.fail(ctx, proc, err, nil)
	}
	resp := &v1.AggregateTracesResponse{
		Total: figuresProto(&agg.Total), BucketSeconds: int64(agg.Bucket / time.Second),
		ByModel: groupsProto(agg.ByModel, nil), ByKind: groupsProto(agg.ByKind, kindKey),
		ByPromptVersion: groupsProto(agg.ByVersion[0], nil), ByPolicyVersion: groupsProto(agg.ByVersion[1], nil),
		ByPipelineVersion: groupsProto(agg.ByVersion[2], nil), ByAttribute: groupsProto(agg.ByAttribute, nil),
		Complete: agg.Complete, Scanned: agg.Scanned,
	}
	for i := range agg.Buckets {
		resp.Buckets = append(resp.Buckets, &v1.TimeBucket{
			Start: timestamppb.New(agg.BucketStart.Add(time.Duration(i) * agg.Bucket)), Figures: figuresProto(&agg.Buckets[i]),
		})
	}
	if !agg.Complete {
		resp.CoveredUntil = timestamppb.New(agg.CoveredUntil)
	}
	return connect.NewResponse(resp), nil
}

// kindKey names a span kind group ("generation") by its number.
func kindKey(k string) string {
	n, err := strconv.Atoi(k)
	if err != nil {
		return k
	}
	return strings.ToLower(strings.TrimPrefix(v1.SpanKind(n).String(), "SPAN_KIND_"))
}

func groupsProto(gs []audit.Figures, key func(string) string) []*v1.Aggregate {
	out := make([]*v1.Aggregate, len(gs))
	for i := range gs {
		out[i] = figuresProto(&gs[i])
		if key != nil && gs[i].Key != audit.OtherGroup {
			out[i].Key = key(gs[i].Key)
		}
	}
	return out
}

func figuresProto(f *audit.Figures) *v1.Aggregate {
	return &v1.Aggregate{
		Key: f.Key, Spans: f.Spans, Errors: f.Errors, Erased: f.Erased, Undecodable: f.Undecodable, InputTokens: f.InputTokens,
		OutputTokens: f.OutputTokens, Cost: costProto(f.Cost), DurationMs: f.DurationMs, Traces: f.Traces,
	}
}

func costProto(m map[string]float64) []*v1.Cost {
	var out []*v1.Cost
	for _, c := range slices.Sorted(maps.Keys(m)) {
		out = append(out, &v1.Cost{Currency: c, Amount: m[c]})
	}
	return out
}

// maxSummaryPage bounds the traces of a QueryTraces page with summaries.
const maxSummaryPage = 100

// summaries fills in the stats of each trace of a QueryTraces answer.
func (s *auditService) summaries(ctx context.Context, tenant string, traces []*v1.TraceSummary) error {
	size, err := s.l.Size(ctx, tenant)
	if err != nil {
		return err
	}
	figures := spanFigures("")
	for _, t := range traces {
		var id [16]byte
		copy(id[:], t.GetTraceId())
		sum, err := s.search.Summarize(ctx, tenant, id, size, figures)
		if err != nil {
			return fmt.Errorf("summarise trace %x: %w", id, err)
		}
		st := &v1.TraceStats{
			RootName: sum.RootName, Spans: uint32(sum.Spans), Errors: uint32(sum.Errors), Erased: uint32(sum.Erased),
			Models: sum.Models, InputTokens: sum.InputTokens, OutputTokens: sum.OutputTokens, Cost: costProto(sum.Cost),
			Partial: sum.Partial, Undecodable: uint32(sum.Undecodable),
		}
		if !sum.Start.IsZero() {
			st.StartTime = timestamppb.New(sum.Start)
		}
		if !sum.End.IsZero() {
			st.EndTime = timestamppb.New(sum.End)
		}
		t.Stats = st
	}
	return nil
}
