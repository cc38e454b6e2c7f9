package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/grpchealth"

	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// TestHealthCommand: `veritrace health` asks a real server's health check,
// without an API key, about the server and every service.
func TestHealthCommand(t *testing.T) {
	t.Setenv("VERITRACE_API_KEY", "")
	t.Setenv("VERITRACE_API_KEY_FILE", "")
	addr, stop := startServe(t, serveConfig{DataDir: t.TempDir(), LogLevel: "info", OTLPMaxBytes: 1 << 20})
	defer stop()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"health", "--addr", "http://" + addr}, &out); err != nil {
		t.Fatalf("health = %v\n%s", err, out.String())
	}
	t.Logf("health:\n%s", out.String())
	for _, want := range []string{"SERVING      server\n", "SERVING      " + veritracev1connect.RetentionServiceName + "\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("health printed\n%s\nwant a line %q", out.String(), want)
		}
	}
}

// TestHealthCommandNotServing: a service answering NOT_SERVING is named,
// with what it means, and the command fails (a script's check).
func TestHealthCommandNotServing(t *testing.T) {
	checker := grpchealth.NewStaticChecker(healthServices[1:]...)
	checker.SetStatus(veritracev1connect.RetentionServiceName, grpchealth.StatusNotServing)
	mux := http.NewServeMux()
	mux.Handle(grpchealth.NewHandler(checker))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var out bytes.Buffer
	err := run(context.Background(), []string{"health", "--addr", srv.URL}, &out)
	t.Logf("health = %v:\n%s", err, out.String())
	if err == nil || !strings.Contains(err.Error(), veritracev1connect.RetentionServiceName) {
		t.Errorf("health = %v, want an error naming %s", err, veritracev1connect.RetentionServiceName)
	}
	if !strings.Contains(out.String(), "NOT_SERVING  "+veritracev1connect.RetentionServiceName+"\n") || !strings.Contains(out.String(), "veritrace erasures") {
		t.Errorf("health printed\n%s\nwant RetentionService NOT_SERVING and where to look", out.String())
	}
}

// TestHealthCommandNoAnswer: a server that accepts the connection and
// never answers fails the check after --timeout, saying so, rather than
// hanging the script or probe that runs it.
func TestHealthCommandNoAnswer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	var out bytes.Buffer
	err := run(context.Background(), []string{"health", "--addr", srv.URL, "--timeout", "300ms"}, &out)
	t.Logf("health = %v", err)
	if err == nil || !strings.Contains(err.Error(), "no answer from "+srv.URL+" within 300ms") {
		t.Errorf("health = %v, want no answer within 300ms", err)
	}
}
