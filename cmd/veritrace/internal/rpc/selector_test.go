package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/policy"
)

// TestExportRecordsEverySelector (issue 9, item 9): every condition of an
// export's selector is recorded in the manifest and shown in the report,
// not only trace, session, subject and time.
func TestExportRecordsEverySelector(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	app := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	reg, err := app.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{Kind: v1.VersionKind_VERSION_KIND_PROMPT, Name: "p", Label: "1", Content: []byte("x")}))
	if err != nil {
		t.Fatal(err)
	}
	sp := testSpan(1)
	sp.Versions = &v1.VersionRefs{Prompt: reg.Msg.GetId()}
	sp.Status = &v1.Status{Code: v1.StatusCode_STATUS_CODE_ERROR}
	if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{sp}})); err != nil {
		t.Fatal(err)
	}
	from := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	sel := &v1.TraceQuery{SubjectId: "customer-42", SessionId: "session-7", From: timestamppb.New(from), VersionId: reg.Msg.GetId(),
		Kind: v1.SpanKind_SPAN_KIND_GENERATION, Model: "gpt-4o", ErrorsOnly: true}
	b, err := readBundle(ctx, aud, sel, 0)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := note.NewVerifier(s.l.VerifierKey())
	if rep := bundle.Verify(bytes.NewReader(b), int64(len(b)), key, nil); !rep.OK() {
		t.Fatalf("the bundle does not verify: %v", rep.Failed())
	}
	var m struct {
		Selector map[string]any `json:"selector"`
	}
	if err := json.Unmarshal([]byte(zipFile(t, b, bundle.ManifestFile)), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"subject_id": "customer-42", "session_id": "session-7", "from": from.Format(time.RFC3339),
		"version_id": reg.Msg.GetId(), "kind": "generation", "model": "gpt-4o", "errors_only": true}
	for k, v := range want {
		if m.Selector[k] != v {
			t.Errorf("manifest selector %s = %v, want %v (selector %v)", k, m.Selector[k], v, m.Selector)
		}
	}
	report := zipFile(t, b, bundle.ReportFile)
	for _, s := range []string{"model <code>gpt-4o</code>", "kind generation", "errors only", "version <code>" + reg.Msg.GetId() + "</code>"} {
		if !strings.Contains(report, s) {
			t.Errorf("report.html does not show the selector's %q", s)
		}
	}
	// A selector of a model alone exports too.
	if _, err := readBundle(ctx, aud, &v1.TraceQuery{Model: "gpt-4o"}, 0); err != nil {
		t.Errorf("export by model alone = %v", err)
	}
}

// headerRecorder records the headers of the responses it carries.
type headerRecorder struct {
	rt      http.RoundTripper
	mu      sync.Mutex
	headers []http.Header
}

func (h *headerRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := h.rt.RoundTrip(r)
	if err == nil {
		h.mu.Lock()
		h.headers = append(h.headers, resp.Header.Clone())
		h.mu.Unlock()
	}
	return resp, err
}

// TestExportIsNotCompressedTwice: a bundle is a zip of compressed files;
// the stream carrying it must not be gzipped again for a client that
// accepts gzip (Connect clients do by default).
func TestExportIsNotCompressedTwice(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	app := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}})); err != nil {
		t.Fatal(err)
	}
	rec := &headerRecorder{rt: http.DefaultTransport}
	c := veritracev1connect.NewAuditServiceClient(&http.Client{Transport: rec}, s.url,
		connect.WithInterceptors(ClientHeaders("", s.key(t, policy.Auditor, "default"))))
	st, err := c.ExportBundle(ctx, connect.NewRequest(&v1.ExportBundleRequest{Selector: &v1.TraceQuery{SubjectId: "customer-42"}}))
	if err != nil {
		t.Fatal(err)
	}
	for st.Receive() {
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := c.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: &v1.TraceQuery{}})); err != nil {
		t.Fatal(err)
	}
	if len(rec.headers) != 2 {
		t.Fatalf("%d responses recorded", len(rec.headers))
	}
	if enc := rec.headers[0].Get("Connect-Content-Encoding"); enc != "" && enc != "identity" {
		t.Errorf("ExportBundle's stream is compressed with %q", enc)
	}
	if acc := rec.headers[1].Get("Accept-Encoding") + rec.headers[1].Get("Connect-Accept-Encoding"); !strings.Contains(acc, "gzip") {
		t.Errorf("QueryTraces no longer offers gzip (%q)", acc)
	}
}
