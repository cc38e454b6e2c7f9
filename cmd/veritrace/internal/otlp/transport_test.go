package otlp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// panicBackend admits every request and panics on export.
type panicBackend struct{}

func (panicBackend) Admit(r *http.Request, _ string) (context.Context, error) {
	return r.Context(), nil
}
func (panicBackend) Begin(context.Context, http.ResponseWriter, *http.Request) (func(), error) {
	return func() {}, nil
}
func (panicBackend) ExportTraces(context.Context, *Export) (*coltrace.ExportTraceServiceResponse, error) {
	panic("boom")
}
func (panicBackend) ExportLogs(context.Context, *Export) (*collogs.ExportLogsServiceResponse, error) {
	panic("boom")
}

// TestHTTPHandlerRecovers: a panic behind OTLP/HTTP costs its request an
// internal error with a Status body, never the server (the gRPC handlers
// have connect.WithRecover).
func TestHTTPHandlerRecovers(t *testing.T) {
	srv := httptest.NewServer(NewHTTPHandler(panicBackend{}, DefaultMaxBytes, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	for range 2 {
		resp, err := http.Post(srv.URL+TracesPath, ContentJSON, bytes.NewReader([]byte(`{}`)))
		if err != nil {
			t.Fatalf("POST after a panic: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		st := &spb.Status{}
		if resp.StatusCode != http.StatusInternalServerError || protojson.Unmarshal(b, st) != nil || st.GetMessage() != "internal error" {
			t.Errorf("answer to a panicking export = %d %q; want 500 with a Status body", resp.StatusCode, b)
		}
	}
}
