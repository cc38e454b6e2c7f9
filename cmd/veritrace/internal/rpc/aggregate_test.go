package rpc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// aggregateKeys prints groups as "key=spans".
func aggregateKeys(as []*v1.Aggregate) string {
	var out []string
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s=%d", a.GetKey(), a.GetSpans()))
	}
	return strings.Join(out, " ")
}

func TestAggregateTraces(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	for _, protocol := range []string{"connect", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			tenant := "agg-" + protocol
			s.tenant(t, tenant)
			app := s.clients(protocol, tenant, s.key(t, policy.Ingester, tenant))
			aud := s.clients(protocol, tenant, s.key(t, policy.Auditor, tenant))
			var spans []*v1.Span
			for i := range 5 {
				sp := testSpan(i)
				sp.Attributes["deployment.environment"] = structpb.NewStringValue([]string{"prod", "prod", "staging", "prod", "dev"}[i])
				if i == 2 {
					sp.Model.RequestModel = "claude"
					sp.Status = &v1.Status{Code: v1.StatusCode_STATUS_CODE_ERROR, Message: "timeout"}
					sp.Usage.Currency = "EUR"
				}
				spans = append(spans, sp)
			}
			if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: spans})); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			q := &v1.TraceQuery{From: timestamppb.New(now.Add(-time.Hour)), To: timestamppb.New(now.Add(time.Minute))}
			resp, err := aud.audit.AggregateTraces(ctx, connect.NewRequest(&v1.AggregateTracesRequest{Query: q, GroupByAttribute: "deployment.environment"}))
			if err != nil {
				t.Fatal(err)
			}
			m := resp.Msg
			if tot := m.GetTotal(); tot.GetSpans() != 5 || tot.GetErrors() != 1 || tot.GetInputTokens() != 4000 || tot.GetTraces() != 1 ||
				fmt.Sprint(tot.GetCost()) != fmt.Sprint([]*v1.Cost{{Currency: "EUR", Amount: 0.004}, {Currency: "USD", Amount: 0.016}}) {
				t.Errorf("total = %v", tot)
			}
			if !m.GetComplete() || m.GetScanned() != 5 || m.GetBucketSeconds() != 300 {
				t.Errorf("complete %v, scanned %d, bucket %ds", m.GetComplete(), m.GetScanned(), m.GetBucketSeconds())
			}
			if len(m.GetBuckets()) < 12 || len(m.GetBuckets()) > 14 {
				t.Errorf("%d buckets of 5 minutes over 61 minutes", len(m.GetBuckets()))
			}
			for name, tc := range map[string]struct {
				got  []*v1.Aggregate
				want string
			}{
				"by model":     {m.GetByModel(), "gpt-4o=4 claude=1"},
				"by kind":      {m.GetByKind(), "generation=5"},
				"by attribute": {m.GetByAttribute(), "prod=3 dev=1 staging=1"},
				"by prompt":    {m.GetByPromptVersion(), ""},
			} {
				if got := aggregateKeys(tc.got); got != tc.want {
					t.Errorf("%s = %q, want %q", name, got, tc.want)
				}
			}

			for name, tc := range map[string]struct {
				req   *v1.AggregateTracesRequest
				field string
			}{
				"no range":       {&v1.AggregateTracesRequest{}, "query.from"},
				"no end":         {&v1.AggregateTracesRequest{Query: &v1.TraceQuery{From: q.From}}, "query.to"},
				"small buckets":  {&v1.AggregateTracesRequest{Query: q, BucketSeconds: 10}, "bucket_seconds"},
				"many buckets":   {&v1.AggregateTracesRequest{Query: &v1.TraceQuery{From: timestamppb.New(now.Add(-2000 * time.Minute)), To: q.To}, BucketSeconds: 60}, "bucket_seconds"},
				"bad version":    {&v1.AggregateTracesRequest{Query: &v1.TraceQuery{From: q.From, To: q.To, VersionId: "x"}}, "query.version_id"},
				"long attribute": {&v1.AggregateTracesRequest{Query: q, GroupByAttribute: strings.Repeat("a", 5000)}, "group_by_attribute"},
			} {
				_, err := aud.audit.AggregateTraces(ctx, connect.NewRequest(tc.req))
				wantCode(t, name, err, connect.CodeInvalidArgument, tc.field)
			}

			// Summaries in search results.
			qr, err := aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: &v1.TraceQuery{}, WithSummaries: true}))
			if err != nil {
				t.Fatal(err)
			}
			if len(qr.Msg.GetTraces()) != 1 {
				t.Fatalf("QueryTraces = %v", qr.Msg)
			}
			st := qr.Msg.GetTraces()[0].GetStats()
			if st.GetRootName() != "chat gpt-4o" || st.GetSpans() != 5 || st.GetErrors() != 1 || st.GetInputTokens() != 4000 ||
				!slices.Equal(st.GetModels(), []string{"gpt-4o", "claude"}) || st.GetPartial() || st.GetStartTime() == nil {
				t.Errorf("stats = %v", st)
			}
			_, err = aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{WithSummaries: true, PageSize: 101}))
			wantCode(t, "QueryTraces(summaries, 101)", err, connect.CodeInvalidArgument, "page_size")
			plain, err := aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{}))
			if err != nil || plain.Msg.GetTraces()[0].GetStats() != nil {
				t.Errorf("QueryTraces without summaries = %v, %v", plain, err)
			}

			// The aggregate is an access like a query: recorded, with what it asked.
			log, err := aud.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			var targets []string
			for _, e := range log.Msg.GetEntries() {
				if strings.HasSuffix(e.GetRecord().GetProcedure(), "/AggregateTraces") {
					targets = append(targets, e.GetRecord().GetOutcome().String()+" "+e.GetRecord().GetTarget())
				}
			}
			if len(targets) == 0 || !strings.HasPrefix(targets[0], "ACCESS_OUTCOME_ALLOWED aggregate from=") || !strings.HasSuffix(targets[0], " by deployment.environment") {
				t.Errorf("access log of aggregates = %q", targets)
			}
		})
	}
}

func TestWhoAmI(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	s.tenant(t, "acme")
	s.tenant(t, "globex")
	for _, tc := range []struct {
		role    policy.Role
		tenants []string
		header  string
		want    []string
		dflt    string
	}{
		{policy.Auditor, []string{"globex", "acme"}, "", []string{"acme", "globex"}, ledger.DefaultTenant},
		{policy.ComplianceOfficer, []string{"acme"}, "", []string{"acme"}, "acme"},
		{policy.Ingester, []string{"acme"}, "globex", []string{"acme"}, "acme"}, // any tenant header: the key is not about a tenant
		{policy.Admin, []string{policy.AllTenants}, "", []string{"acme", "default", "globex", ledger.SystemTenant}, ledger.DefaultTenant},
	} {
		token := s.key(t, tc.role, tc.tenants...)
		resp, err := s.clients("connect", tc.header, token).identity.WhoAmI(ctx, connect.NewRequest(&v1.WhoAmIRequest{}))
		if err != nil {
			t.Errorf("%s WhoAmI: %v", tc.role, err)
			continue
		}
		id, _, _ := parseToken(token)
		m := resp.Msg
		var perms []string
		for _, p := range tc.role.Permissions() {
			perms = append(perms, string(p))
		}
		if m.GetKey().GetId() != fmt.Sprintf("%x", id) || m.GetKey().GetRole() != roleProto(tc.role) ||
			!slices.Equal(m.GetTenants(), tc.want) || m.GetDefaultTenant() != tc.dflt || !slices.Equal(m.GetPermissions(), perms) {
			t.Errorf("%s WhoAmI = %v; want tenants %v, default %s, permissions %v", tc.role, m, tc.want, tc.dflt, perms)
		}
	}
	_, err := s.clients("connect", "", "").identity.WhoAmI(ctx, connect.NewRequest(&v1.WhoAmIRequest{}))
	wantCode(t, "WhoAmI without a key", err, connect.CodeUnauthenticated, "missing API key")
}
