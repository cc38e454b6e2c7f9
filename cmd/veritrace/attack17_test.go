package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// TestAttack17BadNodeFileRefusedBeforeChanges: a new data directory whose
// node file an operator provisioned with a bad name ("web 1"). serve
// refuses it, rightly, but only after it generated keys, created the
// ledger and the first admin key and wrote the admin token: start-up must
// refuse before it changes anything on disk (issue 8 item 8). The node
// name must be read (and checked) before keys and ledger are touched.
func TestAttack17BadNodeFileRefusedBeforeChanges(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, NodeFile), []byte("web 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := serveConfig{DataDir: dir, Listen: "127.0.0.1:0", MaxRequestBytes: 4 << 20, CheckpointInterval: 1e9, ShutdownTimeout: 30e9, LogLevel: "info"}
	err := serve(context.Background(), c, slog.New(slog.DiscardHandler))
	t.Logf("serve = %v", err)
	if err == nil {
		t.Fatal("serve started with a bad node file")
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != 1 {
		t.Errorf("refused start-up left %v in the data directory, want only %s", names, NodeFile)
	}
}
