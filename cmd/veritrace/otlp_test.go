package main

import (
	"archive/zip"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/rpc"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// freeAddr returns a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// otlpSession is a server with OTLP listeners and keys for an app and an
// auditor.
type otlpSession struct {
	dir, url, grpcAddr, httpAddr string
	app, auditor                 string // tokens
	appFile, auditorFile         string
	stop                         func() error
}

func startOTLPSession(t *testing.T) *otlpSession {
	t.Helper()
	s := &otlpSession{dir: t.TempDir(), grpcAddr: freeAddr(t), httpAddr: freeAddr(t)}
	addr, stop := startServe(t, serveConfig{DataDir: s.dir, OTLPGRPCListen: s.grpcAddr, OTLPHTTPListen: s.httpAddr})
	s.url, s.stop = "http://"+addr, stop
	t.Cleanup(func() { stop() })
	for _, a := range []string{s.grpcAddr, s.httpAddr} {
		waitListening(t, a)
	}
	newKey := func(role string) (string, string) {
		var out strings.Builder
		if err := run(context.Background(), []string{"keys", "create", "--addr", s.url, "--api-key-file", filepath.Join(s.dir, AdminKeyFile), "--role", role, "--tenants", "default"}, &out); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		token := lines[len(lines)-1]
		path := filepath.Join(t.TempDir(), role+".key")
		if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return token, path
	}
	s.app, s.appFile = newKey("ingester")
	s.auditor, s.auditorFile = newKey("auditor")
	return s
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for range 250 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

// agentTrace records a GenAI agent's trace with the OTel Go SDK: an agent
// step whose first model call fails (rate limited) and falls back to
// another model, then calls a tool.
func agentTrace(t *testing.T) (oteltrace.TraceID, []sdktrace.ReadOnlySpan) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "go-support-agent"))))
	tr := tp.Tracer("veritrace-test")
	ctx, agent := tr.Start(context.Background(), "invoke_agent support", oteltrace.WithAttributes(
		attribute.String("gen_ai.operation.name", "invoke_agent"), attribute.String("gen_ai.agent.name", "support"),
		attribute.String("user.id", "customer-42"), attribute.String("session.id", "session-7")))
	_, failed := tr.Start(ctx, "chat gpt-4o", oteltrace.WithAttributes(
		attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.provider.name", "openai"),
		attribute.String("gen_ai.request.model", "gpt-4o"), attribute.String("user.id", "customer-42")))
	failed.RecordError(errors.New("429 Too Many Requests"))
	failed.SetStatus(codes.Error, "rate limited")
	failed.End()
	_, chat := tr.Start(ctx, "chat gpt-4o-mini", oteltrace.WithAttributes(
		attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.provider.name", "openai"),
		attribute.String("gen_ai.request.model", "gpt-4o-mini"), attribute.Int("gen_ai.usage.input_tokens", 812),
		attribute.Int("gen_ai.usage.output_tokens", 40), attribute.String("user.id", "customer-42"),
		attribute.String("gen_ai.input.messages", `[{"role":"user","parts":[{"type":"text","content":"Where is my refund?"}]}]`),
		attribute.String("gen_ai.output.messages", `[{"role":"assistant","parts":[{"type":"text","content":"It was sent today."}],"finish_reason":"stop"}]`)))
	chat.End()
	_, tool := tr.Start(ctx, "execute_tool lookup_order", oteltrace.WithAttributes(
		attribute.String("gen_ai.operation.name", "execute_tool"), attribute.String("gen_ai.tool.name", "lookup_order"),
		attribute.String("gen_ai.tool.call.arguments", `{"order":"A-17"}`), attribute.String("user.id", "customer-42")))
	tool.End()
	agent.End()
	return agent.SpanContext().TraceID(), rec.Ended()
}

// checkTrace reads a trace back as the auditor and checks its shape: the
// agent with its model calls (the failed one and its fallback as attempts
// 1 and 2 of one step) and, when wantTool, the tool call. Then it exports
// an evidence bundle of the trace and verifies it offline.
func (s *otlpSession) checkTrace(t *testing.T, traceID string, spans int, subject string) {
	t.Helper()
	id, _ := hex.DecodeString(traceID)
	c := veritracev1connect.NewAuditServiceClient(http.DefaultClient, s.url, connect.WithInterceptors(rpc.ClientHeaders("", s.auditor)))
	resp, err := c.GetTrace(context.Background(), connect.NewRequest(&v1.GetTraceRequest{TraceId: id}))
	if err != nil {
		t.Fatalf("GetTrace: %v", err)
	}
	if len(resp.Msg.Roots) != 1 || len(resp.Msg.Roots[0].Children) != spans-1 {
		t.Fatalf("GetTrace: want one agent with %d children: %v", spans-1, resp.Msg)
	}
	root := resp.Msg.Roots[0]
	if root.Kind != v1.SpanKind_SPAN_KIND_AGENT || root.GetSpan().GetSubjectId() != subject || root.GetOtlpJson() == "" {
		t.Errorf("agent span = %v", root)
	}
	ch := root.Children
	if ch[0].Attempt != 1 || ch[0].Attempts != 2 || ch[1].Attempt != 2 || ch[1].Attempts != 2 {
		t.Errorf("model calls: attempts %d/%d and %d/%d, want 1/2 and 2/2", ch[0].Attempt, ch[0].Attempts, ch[1].Attempt, ch[1].Attempts)
	}
	if ch[0].GetSpan().GetStatus().GetCode() != v1.StatusCode_STATUS_CODE_ERROR || ch[1].GetSpan().GetContent().GetOutputMessages() == nil {
		t.Errorf("model calls = %v, %v", ch[0].GetSpan(), ch[1].GetSpan())
	}
	bundle := filepath.Join(t.TempDir(), "evidence.zip")
	var out strings.Builder
	if err := run(context.Background(), []string{"export", "--addr", s.url, "--api-key-file", s.auditorFile, "--trace", traceID, "-o", bundle}, &out); err != nil {
		t.Fatalf("export: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"verify", bundle, "--key", filepath.Join(s.dir, "log.pub")}, &out); err != nil || !strings.Contains(out.String(), "VERIFIED") {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	// Every span's source, and the trace's resource entry, were checked.
	if want := fmt.Sprintf("ok    OTLP sources (%d)", spans+1); !strings.Contains(out.String(), want) {
		t.Errorf("verify does not say %q:\n%s", want, out.String())
	}
	// The report shows the fallback as attempts and each span as received.
	zr, err := zip.OpenReader(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	f, err := zr.Open("report.html")
	if err != nil {
		t.Fatal(err)
	}
	report, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"likely attempt 1 of 2", "likely attempt 2 of 2", "as received over OpenTelemetry (OTLP)", "&#34;gen_ai.request.model&#34; = &#34;gpt-4o&#34;", "resource:\n  &#34;service.name&#34; = &#34;"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report.html does not show %q", want)
		}
	}
}

// TestOTLPGoExporters sends an agent trace with the official OpenTelemetry
// Go exporters, over gRPC and OTLP/HTTP, to the dedicated OTLP listeners
// and to the main port, and reads each back.
func TestOTLPGoExporters(t *testing.T) {
	s := startOTLPSession(t)
	ctx := context.Background()
	headers := map[string]string{"Authorization": "Bearer " + s.app}
	main := strings.TrimPrefix(s.url, "http://")
	for _, tc := range []struct {
		name string
		exp  func() (sdktrace.SpanExporter, error)
	}{
		{"otlptracegrpc", func() (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(s.grpcAddr), otlptracegrpc.WithInsecure(),
				otlptracegrpc.WithHeaders(headers), otlptracegrpc.WithCompressor("gzip"))
		}},
		{"otlptracegrpc on the main port", func() (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(main), otlptracegrpc.WithInsecure(), otlptracegrpc.WithHeaders(headers))
		}},
		{"otlptracehttp", func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(s.httpAddr), otlptracehttp.WithInsecure(),
				otlptracehttp.WithHeaders(headers), otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}},
		{"otlptracehttp on the main port", func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(main), otlptracehttp.WithInsecure(), otlptracehttp.WithHeaders(headers))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp, err := tc.exp()
			if err != nil {
				t.Fatal(err)
			}
			defer exp.Shutdown(ctx)
			traceID, spans := agentTrace(t)
			if err := exp.ExportSpans(ctx, spans); err != nil {
				t.Fatalf("ExportSpans: %v", err)
			}
			// An exporter's retry of the same spans succeeds and adds nothing.
			before := s.size(t)
			if err := exp.ExportSpans(ctx, spans); err != nil {
				t.Fatalf("ExportSpans again: %v", err)
			}
			if after := s.size(t); after != before {
				t.Errorf("the retry grew the log from %d to %d entries", before, after)
			}
			s.checkTrace(t, traceID.String(), 4, "customer-42")
		})
	}
	// A wrong key is refused, and the exporter says so.
	bad, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(s.httpAddr), otlptracehttp.WithInsecure(),
		otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer vtk_0000000000000000_" + strings.Repeat("A", 43)}))
	if err != nil {
		t.Fatal(err)
	}
	_, spans := agentTrace(t)
	if err := bad.ExportSpans(ctx, spans); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("export with an unknown key = %v, want a 401", err)
	}
}

// size is the default tenant's log size, from a fresh checkpoint.
func (s *otlpSession) size(t *testing.T) uint64 {
	t.Helper()
	c := veritracev1connect.NewLedgerServiceClient(http.DefaultClient, s.url, connect.WithInterceptors(rpc.ClientHeaders("", s.auditor)))
	resp, err := c.GetCheckpoint(context.Background(), connect.NewRequest(&v1.GetCheckpointRequest{Fresh: true}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.Checkpoint.Size
}

// runNodeScript installs testdata/otlp-node (npm ci from its lockfile, into
// a copy, leaving the source tree clean), starts a session and runs one of
// the scripts with Node against its OTLP/HTTP listener and app key; it
// returns the session and what the script printed.
func runNodeScript(t *testing.T, script string) (*otlpSession, []byte) {
	t.Helper()
	node, nerr := exec.LookPath("node")
	npm, perr := exec.LookPath("npm")
	if nerr != nil || perr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the Node exporter tests: node %v, npm %v", nerr, perr)
		}
		t.Skip("node and npm are needed for the Node exporter tests")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "exporter.mjs", script} {
		b, err := os.ReadFile(filepath.Join("testdata", "otlp-node", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	s := startOTLPSession(t)
	send := exec.CommandContext(ctx, node, script)
	send.Dir = dir
	send.Env = append(os.Environ(), "VERITRACE_OTLP_TRACES_URL=http://"+s.httpAddr+"/v1/traces", "VERITRACE_API_KEY="+s.app)
	out, err := send.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("node %s: %v\n%s", script, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	return s, out
}

// TestOTLPNodeExporter sends an agent trace with OpenTelemetry JS and its
// OTLP/HTTP JSON exporter (@opentelemetry/exporter-trace-otlp-http from the
// npm registry, installed with `npm ci` from testdata/otlp-node's lockfile),
// run by Node, and reads it back.
func TestOTLPNodeExporter(t *testing.T) {
	s, out := runNodeScript(t, "send.mjs")
	traceID := strings.TrimSpace(string(out))
	if len(traceID) != 32 {
		t.Fatalf("node printed %q, want a trace id", out)
	}
	s.checkTrace(t, traceID, 3, "node-user-1")
}

// TestBenchModes runs the load generator briefly in every mode, with and
// without subjects, against a real server: each must finish with zero
// errors.
func TestBenchModes(t *testing.T) {
	s := startOTLPSession(t)
	for _, mode := range []string{"native", "otlp-grpc", "otlp-http", "otlp-http-json"} {
		for _, extra := range [][]string{nil, {"--no-subject"}} {
			var out strings.Builder
			err := run(context.Background(), append([]string{"bench", "--addr", s.url, "--api-key-file", s.appFile, "--mode", mode,
				"--clients", "2", "--batch", "20", "--requests", "2", "--span-bytes", "512"}, extra...), &out)
			if err != nil || !strings.Contains(out.String(), "requests=4 spans=80 errors=0") {
				t.Errorf("bench --mode %s %v: %v\n%s", mode, extra, err, out.String())
			}
		}
	}
}
