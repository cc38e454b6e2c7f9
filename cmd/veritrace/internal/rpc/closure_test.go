package rpc

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// TestPiecesAfterErasure: once a subject is erased, later pieces of its
// traces are refused, never stored: an OTLP log event and a child span
// (named in partial_success; OTLP/HTTP shares the backend) and a native span
// (failed_precondition naming the span); a new trace of the subject is
// accepted.
func TestPiecesAfterErasure(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	sp := otlpSpan(901)
	if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp))); err != nil {
		t.Fatal(err)
	}
	native := testSpan(91)
	native.TraceId = sp.TraceId
	native.SpanId = []byte{9, 9, 9, 9, 9, 9, 9, 1}
	native.ParentSpanId = sp.SpanId
	native.SubjectId = ""
	if _, err := ing.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{native}})); err != nil {
		t.Fatal(err)
	}
	erase(t, s, "dsr-late", "customer-42")
	size, _ := s.l.Size(ctx, "default")

	late := otlpLogRecord(901)
	late.SpanId = []byte{0xb0, 0, 0, 0, 0, 0, 0x99, 1}
	child := otlpSpan(902)
	child.ParentSpanId = sp.SpanId
	child.Attributes = child.Attributes[:5] // no user.id, no session.id
	for _, tc := range []struct {
		name string
		call func() (int64, string, error)
	}{
		{"log event over gRPC", func() (int64, string, error) {
			r, err := ing.otlp.logs.CallUnary(ctx, connect.NewRequest(otlpLogs(late)))
			return r.Msg.GetPartialSuccess().GetRejectedLogRecords(), r.Msg.GetPartialSuccess().GetErrorMessage(), err
		}},
		{"child span over gRPC", func() (int64, string, error) {
			r, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(child)))
			return r.Msg.GetPartialSuccess().GetRejectedSpans(), r.Msg.GetPartialSuccess().GetErrorMessage(), err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, msg, err := tc.call()
			if err != nil || n != 1 || !strings.Contains(msg, `erased by erasure request "dsr-late"`) {
				t.Errorf("= rejected %d %q, %v; want 1 rejected, naming the erasure", n, msg, err)
			}
		})
	}
	t.Run("native span", func(t *testing.T) {
		again := testSpan(92)
		again.TraceId, again.SubjectId = sp.TraceId, ""
		_, err := ing.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{again}}))
		wantCode(t, "AppendSpans of a span of an erased trace", err, connect.CodeFailedPrecondition, "spans[0]")
	})
	if after, _ := s.l.Size(ctx, "default"); after != size {
		t.Errorf("the log grew from %d to %d entries with pieces of an erased trace", size, after)
	}
	fresh := otlpSpan(1001) // another trace of the same subject
	r, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport([]*trace.Span{fresh}...)))
	if err != nil || r.Msg.GetPartialSuccess().GetRejectedSpans() != 0 {
		t.Errorf("a new trace of the erased subject = %v, %v; want accepted", r.Msg.GetPartialSuccess(), err)
	}
}
