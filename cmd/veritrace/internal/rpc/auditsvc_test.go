package rpc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"

	"github.com/veritrace/veritrace/audit"
	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// readBundle exports a bundle through the stream and returns its bytes.
func readBundle(ctx context.Context, c clients, sel *v1.TraceQuery, known uint64) ([]byte, error) {
	st, err := c.audit.ExportBundle(ctx, connect.NewRequest(&v1.ExportBundleRequest{Selector: sel, KnownTreeSize: known}))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var buf bytes.Buffer
	for st.Receive() {
		buf.Write(st.Msg().GetChunk())
	}
	return buf.Bytes(), st.Err()
}

func TestAuditService(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	for _, protocol := range []string{"connect", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			tenant := "audit-" + protocol
			s.tenant(t, tenant)
			app := s.clients(protocol, tenant, s.key(t, policy.Ingester, tenant))
			aud := s.clients(protocol, tenant, s.key(t, policy.Auditor, tenant))
			reg, err := app.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{Kind: v1.VersionKind_VERSION_KIND_POLICY, Name: "refunds", Label: "1", Content: []byte("30 days")}))
			if err != nil {
				t.Fatal(err)
			}
			root, child, other := testSpan(0), testSpan(1), testSpan(30)
			child.ParentSpanId = root.SpanId
			child.Versions = &v1.VersionRefs{Policy: reg.Msg.GetId()}
			child.Status = &v1.Status{Code: v1.StatusCode_STATUS_CODE_ERROR, Message: "timeout"}
			other.SubjectId = "someone-else"
			if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{root, child, other}})); err != nil {
				t.Fatal(err)
			}

			tr, err := aud.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: root.TraceId}))
			if err != nil {
				t.Fatal(err)
			}
			if len(tr.Msg.GetRoots()) != 1 || len(tr.Msg.GetRoots()[0].GetChildren()) != 1 ||
				tr.Msg.GetRoots()[0].GetChildren()[0].GetSpan().GetName() != child.Name || len(tr.Msg.GetVersions()) != 1 ||
				string(tr.Msg.GetVersions()[0].GetContent()) != "30 days" {
				t.Errorf("GetTrace() = %v", tr.Msg)
			}
			_, err = aud.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: bytes.Repeat([]byte{9}, 16)}))
			wantCode(t, "GetTrace(unknown)", err, connect.CodeNotFound, "")
			_, err = aud.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: []byte{1}}))
			wantCode(t, "GetTrace(short id)", err, connect.CodeInvalidArgument, "trace_id")

			for name, tc := range map[string]struct {
				q    *v1.TraceQuery
				want int
			}{
				"subject":     {&v1.TraceQuery{SubjectId: "customer-42"}, 1},
				"errors":      {&v1.TraceQuery{ErrorsOnly: true}, 1},
				"policy":      {&v1.TraceQuery{VersionId: reg.Msg.GetId()}, 1},
				"model":       {&v1.TraceQuery{Model: "gpt-4o"}, 2},
				"nothing":     {&v1.TraceQuery{SubjectId: "nobody"}, 0},
				"all, paged":  {&v1.TraceQuery{}, 2},
				"agent spans": {&v1.TraceQuery{Kind: v1.SpanKind_SPAN_KIND_AGENT}, 0},
			} {
				var got int
				token := ""
				for i := 0; i < 10; i++ {
					r, err := aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: tc.q, PageSize: 1, PageToken: token}))
					if err != nil {
						t.Fatalf("QueryTraces(%s) = %v", name, err)
					}
					got += len(r.Msg.GetTraces())
					if token = r.Msg.GetNextPageToken(); token == "" {
						break
					}
				}
				if got != tc.want {
					t.Errorf("QueryTraces(%s) found %d traces, want %d", name, got, tc.want)
				}
			}
			_, err = aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: &v1.TraceQuery{VersionId: "xyz"}}))
			wantCode(t, "QueryTraces(bad version)", err, connect.CodeInvalidArgument, "query.version_id")
			_, err = aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{PageToken: "%%"}))
			wantCode(t, "QueryTraces(bad token)", err, connect.CodeInvalidArgument, "page_token")
			// A token is a bare index; one beyond the log no page returned.
			beyond := base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, 1<<40))
			_, err = aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{PageToken: beyond}))
			wantCode(t, "QueryTraces(token beyond the log)", err, connect.CodeInvalidArgument, "page_token")

			cp, err := aud.ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{Fresh: true}))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(2)}})); err != nil {
				t.Fatal(err)
			}
			b, err := readBundle(ctx, aud, &v1.TraceQuery{SubjectId: "customer-42"}, cp.Msg.GetCheckpoint().GetSize())
			if err != nil {
				t.Fatal(err)
			}
			key, _ := note.NewVerifier(cp.Msg.GetVerifierKey())
			rep := bundle.Verify(bytes.NewReader(b), int64(len(b)), key, []byte(cp.Msg.GetCheckpoint().GetNote()))
			var out strings.Builder
			rep.Write(&out)
			if !rep.OK() || rep.Entries != 4 { // root, child, testSpan(2) and the policy
				t.Errorf("exported bundle (%d entries):\n%s", rep.Entries, out.String())
			}
			_, err = readBundle(ctx, aud, &v1.TraceQuery{}, 0)
			wantCode(t, "ExportBundle(no selector)", err, connect.CodeInvalidArgument, "selector")
			_, err = readBundle(ctx, aud, &v1.TraceQuery{SubjectId: "nobody"}, 0)
			wantCode(t, "ExportBundle(nothing)", err, connect.CodeNotFound, "selector")
			_, err = readBundle(ctx, aud, &v1.TraceQuery{SubjectId: "customer-42"}, 1<<40)
			wantCode(t, "ExportBundle(known size too big)", err, connect.CodeInvalidArgument, "known size")

			// Exports are recorded, and a foreign tenant's auditor may not export.
			foreign := s.clients(protocol, tenant, s.key(t, policy.Auditor, "default"))
			_, err = readBundle(ctx, foreign, &v1.TraceQuery{SubjectId: "customer-42"}, 0)
			wantCode(t, "ExportBundle(foreign tenant)", err, connect.CodePermissionDenied, "")
			log, err := aud.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			var exports []string
			for _, e := range log.Msg.GetEntries() {
				if strings.HasSuffix(e.GetRecord().GetProcedure(), "/ExportBundle") {
					exports = append(exports, fmt.Sprintf("%s %s", e.GetRecord().GetOutcome(), e.GetRecord().GetTarget()))
				}
			}
			// An authorised export is recorded before its first byte, and
			// again if it fails; a refused one with what it asked for (its
			// request is read before the decision).
			// Subjects are named by their pseudonyms; one without data, and
			// any in a refused call, by its stand-in, which looks alike.
			c42 := s.pseudonym(t, tenant, audit.FieldSubject, "customer-42")
			c42s := s.standIn(t, tenant, audit.FieldSubject, "customer-42")
			nobody := s.standIn(t, tenant, audit.FieldSubject, "nobody")
			if len(c42) != len(nobody) || c42 == c42s || strings.Contains(fmt.Sprint(exports), "customer-42") {
				t.Errorf("customer-42 is named %q (stand-in %q), nobody %q; export records %v", c42, c42s, nobody, exports)
			}
			want := "[ACCESS_OUTCOME_ALLOWED export subject=" + c42 +
				" ACCESS_OUTCOME_ALLOWED export (everything) ACCESS_OUTCOME_FAILED export (everything)" +
				" ACCESS_OUTCOME_ALLOWED export subject=" + nobody + " ACCESS_OUTCOME_FAILED export subject=" + nobody +
				" ACCESS_OUTCOME_ALLOWED export subject=" + c42 + " ACCESS_OUTCOME_FAILED export subject=" + c42 +
				" ACCESS_OUTCOME_DENIED export subject=" + c42s + "]"
			if fmt.Sprint(exports) != want {
				t.Errorf("export access records = %v\nwant %s", exports, want)
			}
		})
	}
}
