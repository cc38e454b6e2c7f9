package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
)

type testServer struct {
	url  string
	l    *ledger.Ledger
	h    *Handler
	srv  *http.Server // serving h
	dir  string       // the data directory
	keys *ledger.Keys // its keys
	stop func()       // stops the server and closes the ledger (once)
	logs *syncBuffer  // everything the server logged
	now  time.Time
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs the real handler on a loopback listener with HTTP/1.1
// and h2c, like `veritrace serve`, logging at debug level into ts.logs.
func startServer(t testing.TB, maxBytes int, opts ...func(*ledger.Options)) *testServer {
	t.Helper()
	return startServerWith(t, Options{MaxRequestBytes: maxBytes}, opts...)
}

// startServerWith is startServer with handler options (the logger is the
// test server's). The handler is closed, writing its refusal summaries,
// before the ledger.
func startServerWith(t testing.TB, opts Options, ledgerOpts ...func(*ledger.Options)) *testServer {
	t.Helper()
	dir := t.TempDir()
	keys, _, err := ledger.LoadOrCreateKeys(ledger.KeyPaths{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{logs: &syncBuffer{}, now: time.Now()}
	log := slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lopts := ledger.Options{Dir: dir, Keys: keys, Logger: log, CheckpointInterval: 50 * time.Millisecond}
	for _, o := range ledgerOpts {
		o(&lopts)
	}
	l, err := ledger.Open(context.Background(), lopts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = log
	h := NewHandler(l, opts)
	srv := &http.Server{Handler: h, Protocols: new(http.Protocols), HTTP2: HTTP2Config()}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			srv.Shutdown(context.Background())
			if err := h.Close(context.Background()); err != nil {
				t.Errorf("Handler.Close() = %v", err)
			}
			l.Close()
		})
	}
	t.Cleanup(ts.stop)
	ts.url, ts.l, ts.h, ts.srv, ts.dir, ts.keys = "http://"+ln.Addr().String(), l, h, srv, dir, keys
	return ts
}

// tenant creates a tenant.
func (s *testServer) tenant(t *testing.T, name string) {
	t.Helper()
	if _, err := s.l.CreateTenant(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

// key creates an API key directly in the ledger and returns its token.
func (s *testServer) key(t testing.TB, role policy.Role, tenants ...string) string {
	t.Helper()
	token, rec := NewKey(role, tenants, "test "+string(role), time.Time{}, "", s.now)
	if err := s.l.PutAPIKey(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return token
}

type clients struct {
	ingest    veritracev1connect.IngestServiceClient
	ledger    veritracev1connect.LedgerServiceClient
	audit     veritracev1connect.AuditServiceClient
	retention veritracev1connect.RetentionServiceClient
	admin     veritracev1connect.AdminServiceClient
	identity  veritracev1connect.IdentityServiceClient
	otlp      otlpClients
}

// clients returns the generated clients speaking protocol ("connect",
// "grpc", or "json": Connect with JSON), sending the token and, unless
// empty, the tenant header.
func (s *testServer) clients(protocol, tenant, token string) clients {
	t := &http.Transport{Protocols: new(http.Protocols)}
	t.Protocols.SetHTTP1(true)
	t.Protocols.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: t}
	var opts []connect.ClientOption
	switch protocol {
	case "grpc":
		t.Protocols.SetHTTP1(false)
		opts = append(opts, connect.WithGRPC())
	case "json":
		opts = append(opts, connect.WithProtoJSON())
	}
	opts = append(opts, connect.WithInterceptors(ClientHeaders(tenant, token)))
	return clients{
		ingest:    veritracev1connect.NewIngestServiceClient(hc, s.url, opts...),
		ledger:    veritracev1connect.NewLedgerServiceClient(hc, s.url, opts...),
		audit:     veritracev1connect.NewAuditServiceClient(hc, s.url, opts...),
		retention: veritracev1connect.NewRetentionServiceClient(hc, s.url, opts...),
		admin:     veritracev1connect.NewAdminServiceClient(hc, s.url, opts...),
		identity:  veritracev1connect.NewIdentityServiceClient(hc, s.url, opts...),
		otlp:      newOTLPClients(hc, s.url, tenant, token, opts...),
	}
}

func testSpan(n int) *v1.Span {
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	return &v1.Span{
		TraceId: bytes.Repeat([]byte{byte(n/10 + 1)}, 16), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, byte(n + 1)},
		Name: "chat gpt-4o", Kind: v1.SpanKind_SPAN_KIND_GENERATION,
		StartTime: timestamppb.New(start), EndTime: timestamppb.New(start.Add(time.Second)),
		Status:    &v1.Status{Code: v1.StatusCode_STATUS_CODE_OK},
		SubjectId: "customer-42", SessionId: "session-7",
		Model: &v1.Model{Provider: "openai", RequestModel: "gpt-4o", Temperature: proto.Float64(0.2)},
		Usage: &v1.Usage{InputTokens: 800, OutputTokens: 90, Cost: 0.004, Currency: "USD"},
		Content: &v1.Content{
			InputMessages:  []*v1.Message{{Role: "user", Parts: []*v1.MessagePart{{Part: &v1.MessagePart_Text{Text: fmt.Sprint("question ", n)}}}}},
			OutputMessages: []*v1.Message{{Role: "assistant", Parts: []*v1.MessagePart{{Part: &v1.MessagePart_Text{Text: "answer"}}}}},
			Retrieval:      &v1.Retrieval{Query: "refunds", Documents: []*v1.Document{{Id: "doc-1", SourceUri: "s3://kb/refunds.md", Version: "3", Score: 0.9}}},
		},
		Attributes: map[string]*structpb.Value{"gen_ai.agent.name": structpb.NewStringValue("support")},
	}
}

func TestAppendAndReadBack(t *testing.T) {
	s := startServer(t, 0)
	for _, protocol := range []string{"connect", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			ctx := context.Background()
			s.tenant(t, protocol) // a tenant per protocol
			c := s.clients(protocol, protocol, s.key(t, policy.Ingester, protocol))
			audit := s.clients(protocol, protocol, s.key(t, policy.Auditor, protocol))
			reg, err := c.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{
				Kind: v1.VersionKind_VERSION_KIND_PROMPT, Name: "support-answer", Label: "v1", Content: []byte("You are helpful."), MediaType: "text/plain",
			}))
			if err != nil {
				t.Fatalf("RegisterVersion() = %v", err)
			}
			again, err := c.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{
				Kind: v1.VersionKind_VERSION_KIND_PROMPT, Name: "support-answer", Label: "v1", Content: []byte("You are helpful."), MediaType: "text/plain",
			}))
			if err != nil || again.Msg.GetCreated() || again.Msg.GetId() != reg.Msg.GetId() || again.Msg.GetIndex() != reg.Msg.GetIndex() {
				t.Errorf("RegisterVersion(again) = %v, %v; want the original, not created", again, err)
			}
			spans := []*v1.Span{testSpan(0), testSpan(1)}
			spans[1].ParentSpanId = spans[0].SpanId
			spans[1].Versions = &v1.VersionRefs{Prompt: reg.Msg.GetId()}
			resp, err := c.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: spans, WaitCheckpoint: true}))
			if err != nil {
				t.Fatalf("AppendSpans() = %v", err)
			}
			cpResp, err := c.ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			v, err := note.NewVerifier(cpResp.Msg.GetVerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			cp, err := format.OpenCheckpoint([]byte(resp.Msg.GetCheckpoint().GetNote()), v)
			if err != nil || cp.Size != 3 || cp.Origin != v.Name()+"/"+protocol {
				t.Fatalf("checkpoint = %+v, %v", cp, err)
			}
			for i, p := range resp.Msg.GetProofs() {
				var leaf tlog.Hash
				copy(leaf[:], resp.Msg.GetReceipts()[i].GetLeafHash())
				proof := make(tlog.RecordProof, len(p.GetHashes()))
				for j, h := range p.GetHashes() {
					copy(proof[j][:], h)
				}
				if err := tlog.CheckRecord(proof, int64(cp.Size), cp.Root, int64(p.GetIndex()), leaf); err != nil {
					t.Errorf("receipt %d: proof does not verify: %v", i, err)
				}
			}
			e, err := audit.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: resp.Msg.GetReceipts()[1].GetIndex()}))
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(e.Msg.GetEntry().GetSpan(), spans[1]) {
				t.Errorf("GetEntry() span = %v, want %v", e.Msg.GetEntry().GetSpan(), spans[1])
			}
			if got := format.LeafHash(e.Msg.GetEntry().GetHeaderBytes()); !bytes.Equal(got[:], resp.Msg.GetReceipts()[1].GetLeafHash()) {
				t.Error("leaf hash of header bytes differs from the receipt")
			}
			if c := format.Commitment(e.Msg.GetEntry().GetSalt(), e.Msg.GetEntry().GetPayload()); !bytes.Equal(c[:], e.Msg.GetEntry().GetHeader().GetPayloadCommitment()) {
				t.Error("payload does not match its commitment")
			}
			gv, err := c.ingest.GetVersion(ctx, connect.NewRequest(&v1.GetVersionRequest{Id: reg.Msg.GetId()}))
			if err != nil || string(gv.Msg.GetVersion().GetContent()) != "You are helpful." || gv.Msg.GetVersion().GetName() != "support-answer" {
				t.Errorf("GetVersion() = %v, %v", gv, err)
			}
			lv, err := c.ingest.ListVersions(ctx, connect.NewRequest(&v1.ListVersionsRequest{}))
			if err != nil || len(lv.Msg.GetVersions()) != 1 || lv.Msg.GetVersions()[0].GetId() != reg.Msg.GetId() {
				t.Errorf("ListVersions() = %v, %v", lv, err)
			}
			// Consistency between the version's own checkpoint size and now.
			cons, err := c.ledger.GetConsistencyProof(ctx, connect.NewRequest(&v1.GetConsistencyProofRequest{OldSize: 1, NewSize: 3}))
			if err != nil || len(cons.Msg.GetHashes()) == 0 {
				t.Errorf("GetConsistencyProof() = %v, %v", cons, err)
			}
			// Re-sending the batch (a client retry) returns the original receipts.
			dup, err := c.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: spans}))
			if err != nil || !dup.Msg.GetReceipts()[0].GetDuplicate() || dup.Msg.GetReceipts()[1].GetIndex() != resp.Msg.GetReceipts()[1].GetIndex() {
				t.Errorf("AppendSpans(retry) = %v, %v", dup, err)
			}
		})
	}
}

func wantCode(t *testing.T, what string, err error, code connect.Code, substr string) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Errorf("%s: code %v (%v), want %v", what, connect.CodeOf(err), err, code)
		return
	}
	if !strings.Contains(err.Error(), substr) {
		t.Errorf("%s: error %q does not name %q", what, err, substr)
	}
}

func TestBadInput(t *testing.T) {
	s := startServer(t, 64<<10)
	ctx := context.Background()
	ingester := s.key(t, policy.Ingester, "default")
	for _, protocol := range []string{"connect", "grpc"} {
		c := s.clients(protocol, "", ingester)
		mod := func(f func(*v1.Span)) []*v1.Span {
			sp := testSpan(5)
			f(sp)
			return []*v1.Span{testSpan(4), sp}
		}
		tests := []struct {
			name  string
			spans []*v1.Span
			code  connect.Code
			field string
		}{
			{"no spans", nil, connect.CodeInvalidArgument, "spans"},
			{"short trace id", mod(func(s *v1.Span) { s.TraceId = s.TraceId[:15] }), connect.CodeInvalidArgument, "spans[1].trace_id"},
			{"zero span id", mod(func(s *v1.Span) { s.SpanId = make([]byte, 8) }), connect.CodeInvalidArgument, "spans[1].span_id"},
			{"missing name", mod(func(s *v1.Span) { s.Name = "" }), connect.CodeInvalidArgument, "spans[1].name"},
			{"unknown kind", mod(func(s *v1.Span) { s.Kind = 42 }), connect.CodeInvalidArgument, "spans[1].kind"},
			{"unspecified kind", mod(func(s *v1.Span) { s.Kind = 0 }), connect.CodeInvalidArgument, "spans[1].kind"},
			{"end before start", mod(func(s *v1.Span) { s.EndTime = timestamppb.New(s.StartTime.AsTime().Add(-time.Second)) }), connect.CodeInvalidArgument, "spans[1].end_time"},
			{"missing start", mod(func(s *v1.Span) { s.StartTime = nil }), connect.CodeInvalidArgument, "spans[1].start_time"},
			{"own parent", mod(func(s *v1.Span) { s.ParentSpanId = s.SpanId }), connect.CodeInvalidArgument, "spans[1].parent_span_id"},
			{"bad version id", mod(func(s *v1.Span) { s.Versions = &v1.VersionRefs{Policy: "abc"} }), connect.CodeInvalidArgument, "spans[1].versions.policy"},
			{"unregistered version", mod(func(s *v1.Span) { s.Versions = &v1.VersionRefs{Pipeline: strings.Repeat("ab", 32)} }), connect.CodeFailedPrecondition, "spans[1].versions.pipeline"},
			{"unknown status", mod(func(s *v1.Span) { s.Status.Code = 7 }), connect.CodeInvalidArgument, "spans[1].status.code"},
			{"negative tokens", mod(func(s *v1.Span) { s.Usage.InputTokens = -1 }), connect.CodeInvalidArgument, "spans[1].usage"},
			{"document without id", mod(func(s *v1.Span) { s.Content.Retrieval.Documents[0].Id = "" }), connect.CodeInvalidArgument, "spans[1].content.retrieval.documents[0].id"},
			{"NaN attribute", mod(func(s *v1.Span) { s.Attributes["x"] = structpb.NewNumberValue(math.NaN()) }), connect.CodeInvalidArgument, `spans[1].attributes["x"]`},
			{"oversize request", mod(func(s *v1.Span) { s.Content.SystemInstructions = strings.Repeat("x", 70<<10) }), connect.CodeResourceExhausted, ""},
		}
		for _, tt := range tests {
			t.Run(protocol+"/"+tt.name, func(t *testing.T) {
				_, err := c.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: tt.spans}))
				wantCode(t, "AppendSpans()", err, tt.code, tt.field)
			})
		}
	}
	c := s.clients("connect", "", ingester)
	audit := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	// Nothing of any failed batch was written.
	if n, _ := s.l.Size(ctx, "default"); n != 0 {
		t.Fatalf("log size after bad batches = %d, want 0", n)
	}
	if _, err := c.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}})); err != nil {
		t.Fatal(err)
	}
	changed := testSpan(1)
	changed.Name = "changed"
	_, err := c.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(2), changed}}))
	wantCode(t, "AppendSpans(changed content)", err, connect.CodeAlreadyExists, fmt.Sprintf("spans[1] (trace_id %x, span_id %x)", changed.TraceId, changed.SpanId))

	_, err = c.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{Kind: 9, Name: "x", Label: "1"}))
	wantCode(t, "RegisterVersion(kind 9)", err, connect.CodeInvalidArgument, "kind")
	_, err = c.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{Kind: 1, Name: "x"}))
	wantCode(t, "RegisterVersion(no label)", err, connect.CodeInvalidArgument, "label")
	c.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{Kind: 1, Name: "x", Label: "1", Content: []byte("a")}))
	_, err = c.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{Kind: 1, Name: "x", Label: "1", Content: []byte("b")}))
	wantCode(t, "RegisterVersion(same label, new content)", err, connect.CodeAlreadyExists, `"x" label "1"`)
	_, err = c.ingest.GetVersion(ctx, connect.NewRequest(&v1.GetVersionRequest{Id: "nothex"}))
	wantCode(t, "GetVersion(bad id)", err, connect.CodeInvalidArgument, "id")
	_, err = c.ingest.GetVersion(ctx, connect.NewRequest(&v1.GetVersionRequest{Id: strings.Repeat("cd", 32)}))
	wantCode(t, "GetVersion(unknown)", err, connect.CodeNotFound, "")
	_, err = c.ingest.ListVersions(ctx, connect.NewRequest(&v1.ListVersionsRequest{PageToken: "!!"}))
	wantCode(t, "ListVersions(bad token)", err, connect.CodeInvalidArgument, "page_token")
	_, err = audit.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: 99}))
	wantCode(t, "GetEntry(99)", err, connect.CodeNotFound, "")
	_, err = c.ledger.GetInclusionProof(ctx, connect.NewRequest(&v1.GetInclusionProofRequest{Index: 0, TreeSize: 99}))
	wantCode(t, "GetInclusionProof(size 99)", err, connect.CodeInvalidArgument, "tree size")
	_, err = c.ledger.GetConsistencyProof(ctx, connect.NewRequest(&v1.GetConsistencyProofRequest{OldSize: 5, NewSize: 2}))
	wantCode(t, "GetConsistencyProof(5, 2)", err, connect.CodeInvalidArgument, "size")
}

func TestTenants(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	s.tenant(t, "acme")
	acme := s.clients("connect", "", s.key(t, policy.Ingester, "acme")) // no header: the key's only tenant
	if _, err := acme.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}})); err != nil {
		t.Fatal(err)
	}
	all := s.key(t, policy.Auditor, policy.AllTenants)
	_, err := s.clients("connect", "default", all).ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: 0}))
	wantCode(t, "GetEntry(default, 0)", err, connect.CodeNotFound, "")
	if _, err := s.clients("connect", "acme", all).ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: 0})); err != nil {
		t.Errorf("GetEntry(acme, 0) = %v", err)
	}
	_, err = s.clients("connect", "Bad Tenant!", all).ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{}))
	wantCode(t, "GetCheckpoint(bad tenant)", err, connect.CodeInvalidArgument, TenantHeader)
	_, err = s.clients("connect", "nobody", all).ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{}))
	wantCode(t, "GetCheckpoint(unknown tenant, key bound to all)", err, connect.CodeNotFound, "")
	// A key bound to acme gets the same answer for a tenant that exists and
	// one that does not.
	acmeKey := s.key(t, policy.Ingester, "acme")
	_, errExists := s.clients("connect", "default", acmeKey).ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{}))
	_, errMissing := s.clients("connect", "nobody", acmeKey).ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{}))
	wantCode(t, "GetCheckpoint(foreign tenant)", errExists, connect.CodePermissionDenied, `tenant "default"`)
	wantCode(t, "GetCheckpoint(missing tenant)", errMissing, connect.CodePermissionDenied, `tenant "nobody"`)
	if strings.Replace(errExists.Error(), "default", "nobody", 1) != errMissing.Error() {
		t.Errorf("denials differ between an existing and a missing tenant: %q vs %q", errExists, errMissing)
	}
}

func TestHealthAndReflection(t *testing.T) {
	s := startServer(t, 0)
	for _, path := range []string{"/grpc.health.v1.Health/Check", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"} {
		resp, err := http.Post(s.url+path, "application/grpc", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			t.Errorf("%s is not served", path)
		}
	}
}

// FuzzSpanRecord feeds arbitrary bytes through the protobuf decoder and the
// span validator: neither may panic, and what validates must re-encode.
func FuzzSpanRecord(f *testing.F) {
	b, _ := proto.Marshal(testSpan(1))
	f.Add(b)
	f.Add([]byte{0x0a, 0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		sp := &v1.Span{}
		if err := proto.Unmarshal(b, sp); err != nil {
			return
		}
		r, err := spanRecord("spans[0]", sp, maxSpanBytes)
		if err != nil {
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument {
				t.Fatalf("spanRecord() = %v, want InvalidArgument", err)
			}
			return
		}
		back := &v1.Span{}
		if err := proto.Unmarshal(r.Payload, back); err != nil || !proto.Equal(back, sp) {
			t.Fatalf("payload does not decode to the span: %v", err)
		}
	})
}

// pseudonym is how the targets of allowed calls name a subject (or, with
// audit.FieldSession, a session) of a tenant: "pseudonym:" and its
// pseudonym while its key exists, its stand-in without one.
func (ts *testServer) pseudonym(t testing.TB, tenant string, field uint8, value string) string {
	t.Helper()
	ctx := context.Background()
	ref, err := ts.l.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)})
	if err != nil {
		t.Fatal(err)
	}
	k, err := ts.l.PseudonymKey(ctx, tenant, ref, false)
	if errors.Is(err, ledger.ErrNotFound) {
		return ts.standIn(t, tenant, field, value)
	}
	if err != nil {
		t.Fatal(err)
	}
	return "pseudonym:" + k.Pseudonym(value)
}

// standIn is how targets name an id without a pseudonym key, and every id
// in the target of a refused call: "pseudonym:" and its stand-in.
func (ts *testServer) standIn(t testing.TB, tenant string, field uint8, value string) string {
	t.Helper()
	ctx := context.Background()
	ref, err := ts.l.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ts.l.StandInPseudonym(ctx, tenant, ref)
	if err != nil {
		t.Fatal(err)
	}
	return "pseudonym:" + p
}
