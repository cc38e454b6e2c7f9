//go:build unix

package rpc

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// healthStatus asks the gRPC health check (over the Connect protocol).
func healthStatus(t *testing.T, url, service string) string {
	t.Helper()
	resp, err := http.Post(url+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader(`{"service":"`+service+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Status string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Status
}

// Below the disk space reserve appends are refused with resource_exhausted
// and the health check says NOT_SERVING, while reads, and the access
// records they need, go on in the lower half of the reserve.
func TestDiskReserve(t *testing.T) {
	ctx := context.Background()
	var st syscall.Statfs_t
	if err := syscall.Statfs(os.TempDir(), &st); err != nil {
		t.Skip(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	s := startServer(t, 0, func(o *ledger.Options) { o.MinFreeBytes = free / 2 * 3 })
	if got := healthStatus(t, s.url, ""); got != "SERVING_STATUS_NOT_SERVING" {
		t.Errorf("health below the reserve = %q, want NOT_SERVING", got)
	}
	if got := healthStatus(t, s.url, "veritrace.v1.LedgerService"); got != "SERVING_STATUS_SERVING" {
		t.Errorf("LedgerService health below the reserve = %q, want SERVING", got)
	}
	c := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	_, err := c.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}}))
	wantCode(t, "AppendSpans below the reserve", err, connect.CodeResourceExhausted, "disk space below the reserve")
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	_, err = aud.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: 0}))
	wantCode(t, "GetEntry below the reserve", err, connect.CodeNotFound, "")
	if _, err := aud.ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{})); err != nil {
		t.Errorf("GetCheckpoint below the reserve = %v", err)
	}
	if !strings.Contains(s.logs.String(), "disk space below the reserve") {
		t.Error("the server did not log that it is below the reserve")
	}
}

func TestHealthServing(t *testing.T) {
	s := startServer(t, 0)
	for _, svc := range []string{"", "veritrace.v1.IngestService"} {
		if got := healthStatus(t, s.url, svc); got != "SERVING_STATUS_SERVING" {
			t.Errorf("health(%q) = %q, want SERVING", svc, got)
		}
	}
}
