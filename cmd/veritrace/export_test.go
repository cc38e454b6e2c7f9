package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportNeverOverwrites: `export -o FILE` refuses an existing FILE
// before it asks for the export, and a FILE created while the bundle
// downloads is not replaced either (publish links, a rename would not
// refuse).
func TestExportNeverOverwrites(t *testing.T) {
	t.Setenv("VERITRACE_API_KEY_FILE", "")
	t.Setenv("VERITRACE_API_KEY", "vtk_0000000000000000_"+strings.Repeat("A", 43)) // well formed, never sent
	dir := t.TempDir()
	existing := filepath.Join(dir, "evidence.zip")
	if err := os.WriteFile(existing, []byte("someone's file"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	// No server listens at this address: the refusal comes first.
	err := run(context.Background(), []string{"export", "--addr", "http://127.0.0.1:1", "--trace", strings.Repeat("01", 16), "-o", existing}, &out)
	if err == nil || !strings.Contains(err.Error(), "evidence.zip exists; not overwriting it") {
		t.Errorf("export -o EXISTING = %v", err)
	}

	tmp := filepath.Join(dir, ".veritrace-export-1")
	if err := os.WriteFile(tmp, []byte("the bundle"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := publish(tmp, existing); err == nil || !strings.Contains(err.Error(), "exists; not overwriting it") {
		t.Errorf("publish over a file created meanwhile = %v", err)
	}
	if b, _ := os.ReadFile(existing); string(b) != "someone's file" {
		t.Errorf("the existing file now holds %q", b)
	}
	fresh := filepath.Join(dir, "fresh.zip")
	if err := publish(tmp, fresh); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(fresh); string(b) != "the bundle" {
		t.Errorf("the published file holds %q", b)
	}
}
