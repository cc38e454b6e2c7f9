package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWorkedSession runs the README's sessions through the CLI against a
// real server on loopback: the worked session, then (after a restart) the
// auditor's and the compliance officer's.
func TestWorkedSession(t *testing.T) {
	t.Setenv("VERITRACE_API_KEY_FILE", "")
	t.Setenv("VERITRACE_API_KEY", "")
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
	// newKey creates a key with the admin key, its token in a new file.
	newKey := func(role string) string {
		path := filepath.Join(t.TempDir(), role+".key")
		out := runCLI("keys create", "--api-key-file", filepath.Join(dir, "admin.key"), "--role", role, "--tenants", "default", "--label", "readme "+role, "--token-file", path)
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 || !strings.Contains(out, "token written to "+path) || strings.Contains(out, "vtk_") {
			t.Fatalf("keys create --token-file: %v, %v:\n%s", fi, err, out)
		}
		return path
	}
	if fi, err := os.Stat(filepath.Join(dir, AdminKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bootstrap admin key file: %v, %v; want mode 0600", fi, err)
	}
	app, auditor, compliance := newKey("ingester"), newKey("auditor"), newKey("compliance_officer")
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
	if strings.Count(keys, "\n") != 5 || !strings.Contains(keys, spareID+"\tcompliance_officer") || !strings.Contains(keys, "revoked ") || strings.Contains(keys, "vtk_") {
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

	// The auditor's session, after starting the server again.
	addr, stop = startServe(t, serveConfig{DataDir: dir})
	url = "http://" + addr
	if out = cli(auditor, "query", "--subject", "customer-42"); !strings.HasPrefix(out, "000102030405060708090a0b0c0d0e0ffirstindex1") {
		t.Errorf("query:\n%s", out)
	}
	cli(auditor, "trace", "000102030405060708090a0b0c0d0e0f")
	work := t.TempDir()
	pinned := filepath.Join(work, "pinned.txt")
	cp := runCLI("checkpoint", "--api-key-file", auditor, "--fresh")
	if err := os.WriteFile(pinned, []byte(cp), 0o644); err != nil {
		t.Fatal(err)
	}
	bundlePath := filepath.Join(work, "evidence.zip")
	out = runCLI("export", "--api-key-file", auditor, "--subject", "customer-42", "--known-size", strings.Split(cp, "\n")[1], "-o", bundlePath)
	if !strings.Contains(out, "veritrace verify "+bundlePath+" --key veritrace-data/log.pub") {
		t.Errorf("export's hint:\n%s", out)
	}
	var verified strings.Builder
	if err := run(context.Background(), []string{"verify", bundlePath, "--key", filepath.Join(dir, "log.pub"), "--pinned-checkpoint", pinned}, &verified); err != nil || !strings.Contains(verified.String(), "VERIFIED") {
		t.Errorf("verify = %v\n%s", err, verified.String())
	}

	// The compliance officer's session.
	cli(compliance, "retention show")
	out = runCLI("hold place", "--api-key-file", compliance, "--subject", "customer-42", "--case", "CASE-7", "--reason", "pending litigation")
	holdID := strings.Fields(out)[2]
	// A hold request asked again with its request id places one hold.
	place := []string{"--api-key-file", compliance, "--trace", "4bf92f3577b34da6a3ce929d0e0e4736", "--case", "CASE-7", "--reason", "pending litigation", "--request-id", "hold-case-7-trace"}
	if first, again := runCLI("hold place", place...), runCLI("hold place", place...); first != again || !strings.HasPrefix(first, "placed hold ") {
		t.Errorf("hold place asked again with its --request-id:\n%s\nthen\n%s\nwant the same hold", first, again)
	}
	if out = runCLI("hold list", "--api-key-file", compliance); strings.Count(out, "CASE-7") != 2 {
		t.Errorf("hold list after a hold request asked twice, and another hold:\n%s", out)
	}
	runCLI("hold release", "--api-key-file", compliance, strings.Fields(runCLI("hold place", place...))[2], "--reason", "case closed")
	erase := []string{"--subject", "customer-42", "--legal-basis", "GDPR Art. 17(1)(a)", "--reason", "subject request"}
	if out = cli(compliance, "erase", append(erase, "--dry-run")...); !strings.Contains(out, "woulderase0entries[];2held") {
		t.Errorf("erase --dry-run under a hold:\n%s", out)
	}
	runCLI("hold release", "--api-key-file", compliance, holdID, "--reason", "case closed")
	receipt := filepath.Join(work, "receipt.txt")
	if out = cli(compliance, "erase", append(erase, "--ticket", "DSR-118", "--request-id", "dsr-118", "--receipt", receipt)...); !strings.Contains(out, "erasuredsr-118done:erased2entries[12]") {
		t.Errorf("erase:\n%s", out)
	}
	if out = cli(auditor, "get", "2"); !strings.Contains(out, `"erased":true`) {
		t.Errorf("get 2 after erasure:\n%s", out)
	}
	// The released hold names the erased subject by its pseudonym alone,
	// and says it was a subject.
	if out := runCLI("hold list", "--api-key-file", compliance, "--all"); !strings.Contains(out, holdID+"\terased subject (pseudonym:") || strings.Contains(out, "customer-42") {
		t.Errorf("hold list --all after the erasure:\n%s", out)
	}
	// The receipt, checked offline (steps 1 and 2), against the server as
	// the compliance officer and as an auditor, and against a bundle of the
	// erased trace that proves the log grew from the receipt's checkpoint.
	logPub := filepath.Join(dir, "log.pub")
	verifyReceipt := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(context.Background(), append([]string{"verify-receipt", receipt, "--key", logPub}, args...), &out)
		return out.String(), err
	}
	if out, err := verifyReceipt(); err != nil || !strings.Contains(out, "ok    receipt signature (1)") || !strings.Contains(out, "ok    receipt checkpoint (1)") ||
		!strings.Contains(out, "--    tombstone parts: not checked") || !strings.Contains(out, "SIGNED:") {
		t.Errorf("verify-receipt offline = %v\n%s", err, out)
	}
	for _, key := range []string{compliance, auditor} {
		if out, err := verifyReceipt("--addr", url, "--api-key-file", key); err != nil || !strings.Contains(out, "ok    tombstone parts (1)") || !strings.Contains(out, "ok    counts (1)") || !strings.Contains(out, "VERIFIED: every check passed") {
			t.Errorf("verify-receipt --addr (%s) = %v\n%s", filepath.Base(key), err, out)
		}
	}
	rb, err := os.ReadFile(receipt)
	if err != nil {
		t.Fatal(err)
	}
	rcSize := strings.Split(strings.SplitN(string(rb), `"checkpoint":"`, 2)[1], `\n`)[1]
	erasedBundle := filepath.Join(work, "erased.zip")
	runCLI("export", "--api-key-file", auditor, "--trace", "000102030405060708090a0b0c0d0e0f", "--known-size", rcSize, "-o", erasedBundle)
	if out, err := verifyReceipt("--bundle", erasedBundle); err != nil || !strings.Contains(out, "ok    tombstone parts (1)") || !strings.Contains(out, "VERIFIED") {
		t.Errorf("verify-receipt --bundle = %v\n%s", err, out)
	}
	// A bundle of a later tree without the consistency proof from the
	// receipt's cannot vouch for the parts.
	unlinked := filepath.Join(work, "unlinked.zip")
	runCLI("export", "--api-key-file", auditor, "--trace", "000102030405060708090a0b0c0d0e0f", "-o", unlinked)
	if out, err := verifyReceipt("--bundle", unlinked); err == nil || !strings.Contains(out, "FAIL  tombstone parts") || !strings.Contains(out, "export with --known-size "+rcSize) ||
		err.Error() != "receipt NOT verified: tombstone parts failed; counts not checked (not every tombstone part holds)" {
		t.Errorf("verify-receipt --bundle without a consistency proof = %v\n%s", err, out)
	}
	// A receipt whose count was changed, signed by nobody: refused, and
	// nothing from the file reaches the terminal unescaped.
	tampered := filepath.Join(work, "tampered.txt")
	if err := os.WriteFile(tampered, []byte(strings.Replace(string(rb), `"erased_count":2`, `"erased_count":1`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	var tout strings.Builder
	if err := run(context.Background(), []string{"verify-receipt", tampered, "--key", logPub, "--addr", url, "--api-key-file", auditor}, &tout); err == nil ||
		!strings.Contains(tout.String(), "FAIL  receipt signature") || !strings.Contains(tout.String(), "the signature is for another receipt") ||
		!strings.Contains(err.Error(), "receipt signature failed; receipt checkpoint, tombstone parts, counts not checked (the receipt's signature does not hold)") {
		t.Errorf("verify-receipt of a changed receipt = %v\n%s", err, tout.String())
	}
	cli(compliance, "sweep")
	reused := append([]string{"erase", "--addr", url, "--api-key-file", compliance}, erase...)
	reused = append(reused, "--ticket", "DSR-119", "--request-id", "dsr-118")
	if err := run(context.Background(), reused, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "already_exists") {
		t.Errorf("erase with a reused request id = %v, want already_exists", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
}
