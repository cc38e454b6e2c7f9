package rpc

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
)

// TestOTLPHTTPRetryAfterIsTheLimiters: a peer that keeps failing
// authentication on OTLP/HTTP is answered 429 with the Retry-After the
// limiter of failed authentications computed (as gRPC and Connect callers
// get it in RetryInfo), not a fixed guess.
func TestOTLPHTTPRetryAfterIsTheLimiters(t *testing.T) {
	clk := newClock()
	s := startServerWith(t, Options{Now: clk.now, AuthFailureBurst: 2, AuthFailureRate: 0.1})
	c := s.clients("grpc", "", "vtk_0123456789abcdef_"+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").otlp
	body := mustMarshal(otlpExport(otlpSpan(1)))
	for i := range 2 {
		status, _, _ := c.post(context.Background(), otlp.TracesPath, otlp.ContentProtobuf, body)
		if status != 401 {
			t.Fatalf("failure %d = %d, want 401", i, status)
		}
	}
	status, _, err := c.post(context.Background(), otlp.TracesPath, otlp.ContentProtobuf, body)
	var he *httpError
	if !errors.As(err, &he) || status != 429 {
		t.Fatalf("failure over the burst = %d %v, want 429", status, err)
	}
	want := fmt.Sprint(int((10*time.Second + time.Second - 1) / time.Second))
	if got := he.header.Get("Retry-After"); got != want {
		t.Errorf("Retry-After = %q, want the limiter's %q", got, want)
	}
}
