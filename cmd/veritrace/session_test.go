package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWorkedSession runs the README's worked session through the CLI
// against a real server on loopback.
func TestWorkedSession(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, serveConfig{DataDir: dir, Listen: addr, MaxRequestBytes: 4 << 20, CheckpointInterval: time.Second, ShutdownTimeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	}()
	url := "http://" + addr
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// cli runs "veritrace CMD... --addr URL ARGS...".
	cli := func(cmd string, args ...string) string {
		t.Helper()
		var out strings.Builder
		full := append(strings.Fields(cmd), "--addr", url)
		full = append(full, args...)
		if err := run(context.Background(), full, &out); err != nil {
			t.Fatalf("veritrace %s: %v\n%s", strings.Join(full, " "), err, out.String())
		}
		return out.String()
	}
	out := cli("version register", "--kind", "prompt", "--name", "support-answer", "--label", "v1", "../../examples/prompt.txt")
	if !strings.Contains(out, "82c4a4ae39ec98477daf672346d63584ca9531b8ac7ec82f7a96959a924e0a22") {
		t.Fatalf("version register: the README's prompt id changed:\n%s", out)
	}
	out = cli("append", "--wait-checkpoint", "../../examples/trace.json")
	if !strings.Contains(out, `"index": "2"`) || !strings.Contains(out, `"proofs"`) {
		t.Fatalf("append:\n%s", out)
	}
	if out = cli("append", "../../examples/trace.json"); strings.Count(out, `"duplicate": true`) != 2 {
		t.Errorf("append again: want two duplicate receipts:\n%s", out)
	}
	if out = cli("checkpoint", "--fresh"); !strings.Contains(out, "/default\n3\n") {
		t.Errorf("checkpoint:\n%s", out)
	}
	if out = cli("prove", "--key", filepath.Join(dir, "log.pub"), "2"); !strings.Contains(out, "OK: entry 2") {
		t.Errorf("prove:\n%s", out)
	}
	if out = cli("get", "2"); !strings.Contains(out, "Can I get a refund for order 1234?") {
		t.Errorf("get 2:\n%s", out)
	}
	if out = cli("version list"); !strings.Contains(out, "support-answer") {
		t.Errorf("version list:\n%s", out)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	var vout strings.Builder
	if err := run(context.Background(), []string{"verify-log", "--data", dir}, &vout); err != nil || !strings.Contains(vout.String(), "ok    tenant default: 3 entries") {
		t.Errorf("verify-log = %v\n%s", err, vout.String())
	}
}
