package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// benchKey creates a key of a role bound to tenants with the bootstrap
// admin key and writes its token to a file.
func benchKey(t *testing.T, url, dir, role string, tenants ...string) string {
	t.Helper()
	var out strings.Builder
	args := []string{"keys", "create", "--addr", url, "--api-key-file", filepath.Join(dir, AdminKeyFile), "--role", role, "--tenants", strings.Join(tenants, ",")}
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("keys create: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	path := filepath.Join(t.TempDir(), role+".key")
	if err := os.WriteFile(path, []byte(lines[len(lines)-1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var benchSpansRE = regexp.MustCompile(`tenant=(\S+) spans=(\d+)`)

// TestBenchMixedLoad runs the load generator with mixed batch sizes (1 to
// 1,000) across three tenants over Connect and gRPC against a real server,
// and checks that every span it counts is in its tenant's log.
func TestBenchMixedLoad(t *testing.T) {
	dir := t.TempDir()
	addr, stop := startServe(t, serveConfig{DataDir: dir})
	defer stop()
	url := "http://" + addr
	tenants := []string{"default", "acme", "globex"}
	for _, tn := range tenants[1:] {
		var out strings.Builder
		if err := run(context.Background(), []string{"tenants", "create", "--addr", url, "--api-key-file", filepath.Join(dir, AdminKeyFile), tn}, &out); err != nil {
			t.Fatal(err)
		}
	}
	app := benchKey(t, url, dir, "ingester", tenants...)
	auditor := benchKey(t, url, dir, "auditor", tenants...)
	want := map[string]int64{}
	for _, protocol := range []string{"connect", "grpc"} {
		var out strings.Builder
		args := []string{"bench", "--addr", url, "--api-key-file", app, "--clients", "6", "--requests", "4", "--duration", "1h",
			"--batch", "1:3,10:2,100:2,1000:1", "--tenants", strings.Join(tenants, ","), "--span-bytes", "512"}
		if protocol == "grpc" {
			args = append(args, "--grpc")
		}
		if err := run(context.Background(), args, &out); err != nil {
			t.Fatalf("bench over %s: %v\n%s", protocol, err, out.String())
		}
		t.Logf("bench over %s:\n%s", protocol, out.String())
		if !strings.Contains(out.String(), "protocol="+protocol+" ") || !strings.Contains(out.String(), "errors=0 ") || !strings.Contains(out.String(), "requests=24 ") {
			t.Errorf("bench over %s: output\n%s\nwant protocol=%s, requests=24 and errors=0", protocol, out.String(), protocol)
		}
		for _, size := range []string{"1", "10", "100", "1000"} {
			if !strings.Contains(out.String(), "batch="+size+" ") {
				t.Errorf("bench over %s: no request of %s spans", protocol, size)
			}
		}
		m := benchSpansRE.FindAllStringSubmatch(out.String(), -1)
		if len(m) != len(tenants) {
			t.Fatalf("bench over %s: per-tenant lines %q, want one per tenant", protocol, m)
		}
		for _, g := range m {
			n, _ := strconv.ParseInt(g[2], 10, 64)
			if n == 0 {
				t.Errorf("bench over %s: no span appended to tenant %s", protocol, g[1])
			}
			want[g[1]] += n
		}
	}
	for _, tn := range tenants {
		cf := &clientFlags{addr: url, keyFile: auditor, tenant: tn}
		if err := cf.loadKey(); err != nil {
			t.Fatal(err)
		}
		lc := cf.ledger()
		r, err := lc.GetCheckpoint(context.Background(), connect.NewRequest(&v1.GetCheckpointRequest{Fresh: true}))
		if err != nil {
			t.Fatal(err)
		}
		if got := int64(r.Msg.GetCheckpoint().GetSize()); got != want[tn] {
			t.Errorf("tenant %s holds %d entries, the load generator counted %d spans", tn, got, want[tn])
		}
	}
}

// TestBenchFailsOnErrors: a run with failed requests says so, counts them
// by Connect code, and fails.
func TestBenchFailsOnErrors(t *testing.T) {
	dir := t.TempDir()
	addr, stop := startServe(t, serveConfig{DataDir: dir})
	defer stop()
	url := "http://" + addr
	var out strings.Builder
	if err := run(context.Background(), []string{"tenants", "create", "--addr", url, "--api-key-file", filepath.Join(dir, AdminKeyFile), "acme"}, &out); err != nil {
		t.Fatal(err)
	}
	app := benchKey(t, url, dir, "ingester", "default") // not allowed in acme
	out.Reset()
	err := run(context.Background(), []string{"bench", "--addr", url, "--api-key-file", app, "--clients", "4", "--requests", "3",
		"--batch", "5", "--tenants", "default,acme,nosuchtenant"}, &out)
	if err == nil || !strings.Contains(err.Error(), "FAILED") {
		t.Fatalf("bench with a key not allowed in two of its tenants: %v, want an error saying FAILED\n%s", err, out.String())
	}
	// Clients 0 and 3 use default (6 requests), 1 acme, 2 nosuchtenant.
	for _, want := range []string{"requests=6 ", "errors=6 ", "FAILED: 6 of 12 requests failed: permission_denied=6"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bench output:\n%s\nwant %q", out.String(), want)
		}
	}
}

func TestParseBatchMix(t *testing.T) {
	for _, tt := range []struct {
		spec  string
		sizes []int
		ok    bool
	}{
		{"100", []int{100}, true},
		{"1:40,10:30,100:20,1000:10", []int{1, 10, 100, 1000}, true},
		{"1, 1000", []int{1, 1000}, true},
		{"0", nil, false},
		{"1001", nil, false},
		{"10:0", nil, false},
		{"10,10", nil, false},
		{"x", nil, false},
	} {
		m, err := parseBatchMix(tt.spec)
		if (err == nil) != tt.ok || (tt.ok && !slices.Equal(m.sizes, tt.sizes)) {
			t.Errorf("parseBatchMix(%q) = %v, %v; want sizes %v, ok %v", tt.spec, m.sizes, err, tt.sizes, tt.ok)
		}
	}
}

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
