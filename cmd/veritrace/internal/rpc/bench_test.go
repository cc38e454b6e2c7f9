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
	for _, bc := range []struct {
		name  string
		opts  Options
		role  policy.Role
		wrong bool // send the key with a wrong secret
		call  func(clients) error
		want  []connect.Code // none: success
	}{
		{"allowed", Options{}, policy.Auditor, false, getCheckpoint, nil},
		{"denied/each-recorded", Options{RefusalPeriod: -1}, policy.Ingester, false, getEntry, []connect.Code{connect.CodePermissionDenied}},
		{"denied/coalesced", Options{}, policy.Ingester, false, getEntry, []connect.Code{connect.CodePermissionDenied}},
		{"unauthenticated/each-recorded", Options{RefusalPeriod: -1, AuthFailureBurst: 1 << 30}, policy.Ingester, true, getEntry, []connect.Code{connect.CodeUnauthenticated}},
		{"unauthenticated/coalesced+limited", Options{}, policy.Ingester, true, getEntry, []connect.Code{connect.CodeUnauthenticated, connect.CodeResourceExhausted}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := startServerWith(b, bc.opts)
			token := s.key(b, bc.role, "default")
			if bc.wrong {
				token = token[:len(token)-43] + strings.Repeat("A", 43)
			}
			c := s.clients("connect", "", token)
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
