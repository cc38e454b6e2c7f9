package main

// Attack tests of the issue-8 write path: each fails on the code as it
// stands and shows one defect (see the report of branch attack8).

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/veritrace/veritrace/ledger"
)

// The very first start creates the data directory in steps: master.key,
// log.key, log.pub, ledger/ (Badger creates the directory first), keys/,
// admin.key, then the admin key's record. A kill between two steps leaves
// a directory in which nothing was ever stored, and every later start
// refuses it: ledger/ without keys/ is "missing keys (the data keys) ...
// Restore what is missing from a backup" (there is none: nothing was
// stored), and admin.key without its record fails Bootstrap's O_EXCL
// create. The operator must find out by hand that deleting files is safe.
func TestFirstStartInterruptedByAKillStartsAgain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash func(t *testing.T, dir string) // leaves dir as a kill at that step does
	}{
		{"log database directory created, key database not yet", func(t *testing.T, dir string) {
			if _, _, err := ledger.LoadOrCreateKeys(ledger.KeyPaths{Dir: dir}); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(dir, ledger.LogDir), 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"admin.key written, its record not yet", func(t *testing.T, dir string) {
			keys, _, err := ledger.LoadOrCreateKeys(ledger.KeyPaths{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			l, err := ledger.Open(context.Background(), ledger.Options{Dir: dir, Keys: keys, Logger: slog.New(slog.DiscardHandler), MinFreeBytes: -1})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, AdminKeyFile), []byte("vt_0000000000000000_never-stored\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.crash(t, dir)
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // a start that is not refused stops at once
			err := serve(ctx, serveConfig{DataDir: dir, Listen: "127.0.0.1:0", MaxRequestBytes: 1 << 20, CheckpointInterval: time.Second, ShutdownTimeout: 5 * time.Second, LogLevel: "info"}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Errorf("start after a kill during the first start = %v", err)
			}
		})
	}
}
