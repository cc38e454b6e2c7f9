package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/veritrace/veritrace/ledger"
)

// listing describes every file and directory under dir: path, size, mode
// and modification time.
func listing(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		lines = append(lines, fmt.Sprintf("%s %d %s %d", rel, fi.Size(), fi.Mode(), fi.ModTime().UnixNano()))
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, fi.Mode().Perm())
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_EXCL, fi.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Defect 8 of issue 8: a data directory with a piece missing must be
// refused, naming what is missing, with nothing on disk created or changed.
func TestStartRefusesPartialDataDir(t *testing.T) {
	full := t.TempDir()
	_, stop := startServe(t, serveConfig{DataDir: full, LogLevel: "info"})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		remove, want string
	}{
		{"keys", "keys"},
		{"log.key", "log.key"},
		{"master.key", "master.key"},
		{"ledger", "ledger"},
	} {
		t.Run(tc.remove, func(t *testing.T) {
			dir := t.TempDir()
			copyTree(t, full, dir)
			if err := os.RemoveAll(filepath.Join(dir, tc.remove)); err != nil {
				t.Fatal(err)
			}
			before := listing(t, dir)
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // a start that is not refused stops at once
			err := serve(ctx, serveConfig{DataDir: dir, Listen: "127.0.0.1:0", MaxRequestBytes: 1 << 20, CheckpointInterval: 1e9, ShutdownTimeout: 5e9, LogLevel: "info"}, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("serve without %s = %v, want an error naming %q", tc.remove, err, tc.want)
			}
			if after := listing(t, dir); after != before {
				t.Errorf("serve without %s changed the data directory:\nbefore:\n%s\nafter:\n%s", tc.remove, before, after)
			}
		})
	}
}

// TestLockedDataDirSaysSo: a second serve on a data directory a running
// server holds, and verify-log meanwhile, say plainly that another
// process holds it, not Badger's lock text alone; the cause stays in the
// wrapped error (errors.Is ledger.ErrLocked).
func TestLockedDataDirSaysSo(t *testing.T) {
	dir := t.TempDir()
	_, stop := startServe(t, serveConfig{DataDir: dir, LogLevel: "info", OTLPMaxBytes: 1 << 20})
	defer stop()
	want := "another process (a running veritrace server?) holds " + filepath.Join(dir, ledger.LogDir) + "; stop it first"
	c := serveConfig{DataDir: dir, Listen: "127.0.0.1:0", MaxRequestBytes: 4 << 20, CheckpointInterval: 1e9, ShutdownTimeout: 30e9, LogLevel: "info", OTLPMaxBytes: 1 << 20}
	err := serve(context.Background(), c, slog.New(slog.DiscardHandler))
	t.Logf("second serve = %v", err)
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ledger.ErrLocked) {
		t.Errorf("second serve = %v, want it to start %q and wrap ledger.ErrLocked", err, want)
	}
	err = run(context.Background(), []string{"verify-log", "--data", dir}, io.Discard)
	t.Logf("verify-log = %v", err)
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ledger.ErrLocked) {
		t.Errorf("verify-log = %v, want it to start %q and wrap ledger.ErrLocked", err, want)
	}
}

// TestBadKeyFileChangesNothing: a first start with a
// --signing-key-file (or --master-key-file) that holds no key fails, as it
// must; but the check needs no disk change and could come first, and it
// comes after the fresh data directory, its .creating marker and the
// other generated key are written. The listener claimed before it is
// given back (the port can be listened on again).
func TestBadKeyFileChangesNothing(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(bad, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		set  func(c *serveConfig)
	}{
		{"signing key", func(c *serveConfig) { c.SigningKeyFile = bad }},
		{"master key", func(c *serveConfig) { c.MasterKeyFile = bad }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			free, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := free.Addr().String()
			free.Close()
			dir := filepath.Join(t.TempDir(), "data")
			c := serveConfig{DataDir: dir, Listen: addr, MaxRequestBytes: 4 << 20, CheckpointInterval: 1e9, ShutdownTimeout: 30e9, LogLevel: "info", OTLPMaxBytes: 1 << 20}
			tc.set(&c)
			err = serve(context.Background(), c, slog.New(slog.DiscardHandler))
			t.Logf("serve = %v", err)
			if err == nil {
				t.Fatal("serve started with a bad key file")
			}
			if ln, err := net.Listen("tcp", addr); err != nil {
				t.Errorf("after the failed start-up, %s is still held: %v", addr, err)
			} else {
				ln.Close()
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("refused start-up made the data directory:\n%s", listing(t, dir))
			}
		})
	}
}
