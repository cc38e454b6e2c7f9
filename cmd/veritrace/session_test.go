package main

import (
	"context"
	"os"
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
	// run runs "veritrace CMD... --addr URL ARGS..." and returns its output.
	runCLI := func(cmd string, args ...string) string {
		t.Helper()
		var out strings.Builder
		full := append(strings.Fields(cmd), "--addr", url)
		full = append(full, args...)
		if err := run(context.Background(), full, &out); err != nil {
			t.Fatalf("veritrace %s: %v\n%s", strings.Join(full, " "), err, out.String())
		}
		return out.String()
	}
	// newKey creates a key with the admin key and stores its token in a file.
	newKey := func(role string) string {
		out := runCLI("keys create", "--api-key-file", filepath.Join(dir, "admin.key"), "--role", role, "--tenants", "default", "--label", "readme "+role)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		path := filepath.Join(t.TempDir(), role+".key")
		if err := os.WriteFile(path, []byte(lines[len(lines)-1]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	if fi, err := os.Stat(filepath.Join(dir, AdminKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bootstrap admin key file: %v, %v; want mode 0600", fi, err)
	}
	app, auditor := newKey("ingester"), newKey("auditor")
	admin := filepath.Join(dir, AdminKeyFile)
	if out := runCLI("tenants create", "--api-key-file", admin, "acme"); out != "created tenant acme\n" {
		t.Errorf("tenants create: %q", out)
	}
	if out := runCLI("tenants list", "--api-key-file", admin); out != "acme\ndefault\nsystem\n" {
		t.Errorf("tenants list: %q", out)
	}
	spare := newKey("compliance_officer")
	spareToken, _ := os.ReadFile(spare)
	spareID := strings.SplitN(strings.TrimPrefix(string(spareToken), "vtk_"), "_", 2)[0]
	if out := runCLI("keys revoke", "--api-key-file", admin, spareID); !strings.HasPrefix(out, "revoked key "+spareID) {
		t.Errorf("keys revoke: %q", out)
	}
	keys := runCLI("keys list", "--api-key-file", admin)
	if strings.Count(keys, "\n") != 4 || !strings.Contains(keys, spareID+"\tcompliance_officer") || !strings.Contains(keys, "revoked ") || strings.Contains(keys, "vtk_") {
		t.Errorf("keys list:\n%s", keys)
	}
	// cli runs a command as the app or the auditor, with protojson's varying
	// white space dropped.
	cli := func(key, cmd string, args ...string) string {
		t.Helper()
		out := runCLI(cmd, append([]string{"--api-key-file", key}, args...)...)
		return strings.Join(strings.Fields(out), "")
	}
	out := cli(app, "version register", "--kind", "prompt", "--name", "support-answer", "--label", "v1", "../../examples/prompt.txt")
	if !strings.Contains(out, "82c4a4ae39ec98477daf672346d63584ca9531b8ac7ec82f7a96959a924e0a22") {
		t.Fatalf("version register: the README's prompt id changed:\n%s", out)
	}
	out = cli(app, "append", "--wait-checkpoint", "../../examples/trace.json")
	if !strings.Contains(out, `"index":"2"`) || !strings.Contains(out, `"proofs"`) {
		t.Fatalf("append:\n%s", out)
	}
	if out = cli(app, "append", "../../examples/trace.json"); strings.Count(out, `"duplicate":true`) != 2 {
		t.Errorf("append again: want two duplicate receipts:\n%s", out)
	}
	if out = cli(app, "checkpoint", "--fresh"); !strings.Contains(out, "/default3") {
		t.Errorf("checkpoint:\n%s", out)
	}
	if out = cli(auditor, "prove", "--key", filepath.Join(dir, "log.pub"), "2"); !strings.Contains(out, "OK:entry2") {
		t.Errorf("prove:\n%s", out)
	}
	if out = cli(auditor, "get", "2"); !strings.Contains(out, "CanIgetarefundfororder1234?") {
		t.Errorf("get 2:\n%s", out)
	}
	if out = cli(app, "version list"); !strings.Contains(out, "support-answer") {
		t.Errorf("version list:\n%s", out)
	}
	if out = cli(auditor, "access-log"); !strings.Contains(out, "/veritrace.v1.LedgerService/GetEntrydefaultentry2") {
		t.Errorf("access-log: the auditor's read is not recorded:\n%s", out)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	// 5 entries: the version, two spans, and two access records (the
	// auditor's read of entry 2 and its query of the access log).
	var vout strings.Builder
	if err := run(context.Background(), []string{"verify-log", "--data", dir}, &vout); err != nil || !strings.Contains(vout.String(), "ok    tenant default: 5 entries") {
		t.Errorf("verify-log = %v\n%s", err, vout.String())
	}
}
