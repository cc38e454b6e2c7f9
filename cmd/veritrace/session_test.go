package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestWorkedSession runs the README's worked session through the CLI
// against a real server on loopback.
func TestWorkedSession(t *testing.T) {
	dir := t.TempDir()
	addr, stop := startServe(t, serveConfig{DataDir: dir})
	url := "http://" + addr
	// cli runs "veritrace CMD... --addr URL ARGS...".
	cli := func(cmd string, args ...string) string {
		t.Helper()
		var out strings.Builder
		full := append(strings.Fields(cmd), "--addr", url)
		full = append(full, args...)
		if err := run(context.Background(), full, &out); err != nil {
			t.Fatalf("veritrace %s: %v\n%s", strings.Join(full, " "), err, out.String())
		}
		// protojson varies its white space on purpose: drop it.
		return strings.Join(strings.Fields(out.String()), "")
	}
	out := cli("version register", "--kind", "prompt", "--name", "support-answer", "--label", "v1", "../../examples/prompt.txt")
	if !strings.Contains(out, "82c4a4ae39ec98477daf672346d63584ca9531b8ac7ec82f7a96959a924e0a22") {
		t.Fatalf("version register: the README's prompt id changed:\n%s", out)
	}
	out = cli("append", "--wait-checkpoint", "../../examples/trace.json")
	if !strings.Contains(out, `"index":"2"`) || !strings.Contains(out, `"proofs"`) {
		t.Fatalf("append:\n%s", out)
	}
	if out = cli("append", "../../examples/trace.json"); strings.Count(out, `"duplicate":true`) != 2 {
		t.Errorf("append again: want two duplicate receipts:\n%s", out)
	}
	if out = cli("checkpoint", "--fresh"); !strings.Contains(out, "/default3") {
		t.Errorf("checkpoint:\n%s", out)
	}
	if out = cli("prove", "--key", filepath.Join(dir, "log.pub"), "2"); !strings.Contains(out, "OK:entry2") {
		t.Errorf("prove:\n%s", out)
	}
	if out = cli("get", "2"); !strings.Contains(out, "CanIgetarefundfororder1234?") {
		t.Errorf("get 2:\n%s", out)
	}
	if out = cli("version list"); !strings.Contains(out, "support-answer") {
		t.Errorf("version list:\n%s", out)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	var vout strings.Builder
	if err := run(context.Background(), []string{"verify-log", "--data", dir}, &vout); err != nil || !strings.Contains(vout.String(), "ok    tenant default: 3 entries") {
		t.Errorf("verify-log = %v\n%s", err, vout.String())
	}
}
