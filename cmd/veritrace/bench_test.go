package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchExportMode runs the load generator against a real server: ingest,
// then export of what was ingested, with no error.
func TestBenchExportMode(t *testing.T) {
	dir := t.TempDir()
	addr, stop := startServe(t, serveConfig{DataDir: dir})
	defer stop()
	url := "http://" + addr
	run1 := func(args ...string) string {
		t.Helper()
		var out strings.Builder
		if err := run(context.Background(), append(args, "--addr", url), &out); err != nil {
			t.Fatalf("veritrace %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	key := func(role string) string {
		out := run1("keys", "create", "--api-key-file", filepath.Join(dir, AdminKeyFile), "--role", role, "--tenants", "default")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		path := filepath.Join(t.TempDir(), role+".key")
		if err := os.WriteFile(path, []byte(lines[len(lines)-1]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	app, auditor := key("ingester"), key("auditor")
	if out := run1("bench", "--api-key-file", app, "--clients", "1", "--requests", "2", "--batch", "16"); !strings.Contains(out, "spans=32 errors=0") {
		t.Errorf("bench (ingest):\n%s", out)
	}
	out := run1("bench", "--mode", "export", "--api-key-file", auditor, "--clients", "2", "--requests", "2", "--from", "2000-01-01T00:00:00Z")
	if !strings.Contains(out, "mode=export") || !strings.Contains(out, "exports=4 spans=128 ") || !strings.Contains(out, " errors=0 ") {
		t.Errorf("bench --mode export:\n%s", out)
	}
}
