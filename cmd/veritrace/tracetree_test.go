package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// TestPrintTraceTreeDeep: a tree deeper than maxTreeIndent prints a line
// a span, indented at most maxTreeIndent levels, the deeper ones with
// their depth; a span not under its parent says why.
func TestPrintTraceTreeDeep(t *testing.T) {
	const n = 300
	root := &v1.SpanNode{SpanId: []byte{1}, Span: &v1.Span{Name: "root"}}
	at := root
	for i := 1; i < n; i++ {
		c := &v1.SpanNode{SpanId: []byte{2, byte(i >> 8), byte(i)}, Span: &v1.Span{Name: "step", ParentSpanId: at.SpanId}}
		at.Children = append(at.Children, c)
		at = c
	}
	at.Children = append(at.Children, &v1.SpanNode{SpanId: []byte{3}, Span: &v1.Span{Name: "capped", ParentSpanId: []byte{0xca, 0xfe}}, Placement: v1.TreePlacement_TREE_PLACEMENT_DEPTH_CAPPED})
	loop := &v1.SpanNode{SpanId: []byte{4}, Span: &v1.Span{Name: "loop", ParentSpanId: []byte{0xbe, 0xef}}, Placement: v1.TreePlacement_TREE_PLACEMENT_PARENT_CYCLE}
	var out strings.Builder
	printTraceTree(&out, &v1.GetTraceResponse{Roots: []*v1.SpanNode{root, loop}})
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1+n+2 {
		t.Fatalf("printTraceTree printed %d lines, want %d", len(lines), 1+n+2)
	}
	for _, l := range lines {
		if ind := len(l) - len(strings.TrimLeft(l, " ")); ind > 2*maxTreeIndent {
			t.Fatalf("line indented %d spaces, want at most %d: %q", ind, 2*maxTreeIndent, l)
		}
	}
	for _, want := range []string{"[depth 300] step", "parent cafe: nested too deep, shown beside it", "parent beef is on a loop of parents"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printTraceTree printed no %q", want)
		}
	}
}

// TestTraceTreeErasedSpan: an erased span in `veritrace trace` says what
// its entry header still tells: its parent (here one not in the trace),
// and the tombstone that erased it.
func TestTraceTreeErasedSpan(t *testing.T) {
	_, cli, key := traceServer(t, 0)
	app, auditor, co := key("ingester"), key("auditor"), key("compliance_officer")
	spans := filepath.Join(t.TempDir(), "spans.json")
	// Span 0a.. is under parent 0b.., which was never sent; its subject is erased.
	if err := os.WriteFile(spans, []byte(`{"spans":[{"traceId":"EREREREREREREREREREREQ==","spanId":"CgoKCgoKCgo=","parentSpanId":"CwsLCwsLCws=",
		"name":"chat","kind":"SPAN_KIND_GENERATION","startTime":"2026-11-21T09:00:00Z","endTime":"2026-11-21T09:00:01Z","subjectId":"erase-me"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(app, "append", spans)
	cli(co, "erase", "--subject", "erase-me", "--legal-basis", "GDPR Art. 17(1)(a)", "--reason", "subject request", "--request-id", "dsr-1")
	out := cli(auditor, "trace", "11111111111111111111111111111111")
	for _, want := range []string{"(payload erased by tombstone ", "span 0a0a0a0a0a0a0a0a", "(parent 0b0b0b0b0b0b0b0b not in the trace)"} {
		if !strings.Contains(out, want) {
			t.Errorf("veritrace trace printed no %q:\n%s", want, out)
		}
	}
}

// TestTraceFollowsPages: a trace whose content exceeds the server's
// GetTrace cap (4 KiB here) comes in pages; `veritrace trace` follows them
// and prints every span with its content, as does --json.
func TestTraceFollowsPages(t *testing.T) {
	_, cli, key := traceServer(t, 4<<10)
	app, auditor := key("ingester"), key("auditor")
	var spans []string
	const n = 8
	for i := range n {
		spans = append(spans, fmt.Sprintf(`{"traceId":"EREREREREREREREREREREQ==","spanId":"CgoKCgoKCg%s=","name":"step-%d","kind":"SPAN_KIND_CHAIN",
			"startTime":"2026-11-21T09:00:0%dZ","endTime":"2026-11-21T09:00:09Z","attributes":{"note":%q}}`, string("AEIMQUYc"[i]), i, i, strings.Repeat("y", 2<<10)))
	}
	path := filepath.Join(t.TempDir(), "spans.json")
	if err := os.WriteFile(path, []byte(`{"spans":[`+strings.Join(spans, ",")+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(app, "append", path)
	out := cli(auditor, "trace", "11111111111111111111111111111111")
	for i := range n {
		if !strings.Contains(out, fmt.Sprintf("step-%d", i)) {
			t.Errorf("veritrace trace printed no step-%d (its content is on a later page):\n%s", i, out)
		}
	}
	js := cli(auditor, "trace", "--json", "11111111111111111111111111111111")
	if omitted, contents := strings.Contains(js, `"contentOmitted": true`), strings.Count(js, strings.Repeat("y", 2<<10)); omitted || contents != n {
		t.Errorf("veritrace trace --json gives %d spans' content, want %d merged from the pages (content omitted: %v)", contents, n, omitted)
	}
}

// eraseBeforePage is an audit client that runs erase before asking for the
// page after the first.
type eraseBeforePage struct {
	veritracev1connect.AuditServiceClient
	asked int
	erase func()
}

func (a *eraseBeforePage) GetTrace(ctx context.Context, req *connect.Request[v1.GetTraceRequest]) (*connect.Response[v1.GetTraceResponse], error) {
	if a.asked++; a.asked == 2 {
		a.erase()
	}
	return a.AuditServiceClient.GetTrace(ctx, req)
}

// TestTraceSpansErasedBetweenPages: a subject is erased while an auditor
// reads its trace page by page (a real server, cap 4 KiB, spans of 2 KiB:
// a span a page). The spans the first page omitted come out erased, with
// the tombstone that erased them; so does the one the first page gave.
func TestTraceSpansErasedBetweenPages(t *testing.T) {
	url, cli, key := traceServer(t, 4<<10)
	app, auditor, co := key("ingester"), key("auditor"), key("compliance_officer")
	var spans []string
	const n = 4
	for i := range n {
		spans = append(spans, fmt.Sprintf(`{"traceId":"EREREREREREREREREREREQ==","spanId":"CgoKCgoKCg%s=","name":"step-%d","kind":"SPAN_KIND_CHAIN",
			"startTime":"2026-11-21T09:00:0%dZ","endTime":"2026-11-21T09:00:09Z","subjectId":"erase-me","attributes":{"note":%q}}`, string("AEIM"[i]), i, i, strings.Repeat("y", 2<<10)))
	}
	path := filepath.Join(t.TempDir(), "spans.json")
	if err := os.WriteFile(path, []byte(`{"spans":[`+strings.Join(spans, ",")+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(app, "append", path)
	cf := &clientFlags{addr: url, keyFile: auditor}
	if err := cf.loadKey(); err != nil {
		t.Fatal(err)
	}
	c := &eraseBeforePage{AuditServiceClient: cf.audit(), erase: func() {
		cli(co, "erase", "--subject", "erase-me", "--legal-basis", "GDPR Art. 17(1)(a)", "--reason", "subject request", "--request-id", "dsr-pages")
	}}
	id := bytes.Repeat([]byte{0x11}, 16)
	got, err := fetchTrace(context.Background(), c, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.asked < 2 {
		t.Fatalf("fetchTrace read %d pages; the test needs the trace in several", c.asked)
	}
	nodes := 0
	walkSpanNodes(got.GetRoots(), func(nd *v1.SpanNode) {
		nodes++
		if !nd.GetErased() || nd.ErasedByTombstone == nil || nd.GetContentOmitted() || nd.GetSpan() != nil {
			t.Errorf("span %d, its subject erased while the trace was read, comes out as erased=%v tombstone=%v omitted=%v content=%v; want erased by its tombstone, no content",
				nd.GetIndex(), nd.GetErased(), nd.ErasedByTombstone, nd.GetContentOmitted(), nd.GetSpan() != nil)
		}
	})
	if nodes != n {
		t.Errorf("fetchTrace shows %d spans, want %d", nodes, n)
	}
}

// traceServer starts a server (maxTraceBytes: its GetTrace cap, 0 the
// default) and returns its URL, a CLI runner (veritrace CMD ARGS with an
// API key file) and a maker of API key files of a role.
func traceServer(t *testing.T, maxTraceBytes int) (url string, cli func(key, cmd string, args ...string) string, key func(role string) string) {
	t.Helper()
	t.Setenv("VERITRACE_API_KEY_FILE", "")
	t.Setenv("VERITRACE_API_KEY", "")
	dir := t.TempDir()
	c := serveConfig{DataDir: dir}
	if maxTraceBytes > 0 {
		c.MaxTraceBytes = maxTraceBytes
	}
	addr, _ := startServe(t, c)
	url = "http://" + addr
	cli = func(key, cmd string, args ...string) string {
		t.Helper()
		var out strings.Builder
		full := append(strings.Fields(cmd), "--addr", url, "--api-key-file", key)
		if err := run(context.Background(), append(full, args...), &out); err != nil {
			t.Fatalf("veritrace %s: %v\n%s", strings.Join(full, " "), err, out.String())
		}
		return out.String()
	}
	admin := filepath.Join(dir, AdminKeyFile)
	key = func(role string) string {
		path := filepath.Join(t.TempDir(), role+".key")
		cli(admin, "keys create", "--role", role, "--tenants", "default", "--token-file", path)
		return path
	}
	return url, cli, key
}
