// Command otel-agent is a small support agent instrumented with the
// OpenTelemetry Go SDK, following the GenAI semantic conventions, that
// sends its traces to Veritrace over OTLP. The model and the tools are
// stand-ins (no network calls besides the export), so it runs anywhere:
//
//	VERITRACE_API_KEY=$(cat app.key) go run ./examples/otel-agent -endpoint 127.0.0.1:7070
//
// or, configured the OpenTelemetry way (the SDK reads these itself):
//
//	export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:7070
//	export OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer $(cat app.key)"
//	go run ./examples/otel-agent
//
// It answers one customer question for its own subject, customer-77 (not
// the README's customer-42, whose sample outputs stay as shown): it
// retrieves documents, calls a model that is rate limited and falls back
// to a second model, looks up an order with a tool, and prints the trace
// id to read back with `veritrace trace ID`. See docs/OTLP.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// exportTimeout bounds each export: a server that does not answer fails
// the run within it, not after the SDK's 10 s for every span.
const exportTimeout = 5 * time.Second

func main() {
	endpoint := flag.String("endpoint", "", "Veritrace host:port (the main port, or --otlp-grpc-listen / --otlp-http-listen; default: $OTEL_EXPORTER_OTLP_ENDPOINT, else 127.0.0.1:7070)")
	protocol := flag.String("protocol", "", "grpc or http (default: $OTEL_EXPORTER_OTLP_PROTOCOL, grpc or http/protobuf, else grpc)")
	insecure := flag.Bool("insecure", true, "plaintext with -endpoint (loopback only; use TLS elsewhere); an $OTEL_EXPORTER_OTLP_ENDPOINT says by its scheme")
	tenant := flag.String("tenant", "", "Veritrace tenant (default: the key's only tenant)")
	subject := flag.String("subject", "customer-77", "the end user the agent answers (its data subject)")
	flag.Parse()
	if err := run(*endpoint, *protocol, *insecure, *tenant, *subject); err != nil {
		fmt.Fprintln(os.Stderr, "otel-agent:", err)
		os.Exit(1)
	}
}

// config is where and how the agent exports: from its flags, else from
// the OpenTelemetry environment variables (which the SDK then reads
// itself), else the defaults.
type config struct {
	protocol string // grpc or http
	addr     string // host:port, checked before sending
	options  bool   // endpoint and headers given as options (else the SDK reads the environment)
	endpoint string
	headers  map[string]string
	insecure bool
}

func configure(endpoint, protocol string, insecure bool, tenant string) (config, error) {
	c := config{protocol: protocol, insecure: insecure, headers: map[string]string{}}
	if c.protocol == "" {
		switch p := os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p {
		case "", "grpc":
			c.protocol = "grpc"
		case "http/protobuf", "http/json":
			c.protocol = "http"
		default:
			return c, fmt.Errorf("$OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", p)
		}
	}
	if c.protocol != "grpc" && c.protocol != "http" {
		return c, fmt.Errorf("unknown -protocol %q: want grpc or http", c.protocol)
	}
	envEndpoint := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	if endpoint == "" && envEndpoint != "" {
		u, err := url.Parse(envEndpoint)
		if err != nil || u.Host == "" {
			return c, fmt.Errorf("$OTEL_EXPORTER_OTLP_ENDPOINT %q: want a URL such as http://127.0.0.1:7070", envEndpoint)
		}
		c.addr = u.Host
		if u.Port() == "" {
			c.addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
		}
	} else {
		c.options = true
		c.endpoint = endpoint
		if c.endpoint == "" {
			c.endpoint = "127.0.0.1:7070"
		}
		c.addr = c.endpoint
	}
	token := strings.TrimSpace(os.Getenv("VERITRACE_API_KEY"))
	switch {
	case token != "":
		c.headers["Authorization"] = "Bearer " + token
	case !strings.Contains(os.Getenv("OTEL_EXPORTER_OTLP_HEADERS"), "Authorization="):
		return c, errors.New("no API key: set VERITRACE_API_KEY to an ingester key, or $OTEL_EXPORTER_OTLP_HEADERS to \"Authorization=Bearer <key>\"")
	}
	if tenant != "" {
		c.headers["Veritrace-Tenant"] = tenant
	}
	return c, nil
}

func run(endpoint, protocol string, insecure bool, tenant, subject string) error {
	c, err := configure(endpoint, protocol, insecure, tenant)
	if err != nil {
		return err
	}
	// One look before any span is made: with no server there, every
	// export would wait out its timeout.
	conn, err := net.DialTimeout("tcp", c.addr, 3*time.Second)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("no Veritrace server at %s (connection refused): start one (veritrace serve) or give -endpoint", c.addr)
		}
		return fmt.Errorf("no Veritrace server reached at %s: %w", c.addr, err)
	}
	conn.Close()
	ctx := context.Background()
	var exp sdktrace.SpanExporter
	switch c.protocol {
	case "grpc":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithCompressor("gzip"), otlptracegrpc.WithTimeout(exportTimeout),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false})}
		if c.options {
			opts = append(opts, otlptracegrpc.WithEndpoint(c.endpoint))
			if c.insecure {
				opts = append(opts, otlptracegrpc.WithInsecure())
			}
		}
		if len(c.headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(c.headers))
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	case "http":
		opts := []otlptracehttp.Option{otlptracehttp.WithCompression(otlptracehttp.GzipCompression), otlptracehttp.WithTimeout(exportTimeout),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false})}
		if c.options {
			opts = append(opts, otlptracehttp.WithEndpoint(c.endpoint))
			if c.insecure {
				opts = append(opts, otlptracehttp.WithInsecure())
			}
		}
		if len(c.headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(c.headers))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	}
	if err != nil {
		return err
	}
	// A synchronous processor, so that an export error reaches us; a real
	// service uses sdktrace.WithBatcher.
	errs := &exportErrors{SpanExporter: exp}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(errs),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "support-agent"), attribute.String("service.version", "1.0.0"))))
	a := &agent{tracer: tp.Tracer("example.com/support-agent")}
	traceID := a.answer(ctx, subject, "session-7", "Where is my refund for order A-17?")
	if err := tp.Shutdown(ctx); err != nil && errs.err == nil {
		return err
	}
	if errs.err != nil {
		return fmt.Errorf("export to %s: %w", c.addr, errs.err)
	}
	for _, w := range errs.warnings {
		fmt.Fprintln(os.Stderr, "otel-agent: every span was stored, with a note from Veritrace:", w)
	}
	if len(errs.warnings) > 0 {
		fmt.Fprintln(os.Stderr, "otel-agent: to make the prompt reference verified, register it first (docs/OTLP.md, Versions):\n"+
			"  veritrace version register --kind prompt --name support-answer --label v1 prompt.txt")
	}
	fmt.Printf("sent trace %s (subject %s)\nread it back with: veritrace trace %s\n", traceID, subject, traceID)
	return nil
}

// exportErrors keeps the first export error, after which it sends
// nothing more. A partial success that
// rejected no span (Veritrace's note that a version reference names no
// registered version, recorded as unverified) is kept as a warning: the
// Go SDK returns every partial success as an error, but nothing was lost.
type exportErrors struct {
	sdktrace.SpanExporter
	err      error
	warnings []string
}

func (e *exportErrors) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.err != nil {
		return e.err // the first failure ends the run: the rest are not sent
	}
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	// The SDK's partial success error type is internal; its text ends with
	// the count of rejected spans.
	if msg := err.Error(); strings.Contains(msg, "OTLP partial success") && strings.HasSuffix(msg, "(0 spans rejected)") {
		e.warnings = append(e.warnings, msg)
		return nil
	}
	if e.err == nil {
		e.err = err
	}
	return err
}

type agent struct{ tracer trace.Tracer }

// answer handles one question as an agent step with its retrieval, model
// calls and tool call as child spans, and returns the trace id.
func (a *agent) answer(ctx context.Context, user, session, question string) trace.TraceID {
	ctx, span := a.tracer.Start(ctx, "invoke_agent support", trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "invoke_agent"),
		attribute.String("gen_ai.agent.name", "support"),
		attribute.String("user.id", user),
		attribute.String("session.id", session),
	))
	defer span.End()
	docs := a.retrieve(ctx, user, question)
	// The first model is rate limited; the agent falls back to another.
	if _, err := a.chat(ctx, user, "gpt-4o", question, docs); err != nil {
		a.chat(ctx, user, "gpt-4o-mini", question, docs)
	}
	a.lookupOrder(ctx, user, "A-17")
	return span.SpanContext().TraceID()
}

func (a *agent) retrieve(ctx context.Context, user, query string) string {
	_, span := a.tracer.Start(ctx, "retrieval kb", trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "retrieval"),
		attribute.String("gen_ai.data_source.id", "kb"),
		attribute.String("gen_ai.retrieval.query.text", query),
		attribute.String("gen_ai.retrieval.documents", `[{"id":"refunds#3","score":0.91,"source_uri":"s3://kb/policies/refunds.md","version":"3","content_digest":"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}]`),
		attribute.String("user.id", user),
	))
	defer span.End()
	return "Refunds are paid within 5 days of approval."
}

func (a *agent) chat(ctx context.Context, user, model, question, context string) (string, error) {
	_, span := a.tracer.Start(ctx, "chat "+model, trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.provider.name", "openai"),
		attribute.String("gen_ai.request.model", model),
		attribute.Float64("gen_ai.request.temperature", 0.2),
		attribute.String("gen_ai.system_instructions", `[{"type":"text","content":"You are a helpful support agent. Answer from the context."}]`),
		attribute.String("gen_ai.input.messages", fmt.Sprintf(`[{"role":"user","parts":[{"type":"text","content":%q}]}]`, question+"\n\ncontext: "+context)),
		attribute.String("veritrace.prompt.name", "support-answer"),
		attribute.String("veritrace.prompt.label", "v1"),
		attribute.String("user.id", user),
	))
	defer span.End()
	if model == "gpt-4o" {
		err := errors.New("429 Too Many Requests: rate limit reached")
		span.RecordError(err, trace.WithAttributes(attribute.String("exception.type", "RateLimitError")))
		span.SetAttributes(attribute.String("error.type", "RateLimitError"))
		span.SetStatus(codes.Error, err.Error())
		return "", err
	}
	time.Sleep(20 * time.Millisecond) // the stand-in model thinks
	answer := "Your refund for order A-17 was approved; it is paid within 5 days."
	span.SetAttributes(
		attribute.String("gen_ai.response.model", model+"-2024-07-18"),
		attribute.StringSlice("gen_ai.response.finish_reasons", []string{"stop"}),
		attribute.Int("gen_ai.usage.input_tokens", 96),
		attribute.Int("gen_ai.usage.output_tokens", 21),
		attribute.String("gen_ai.output.messages", fmt.Sprintf(`[{"role":"assistant","parts":[{"type":"text","content":%q}],"finish_reason":"stop"}]`, answer)),
	)
	return answer, nil
}

func (a *agent) lookupOrder(ctx context.Context, user, order string) {
	_, span := a.tracer.Start(ctx, "execute_tool lookup_order", trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "execute_tool"),
		attribute.String("gen_ai.tool.name", "lookup_order"),
		attribute.String("gen_ai.tool.type", "function"),
		attribute.String("gen_ai.tool.call.arguments", fmt.Sprintf(`{"order":%q}`, order)),
		attribute.String("gen_ai.tool.call.result", `{"status":"refund approved"}`),
		attribute.String("user.id", user),
	))
	span.End()
}
