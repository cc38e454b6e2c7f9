package rpc

import (
	"context"
	"net/http"

	"connectrpc.com/connect"
)

// ClientHeaders is a client interceptor that sends the API key and, if not
// empty, the tenant on every call, unary and streaming.
func ClientHeaders(tenant, token string) connect.Interceptor { return clientHeaders{tenant, token} }

type clientHeaders struct{ tenant, token string }

func (h clientHeaders) set(hdr http.Header) {
	if h.tenant != "" {
		hdr.Set(TenantHeader, h.tenant)
	}
	if h.token != "" {
		hdr.Set("Authorization", "Bearer "+h.token)
	}
}

func (h clientHeaders) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		h.set(req.Header())
		return next(ctx, req)
	}
}

func (h clientHeaders) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		h.set(conn.RequestHeader())
		return conn
	}
}

func (h clientHeaders) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
