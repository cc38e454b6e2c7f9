package main

import (
	"context"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veritrace/veritrace/ledger"
)

// A kill at any step of the very first start leaves a directory the next
// start finishes: every key file whole and matching (log.pub is log.key's),
// both databases, an admin key whose record is stored, and no marker.
func TestFirstStartKilledAtAnyStepStartsAgain(t *testing.T) {
	ctx := context.Background()
	write := func(t *testing.T, path, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	keysOnly := func(t *testing.T, dir string) {
		t.Helper()
		if _, _, err := ledger.LoadOrCreateKeys(ledger.KeyPaths{Dir: dir}); err != nil {
			t.Fatal(err)
		}
	}
	opened := func(t *testing.T, dir string) {
		t.Helper()
		keysOnly(t, dir)
		keys, _, err := ledger.LoadOrCreateKeys(ledger.KeyPaths{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		l, err := ledger.Open(ctx, ledger.Options{Dir: dir, Keys: keys, Logger: slog.New(slog.DiscardHandler), MinFreeBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	marked := func(t *testing.T, dir string) { write(t, filepath.Join(dir, ledger.CreatingFile), "creating\n", 0o600) }
	for _, tc := range []struct {
		name  string
		crash func(t *testing.T, dir string)
	}{
		{"marker written", marked},
		{"master.key half written", func(t *testing.T, dir string) {
			marked(t, dir)
			write(t, filepath.Join(dir, ledger.MasterKeyFile+".tmp"), "AAAA", 0o600)
		}},
		{"key files written, log.pub not yet", func(t *testing.T, dir string) {
			keysOnly(t, dir)
			os.Remove(filepath.Join(dir, ledger.VerifierKeyFile))
		}},
		{"key files written, log.pub half written", func(t *testing.T, dir string) {
			keysOnly(t, dir)
			write(t, filepath.Join(dir, ledger.VerifierKeyFile), "veritrace-", 0o644)
		}},
		{"log database created, key database not yet", func(t *testing.T, dir string) {
			opened(t, dir)
			os.RemoveAll(filepath.Join(dir, ledger.KeyDir))
			marked(t, dir)
		}},
		{"key database created, log database not yet", func(t *testing.T, dir string) {
			opened(t, dir)
			os.RemoveAll(filepath.Join(dir, ledger.LogDir))
			marked(t, dir)
		}},
		{"both databases created, marker not yet removed", func(t *testing.T, dir string) {
			opened(t, dir)
			marked(t, dir)
		}},
		{"admin.key written, its record not yet", func(t *testing.T, dir string) {
			opened(t, dir)
			write(t, filepath.Join(dir, AdminKeyFile), "vtk_0000000000000000_never-stored\n", 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.crash(t, dir)
			cctx, cancel := context.WithCancel(ctx)
			cancel() // a start that is not refused stops at once
			if err := serve(cctx, serveConfig{DataDir: dir, Listen: "127.0.0.1:0", MaxRequestBytes: 1 << 20, CheckpointInterval: time.Second, ShutdownTimeout: 5 * time.Second, LogLevel: "info"}, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatalf("start after a kill during the first start = %v", err)
			}
			checkCreated(t, dir)
		})
	}
}

// checkCreated checks a finished data directory.
func checkCreated(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, ledger.CreatingFile)); !os.IsNotExist(err) {
		t.Errorf("the creating marker is still there (%v)", err)
	}
	keys, created, err := ledger.LoadOrCreateKeys(ledger.KeyPaths{Dir: dir})
	if err != nil || created {
		t.Fatalf("LoadOrCreateKeys(finished directory) = created %v, %v", created, err)
	}
	vkey, err := keys.VerifierKey()
	if err != nil {
		t.Fatal(err)
	}
	if pub, err := os.ReadFile(filepath.Join(dir, ledger.VerifierKeyFile)); err != nil || strings.TrimSpace(string(pub)) != vkey {
		t.Errorf("log.pub = %q, %v; want the signing key's verifier key %q", pub, err, vkey)
	}
	token, err := os.ReadFile(filepath.Join(dir, AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), ledger.Options{Dir: dir, Keys: keys, Logger: slog.New(slog.DiscardHandler), MinFreeBytes: -1})
	if err != nil {
		t.Fatalf("Open(finished directory) = %v", err)
	}
	defer l.Close()
	stored, err := l.ListAPIKeys(context.Background())
	if err != nil || len(stored) != 1 {
		t.Fatalf("ListAPIKeys = %d keys, %v; want the bootstrap admin key", len(stored), err)
	}
	if id := hex.EncodeToString(stored[0].ID[:]); !strings.Contains(string(token), "_"+id+"_") {
		t.Errorf("admin.key holds %q; the stored admin key is %s", token, id)
	}
}
