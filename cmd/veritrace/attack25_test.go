package main

// Attack on the ux1 merge (serve start-up with its listeners claimed
// first): what a start-up that fails after the claim leaves behind.

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestAttack25BadKeyFileChangesNothing: a first start with a
// --signing-key-file (or --master-key-file) that holds no key fails, as it
// must; but the check needs no disk change and could come first, and it
// comes after the fresh data directory, its .creating marker and the
// other generated key are written. The listener claimed before it is
// given back (the port can be listened on again).
func TestAttack25BadKeyFileChangesNothing(t *testing.T) {
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
