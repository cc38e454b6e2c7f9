package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/audit"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
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

// TestRefusedExportRequestRead: a server stream's request is read after
// authentication and before the decision, within the read limit. A refused
// export is recorded with its target over every protocol; one whose request
// is over the limit is still refused, without a target; an allowed one over
// the limit fails as before, unrecorded; and a request that does not
// authenticate is answered without its body being read at all.
func TestRefusedExportRequestRead(t *testing.T) {
	s := startServerWith(t, Options{MaxRequestBytes: 1024, RefusalPeriod: -1}) // every refusal recorded on its own
	ctx := context.Background()
	s.tenant(t, "acme")
	s.tenant(t, "globex")
	foreign := s.key(t, policy.Auditor, "acme")
	own := s.key(t, policy.Auditor, "globex")
	for _, protocol := range []string{"connect", "grpc", "json"} {
		_, err := readBundle(ctx, s.clients(protocol, "globex", foreign), &v1.TraceQuery{SubjectId: "ceo-" + protocol}, 0)
		wantCode(t, "ExportBundle(globex) with an acme key over "+protocol, err, connect.CodePermissionDenied, "")
	}
	huge := &v1.TraceQuery{SubjectId: strings.Repeat("x", 2000)}
	_, err := readBundle(ctx, s.clients("connect", "globex", foreign), huge, 0)
	wantCode(t, "ExportBundle(globex, over the read limit) with an acme key", err, connect.CodePermissionDenied, "")
	_, err = readBundle(ctx, s.clients("connect", "globex", own), huge, 0)
	wantCode(t, "ExportBundle(globex, over the read limit) with a globex key", err, connect.CodeResourceExhausted, "")
	var got []string
	for _, r := range s.accessRecords(t, "globex") {
		got = append(got, fmt.Sprintf("%s %q", r.GetOutcome(), r.GetTarget()))
	}
	// Refused calls name subjects by their stand-ins.
	var want []string
	for _, protocol := range []string{"connect", "grpc", "json"} {
		want = append(want, fmt.Sprintf("ACCESS_OUTCOME_DENIED %q", "export subject="+s.standIn(t, "globex", audit.FieldSubject, "ceo-"+protocol)))
	}
	want = append(want, `ACCESS_OUTCOME_DENIED ""`)
	if !slices.Equal(got, want) {
		t.Errorf("globex's access log = %v, want %v", got, want)
	}

	// No key, and a body that never comes: the answer does not wait for it
	// (over HTTP/2: an HTTP/1.1 server reads a little of an unread body
	// before it answers, whatever the handler does).
	body, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+veritracev1connect.AuditServiceExportBundleProcedure, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/connect+proto")
	req.Header.Set("Veritrace-Tenant", "globex")
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("an unauthenticated export whose body never comes was not answered: %v", err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), `"unauthenticated"`) {
		t.Errorf("unauthenticated export answered %s %q, want the error unauthenticated", resp.Status, b)
	}
}
