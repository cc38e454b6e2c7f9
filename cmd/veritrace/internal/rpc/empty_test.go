package rpc

import (
	"context"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/policy"
)

// TestEmptyRequests sends an empty request to every unary procedure with
// every role: whatever the answer, it must not be an internal error (a
// handler that dereferences an absent field would panic into one).
func TestEmptyRequests(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	for _, role := range policy.Roles {
		token := s.key(t, role, policy.AllTenants)
		for proc := range rules {
			if proc == veritracev1connect.AuditServiceExportBundleProcedure {
				continue // a stream: covered by TestAuditService
			}
			if proc == otlp.TracesPath || proc == otlp.LogsPath {
				continue // OTLP/HTTP, not Connect: covered by TestOTLPBadInput
			}
			c := connect.NewClient[emptypb.Empty, emptypb.Empty](http.DefaultClient, s.url+proc, connect.WithInterceptors(ClientHeaders("", token)))
			_, err := c.CallUnary(ctx, connect.NewRequest(&emptypb.Empty{}))
			if connect.CodeOf(err) == connect.CodeInternal || connect.CodeOf(err) == connect.CodeUnknown && err != nil {
				t.Errorf("%s %s with an empty request: %v", role, proc, err)
			}
		}
	}
}
