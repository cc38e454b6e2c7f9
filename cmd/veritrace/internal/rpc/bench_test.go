package rpc

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// BenchmarkRefusedRequests drives a real server over loopback with refused
// requests from 16 concurrent clients and reports refusals/s, the access
// records written per refusal, and errors (answers other than the expected
// refusal; they must be 0). Baselines, in the same run:
//   - allowed: a valid key's GetCheckpoint (authenticated, not recorded);
//   - denied/each-recorded: refusals recorded one by one (RefusalPeriod < 0),
//     the behaviour before bursts.
//
// The other-tenant cases use an auditor key bound to acme naming default:
// its refusals are its peer's burst in default's log, whose summaries list
// keys and targets; export-denied reads each ExportBundle request before
// refusing it, so that its target is recorded.
//
// Run: go test -run '^$' -bench RefusedRequests -benchtime 5000x ./cmd/veritrace/internal/rpc/
func BenchmarkRefusedRequests(b *testing.B) {
	getEntry := func(c clients) error {
		_, err := c.ledger.GetEntry(context.Background(), connect.NewRequest(&v1.GetEntryRequest{}))
		return err
	}
	getCheckpoint := func(c clients) error {
		_, err := c.ledger.GetCheckpoint(context.Background(), connect.NewRequest(&v1.GetCheckpointRequest{}))
		return err
	}
	export := func(c clients) error {
		st, err := c.audit.ExportBundle(context.Background(), connect.NewRequest(&v1.ExportBundleRequest{Selector: &v1.TraceQuery{SubjectId: "customer-42"}}))
		if err != nil {
			return err
		}
		defer st.Close()
		for st.Receive() {
		}
		return st.Err()
	}
	denied := []connect.Code{connect.CodePermissionDenied}
	for _, bc := range []struct {
		name      string
		opts      Options
		role      policy.Role
		keyTenant string // the tenant the key is bound to (default: default)
		wrong     bool   // send the key with a wrong secret
		call      func(clients) error
		want      []connect.Code // none: success
	}{
		{"allowed", Options{}, policy.Auditor, "", false, getCheckpoint, nil},
		{"denied/each-recorded", Options{RefusalPeriod: -1}, policy.Ingester, "", false, getEntry, denied},
		{"denied/coalesced", Options{}, policy.Ingester, "", false, getEntry, denied},
		{"denied/other-tenant/coalesced", Options{}, policy.Auditor, "acme", false, getEntry, denied},
		{"export-denied/other-tenant/each-recorded", Options{RefusalPeriod: -1}, policy.Auditor, "acme", false, export, denied},
		{"export-denied/other-tenant/coalesced", Options{}, policy.Auditor, "acme", false, export, denied},
		{"unauthenticated/each-recorded", Options{RefusalPeriod: -1, AuthFailureBurst: 1 << 30}, policy.Ingester, "", true, getEntry, []connect.Code{connect.CodeUnauthenticated}},
		{"unauthenticated/coalesced+limited", Options{}, policy.Ingester, "", true, getEntry, []connect.Code{connect.CodeUnauthenticated, connect.CodeResourceExhausted}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := startServerWith(b, bc.opts)
			keyTenant := "default"
			if bc.keyTenant != "" {
				keyTenant = bc.keyTenant
				if _, err := s.l.CreateTenant(context.Background(), keyTenant); err != nil {
					b.Fatal(err)
				}
			}
			token := s.key(b, bc.role, keyTenant)
			if bc.wrong {
				token = token[:len(token)-43] + strings.Repeat("A", 43)
			}
			c := s.clients("connect", "default", token)
			before, _ := s.l.Size(context.Background(), "default")
			sysBefore, _ := s.l.Size(context.Background(), "system")
			var errs atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					err := bc.call(c)
					if (err == nil) != (len(bc.want) == 0) || (err != nil && !slices.Contains(bc.want, connect.CodeOf(err))) {
						errs.Add(1)
					}
				}
			})
			b.StopTimer()
			after, _ := s.l.Size(context.Background(), "default")
			sysAfter, _ := s.l.Size(context.Background(), "system")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
			b.ReportMetric(float64(after-before+sysAfter-sysBefore)/float64(b.N), "records/op")
			b.ReportMetric(float64(errs.Load()), "errors")
		})
	}
}
