package main

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// uxSession is a real server on loopback with an app's, an auditor's and
// a compliance officer's key, as a new user following the README has.
type uxSession struct {
	url, dir                 string
	app, auditor, compliance string
}

func startUXSession(t *testing.T) *uxSession {
	t.Helper()
	t.Setenv("VERITRACE_API_KEY_FILE", "")
	t.Setenv("VERITRACE_API_KEY", "")
	t.Setenv("VERITRACE_TENANT", "")
	dir := t.TempDir()
	addr, stop := startServe(t, serveConfig{DataDir: dir, LogLevel: "info", OTLPMaxBytes: 1 << 20})
	t.Cleanup(func() { stop() })
	s := &uxSession{url: "http://" + addr, dir: dir}
	s.app = benchKey(t, s.url, dir, "ingester", "default")
	s.auditor = benchKey(t, s.url, dir, "auditor", "default")
	s.compliance = benchKey(t, s.url, dir, "compliance_officer", "default")
	return s
}

// cli runs "veritrace CMD... --addr URL --api-key-file KEY ARGS..." and
// returns its output and error.
func (s *uxSession) cli(key, cmd string, args ...string) (string, error) {
	var out strings.Builder
	full := append(strings.Fields(cmd), "--addr", s.url, "--api-key-file", key)
	err := run(context.Background(), append(full, args...), &out)
	return out.String(), err
}

// must is cli that fails the test on an error.
func (s *uxSession) must(t *testing.T, key, cmd string, args ...string) string {
	t.Helper()
	out, err := s.cli(key, cmd, args...)
	if err != nil {
		t.Fatalf("veritrace %s %s: %v\n%s", cmd, strings.Join(args, " "), err, out)
	}
	return out
}

// sample registers the README's prompt and appends examples/trace.json
// (trace 000102030405060708090a0b0c0d0e0f, subject customer-42).
func (s *uxSession) sample(t *testing.T) {
	t.Helper()
	s.must(t, s.app, "version register", "--kind", "prompt", "--name", "support-answer", "--label", "v1", "../../examples/prompt.txt")
	s.must(t, s.app, "append", "../../examples/trace.json")
}

// TestErasuresListed: `veritrace erasures` lists the tenant's erasure
// requests and sweeps (there was no command: `erasure list` looked up a
// request named "list", and that lookup was recorded); `erasure` refuses
// an id outside the documented syntax before it sends anything.
func TestErasuresListed(t *testing.T) {
	s := startUXSession(t)
	s.sample(t)
	s.must(t, s.compliance, "erase", "--subject", "customer-42", "--legal-basis", "GDPR Art. 17(1)(a)", "--reason", "r", "--request-id", "dsr-1")
	out := s.must(t, s.compliance, "erasures")
	t.Logf("erasures:\n%s", out)
	if lines := strings.Split(out, "\n"); len(lines) != 2 || !strings.Contains(lines[0], "\terasure\tdsr-1\tdone\tsubject\terased 2\theld 0\ttombstone ") {
		t.Errorf("erasures printed\n%s\nwant dsr-1 with what it erased", out)
	}
	out, err := s.cli(s.compliance, "erasure", "not an id!")
	t.Logf("erasure \"not an id!\" = %v", err)
	if err == nil || !strings.Contains(err.Error(), "1 to 64 of A-Z a-z 0-9 - _ .") {
		t.Errorf("erasure with an invalid id = %v\n%s, want a local refusal naming the syntax", err, out)
	}
	out, err = s.cli(s.compliance, "erasure", "list")
	t.Logf("erasure list = %v", err)
	if err == nil || !strings.Contains(err.Error(), "veritrace erasures") {
		t.Errorf("erasure list = %v\n%s, want not_found pointing at veritrace erasures", err, out)
	}
}

// TestEraseAllHeldSaysWhatToDo: an erasure whose entries are all held is
// done and uses up its request id; the CLI says which holds keep them and
// that a new request id is needed once they are released.
func TestEraseAllHeldSaysWhatToDo(t *testing.T) {
	s := startUXSession(t)
	s.sample(t)
	out := s.must(t, s.compliance, "hold place", "--subject", "customer-42", "--case", "CASE-7", "--reason", "litigation")
	hold := strings.Fields(out)[2]
	out = s.must(t, s.compliance, "erase", "--subject", "customer-42", "--legal-basis", "GDPR Art. 17(1)(a)", "--reason", "r", "--request-id", "dsr-2")
	t.Logf("erase:\n%s", out)
	for _, want := range []string{"2 entries held by hold " + hold, "erase again with a new --request-id once", "dsr-2"} {
		if !strings.Contains(out, want) {
			t.Errorf("erase of held entries printed\n%s\nwant %q", out, want)
		}
	}
}

// TestTraceIDForms: a trace id is taken as 32 hex digits or as the base64
// that receipts and JSON print (protojson), by trace, query and export;
// trace prints a tree of the spans.
func TestTraceIDForms(t *testing.T) {
	s := startUXSession(t)
	s.sample(t)
	const hexID, b64ID = "000102030405060708090a0b0c0d0e0f", "AAECAwQFBgcICQoLDA0ODw=="
	for _, id := range []string{hexID, b64ID} {
		out, err := s.cli(s.auditor, "trace", id)
		if err != nil {
			t.Errorf("trace %s: %v", id, err)
			continue
		}
		t.Logf("trace %s:\n%s", id, out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 3 || !strings.Contains(out, "invoke_agent support") || !strings.Contains(out, "\n  ") ||
			!strings.Contains(out, "chat gpt-4o") || !strings.Contains(out, "generation") || !strings.Contains(out, "1s") {
			t.Errorf("trace %s printed\n%s\nwant a tree: the agent span, the generation indented under it, kinds and durations", id, out)
		}
		if out, err := s.cli(s.auditor, "query", "--trace", id); err != nil || !strings.Contains(out, hexID) {
			t.Errorf("query --trace %s = %v\n%s", id, err, out)
		}
		if out, err := s.cli(s.auditor, "export", "--trace", id, "-o", filepath.Join(t.TempDir(), "b.zip")); err != nil {
			t.Errorf("export --trace %s = %v\n%s", id, err, out)
		}
	}
	if out, err := s.cli(s.auditor, "trace", "--json", b64ID); err != nil || !strings.Contains(out, `"roots"`) {
		t.Errorf("trace --json = %v\n%s", err, out)
	}
	if out, err := s.cli(s.auditor, "trace", "xyz"); err == nil || !strings.Contains(err.Error(), "32 hex digits") || !strings.Contains(err.Error(), "base64") {
		t.Errorf("trace xyz = %v\n%s, want both forms named", err, out)
	}
}

// TestQueryDates: --from and --to take a date (UTC midnight) or RFC 3339,
// and a bad one names the flag and the forms.
func TestQueryDates(t *testing.T) {
	s := startUXSession(t)
	s.sample(t)
	if out, err := s.cli(s.auditor, "query", "--from", "2000-01-01", "--to", "2100-01-01T00:00:00Z"); err != nil || !strings.Contains(out, "000102030405060708090a0b0c0d0e0f") {
		t.Errorf("query --from 2000-01-01 --to 2100-01-01T00:00:00Z = %v\n%s", err, out)
	}
	if _, err := s.cli(s.auditor, "query", "--from", "21/11/2026"); err == nil || !strings.Contains(err.Error(), "--from") || !strings.Contains(err.Error(), "2026-11-21") || strings.Contains(err.Error(), "parsing time") {
		t.Errorf("query --from 21/11/2026 = %v, want the flag and the accepted forms named", err)
	}
}

// TestFirstVersionShowsIndexZero: the first registered version prints
// "index": "0" like every later one (protojson dropped the zero).
func TestFirstVersionShowsIndexZero(t *testing.T) {
	s := startUXSession(t)
	out := s.must(t, s.app, "version register", "--kind", "prompt", "--name", "support-answer", "--label", "v1", "../../examples/prompt.txt")
	if !strings.Contains(strings.Join(strings.Fields(out), ""), `"index":"0"`) {
		t.Errorf("version register printed\n%s\nwant \"index\": \"0\"", out)
	}
}

// TestClientMessages: a key file holding something else is named, its
// contents never shown; no server at the address is said plainly.
func TestClientMessages(t *testing.T) {
	t.Setenv("VERITRACE_API_KEY_FILE", "")
	t.Setenv("VERITRACE_API_KEY", "")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("hunter2-not-a-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"checkpoint", "--api-key-file", garbage},
		{"prove", "1", "--key", garbage, "--api-key-file", garbage},
	} {
		err := run(context.Background(), args, io.Discard)
		t.Logf("veritrace %s = %v", strings.Join(args, " "), err)
		if err == nil || !strings.Contains(err.Error(), garbage) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("veritrace %s = %v, want the file named and its contents not shown", strings.Join(args, " "), err)
		}
	}
	token := "vtk_0123456789abcdef_" + strings.Repeat("A", 43)
	if err := os.WriteFile(garbage, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, args := range [][]string{
		{"checkpoint", "--api-key-file", garbage, "--addr", "http://" + addr},
		{"export", "--api-key-file", garbage, "--addr", "http://" + addr, "--subject", "s", "-o", filepath.Join(dir, "b.zip")},
		{"health", "--addr", "http://" + addr},
	} {
		err := run(context.Background(), args, io.Discard)
		t.Logf("veritrace %s = %v", strings.Join(args, " "), err)
		if want := "no Veritrace server at " + addr + " (connection refused)"; err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("veritrace %s = %v, want it to start %q", strings.Join(args, " "), err, want)
		}
	}
}

// TestHelpMatchesREADME: every environment variable the README says serve
// and the client commands read is named in their -h, and no usage line
// ends in a space.
func TestHelpMatchesREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	serveVars := regexp.MustCompile(`VERITRACE_[A-Z_]+`).FindAllString(text[strings.Index(text, "Flags also read"):strings.Index(text, "Logs are structured")], -1)
	clientPara := text[strings.Index(text, "Client commands (`append`"):]
	clientPara = clientPara[:strings.Index(clientPara, "`health` takes")]
	clientVars := regexp.MustCompile(`VERITRACE_[A-Z_]+`).FindAllString(clientPara, -1)
	for _, tc := range []struct {
		args []string
		vars []string
	}{
		{[]string{"serve", "-h"}, serveVars},
		{[]string{"checkpoint", "-h"}, clientVars},
		{[]string{"erasures", "-h"}, clientVars},
	} {
		help := stderrOf(t, func() { run(context.Background(), tc.args, io.Discard) })
		for _, v := range tc.vars {
			if !strings.Contains(help, "$"+v) {
				t.Errorf("veritrace %s does not name $%s, which the README says it reads", strings.Join(tc.args, " "), v)
			}
		}
		for _, line := range strings.Split(help, "\n") {
			if strings.HasSuffix(line, " ") {
				t.Errorf("veritrace %s: line %q ends in a space", strings.Join(tc.args, " "), line)
			}
		}
	}
	for _, v := range []string{"VERITRACE_ADDR", "VERITRACE_TENANT", "VERITRACE_API_KEY_FILE", "VERITRACE_API_KEY"} {
		if !slices.Contains(clientVars, v) {
			t.Errorf("the README's paragraph on client commands does not name $%s, which they read", v)
		}
	}
}

// TestVerifyMessages: `veritrace verify` of a bundle whose zip directory
// was altered names the zip problem (it printed "entries/...json: unexpected
// EOF"); of a bundle whose manifest was altered, it says which check
// failed and which were not run (it listed every check as failed).
func TestVerifyMessages(t *testing.T) {
	s := startUXSession(t)
	s.sample(t)
	work := t.TempDir()
	good := filepath.Join(work, "good.zip")
	s.must(t, s.auditor, "export", "--subject", "customer-42", "-o", good)
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(name string, data []byte) (string, error) {
		path := filepath.Join(work, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		err := run(context.Background(), []string{"verify", path, "--key", filepath.Join(s.dir, "log.pub")}, &out)
		t.Logf("verify %s = %v\n%s", name, err, out.String())
		return out.String(), err
	}
	// The directory record of the first entry file declares one byte more
	// than its data holds.
	dirRec := bytes.Index(b, []byte("PK\x01\x02"))
	for dirRec >= 0 && !bytes.HasPrefix(b[dirRec+46:], []byte("entries/")) {
		next := bytes.Index(b[dirRec+4:], []byte("PK\x01\x02"))
		if next < 0 {
			t.Fatal("no directory record of an entry file")
		}
		dirRec += 4 + next
	}
	for _, tc := range []struct {
		name    string
		offsets []int
	}{
		{"sizes", []int{20, 24}}, // compressed and uncompressed size, little-endian
		{"offset", []int{42}},    // where its local header is
		{"crc", []int{16}},
	} {
		bad := bytes.Clone(b)
		for _, o := range tc.offsets {
			bad[dirRec+o]++
		}
		out, err := verify(tc.name+".zip", bad)
		if err == nil || !strings.Contains(out, "(the zip was altered or damaged") || strings.Contains(out, "json: unexpected EOF") || strings.Contains(out, "json: EOF") {
			t.Errorf("verify of a bundle with a changed zip directory (%s) = %v\n%s\nwant the zip problem named", tc.name, err, out)
		}
	}
	// A manifest changed and the zip rebuilt around it.
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var rebuilt bytes.Buffer
	zw := zip.NewWriter(&rebuilt)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if f.Name == "manifest.json" {
			changed := bytes.Replace(data, []byte(`default`), []byte(`defaulT`), 1)
			if bytes.Equal(changed, data) {
				t.Fatalf("manifest.json does not name the tenant:\n%s", data)
			}
			data = changed
		}
		w, err := zw.Create(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := verify("manifest.zip", rebuilt.Bytes())
	if err == nil || strings.Count(out, "FAIL  ") != 1 || strings.Count(out, "--    ") != 15 ||
		!strings.Contains(out, "NOT VERIFIED: bundle signature failed; 15 other checks not checked (the manifest is not signed by the key)") {
		t.Errorf("verify of a bundle with a changed manifest = %v\n%s\nwant one check FAIL and the others not checked", err, out)
	}
	if err == nil || !strings.Contains(err.Error(), "bundle signature failed; 15 other checks not checked") {
		t.Errorf("verify of a bundle with a changed manifest = %v, want the failed check named apart from those not run", err)
	}
}
