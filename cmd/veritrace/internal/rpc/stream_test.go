package rpc

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// TestStreamingAuth checks that the interceptor guards server streams: an
// unlisted stream is refused, a listed one is authorised by role and
// recorded before its first message.
func TestStreamingAuth(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	const listed, unlisted = "/veritrace.v1.TestService/Listed", "/veritrace.v1.TestService/Unlisted"
	rules[listed] = rule{perm: policy.ReadEntries, record: true}
	t.Cleanup(func() { delete(rules, listed) })

	var sizeAtFirstMessage uint64
	stream := func(ctx context.Context, _ *connect.Request[v1.GetCheckpointRequest], out *connect.ServerStream[v1.GetCheckpointResponse]) error {
		_, tenant := principalFrom(ctx)
		sizeAtFirstMessage, _ = s.l.Size(ctx, tenant)
		for i := 0; i < 3; i++ {
			if err := out.Send(&v1.GetCheckpointResponse{VerifierKey: "msg"}); err != nil {
				return err
			}
		}
		return nil
	}
	auth := connect.WithInterceptors(newAuthInterceptor(s.l, Options{Logger: slog.New(slog.DiscardHandler), Now: time.Now}))
	mux := http.NewServeMux()
	mux.Handle(listed, connect.NewServerStreamHandler(listed, stream, auth))
	mux.Handle(unlisted, connect.NewServerStreamHandler(unlisted, stream, auth))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: withTransport(mux, false)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := "http://" + ln.Addr().String()

	call := func(procedure, token string) (int, error) {
		c := connect.NewClient[v1.GetCheckpointRequest, v1.GetCheckpointResponse](http.DefaultClient, url+procedure)
		req := connect.NewRequest(&v1.GetCheckpointRequest{})
		req.Header().Set("Authorization", "Bearer "+token)
		st, err := c.CallServerStream(ctx, req)
		if err != nil {
			return 0, err
		}
		defer st.Close()
		n := 0
		for st.Receive() {
			n++
		}
		return n, st.Err()
	}
	auditor := s.key(t, policy.Auditor, "default")
	before, _ := s.l.Size(ctx, "default")
	if n, err := call(listed, auditor); err != nil || n != 3 {
		t.Fatalf("auditor stream = %d messages, %v; want 3", n, err)
	}
	if sizeAtFirstMessage != before+1 {
		t.Errorf("log size when the stream started = %d, want %d: the access was not recorded first", sizeAtFirstMessage, before+1)
	}
	for name, tc := range map[string]struct {
		procedure, token string
		code             connect.Code
	}{
		"ingester":      {listed, s.key(t, policy.Ingester, "default"), connect.CodePermissionDenied},
		"no key":        {listed, "", connect.CodeUnauthenticated},
		"unlisted proc": {unlisted, auditor, connect.CodePermissionDenied},
	} {
		_, err := call(tc.procedure, tc.token)
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Code() != tc.code {
			t.Errorf("%s: stream error %v, want %v", name, err, tc.code)
		}
	}
}
