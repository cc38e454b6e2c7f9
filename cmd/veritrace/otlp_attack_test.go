package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/rpc"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// TestAttackOTLPNodeTruncatedEmoji: OpenTelemetry JS, with an attribute
// value length limit (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, spanLimits),
// truncates strings with String.substring, which can cut a surrogate pair;
// its OTLP/HTTP JSON exporter then sends the lone half as a "\ud83d"
// escape. Veritrace refuses the whole export with 400 (protojson rejects
// the escape), so every span of the batch is lost, the good ones with the
// one whose model output held an emoji at the limit. Exporters do not
// retry a 400. The batch should be accepted, the bad string replaced or
// the one span named in partial_success.
func TestAttackOTLPNodeTruncatedEmoji(t *testing.T) {
	s, out := runNodeScript(t, "send-truncated.mjs")
	var res struct {
		TraceID  string   `json:"traceId"`
		Failures []string `json:"failures"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	id, _ := hex.DecodeString(res.TraceID)
	c := veritracev1connect.NewAuditServiceClient(http.DefaultClient, s.url, connect.WithInterceptors(rpc.ClientHeaders("", s.auditor)))
	tr, terr := c.GetTrace(context.Background(), connect.NewRequest(&v1.GetTraceRequest{TraceId: id}))
	stored := 0
	if terr == nil {
		for _, r := range tr.Msg.Roots {
			stored += 1 + len(r.Children)
		}
	}
	if len(res.Failures) > 0 || stored != 2 {
		t.Errorf("OpenTelemetry JS export of 2 spans, one with a truncated emoji: export errors %q; GetTrace: %d spans stored (%v); want both spans stored",
			res.Failures, stored, terr)
	}
}

// TestAttackOTLPExampleOnAFreshServer: docs/OTLP.md ("Any OpenTelemetry
// SDK") tells a new user to run examples/otel-agent against the server with
// an ingester key. On a server where the prompt "support-answer" label "v1"
// was not registered (the README's worked session registers it; docs/OTLP.md
// does not say to), the export is a partial success naming the unverified
// reference, which the Go SDK returns as an export error: the example
// exits 1 with "export: ... partial success" and prints no trace id,
// though its trace was stored.
func TestAttackOTLPExampleOnAFreshServer(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is needed to build the example")
	}
	bin := filepath.Join(t.TempDir(), "otel-agent")
	build := exec.Command(goTool, "build", "-o", bin, "../../examples/otel-agent")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build examples/otel-agent: %v\n%s", err, out)
	}
	s := startOTLPSession(t)
	for _, protocol := range []string{"grpc", "http"} {
		addr := s.grpcAddr
		if protocol == "http" {
			addr = s.httpAddr
		}
		agent := exec.Command(bin, "-endpoint", addr, "-protocol", protocol)
		agent.Env = append(os.Environ(), "VERITRACE_API_KEY="+s.app)
		out, err := agent.CombinedOutput()
		if err != nil {
			t.Errorf("examples/otel-agent -endpoint %s -protocol %s (docs/OTLP.md: go run ./examples/otel-agent ...) on a fresh server: %v\n%s", addr, protocol, err, out)
		}
	}
	// Configured by the OpenTelemetry variables the README exports, with
	// no flag and no VERITRACE_API_KEY, over both protocols.
	for _, protocol := range []string{"grpc", "http/protobuf"} {
		agent := exec.Command(bin)
		agent.Env = append(os.Environ(), "VERITRACE_API_KEY=", "OTEL_EXPORTER_OTLP_ENDPOINT="+s.url,
			"OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer "+s.app, "OTEL_EXPORTER_OTLP_PROTOCOL="+protocol)
		out, err := agent.CombinedOutput()
		t.Logf("otel-agent with OTEL_EXPORTER_OTLP_* (%s): %v\n%s", protocol, err, out)
		if err != nil || !strings.Contains(string(out), "sent trace") {
			t.Errorf("examples/otel-agent configured by OTEL_EXPORTER_OTLP_* (%s) = %v\n%s", protocol, err, out)
		}
	}
	// Its traces are its own subject's, not the README's customer-42.
	for subject, want := range map[string]bool{"customer-77": true, "customer-42": false} {
		var out strings.Builder
		if err := run(context.Background(), []string{"query", "--addr", s.url, "--api-key-file", s.auditorFile, "--subject", subject}, &out); err != nil {
			t.Fatalf("query --subject %s: %v", subject, err)
		}
		if got := out.Len() > 0; got != want {
			t.Errorf("query --subject %s after the example ran: found traces %v, want %v\n%s", subject, got, want, out.String())
		}
	}
	// No server there: it says so and sends nothing.
	down := freeAddr(t)
	agent := exec.Command(bin, "-endpoint", down)
	agent.Env = append(os.Environ(), "VERITRACE_API_KEY="+s.app)
	out, err := agent.CombinedOutput()
	t.Logf("otel-agent with no server: %v\n%s", err, out)
	if err == nil || !strings.Contains(string(out), "no Veritrace server at "+down+" (connection refused)") {
		t.Errorf("examples/otel-agent -endpoint %s with nothing listening = %v\n%s, want it to say no server is there", down, err, out)
	}
}
