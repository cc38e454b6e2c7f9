package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// accessLogOf appends one access record holding payload to a new data
// directory, serves it and returns what `veritrace access-log` prints.
func accessLogOf(t *testing.T, payload []byte) string {
	t.Helper()
	t.Setenv("VERITRACE_API_KEY", "")
	t.Setenv("VERITRACE_API_KEY_FILE", "")
	data := filepath.Join(t.TempDir(), "data")
	keys, _, err := ledger.LoadOrCreateKeys(ledger.KeyPaths{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := ledger.Open(ctx, ledger.Options{Dir: data, Keys: keys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, ledger.DefaultTenant, []ledger.Record{{Kind: format.KindAccess, SubKind: uint8(format.AccessAllowed), RetentionClass: "access", Payload: payload}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	addr, stop := startServe(t, serveConfig{DataDir: data})
	defer stop()
	var out strings.Builder
	if err := run(ctx, []string{"access-log", "--addr", "http://" + addr, "--api-key-file", filepath.Join(data, "admin.key")}, &out); err != nil {
		t.Fatalf("access-log = %v", err)
	}
	return out.String()
}

// TestAccessLogShowsAnUndecodableRecord: an access record that is not
// protobuf (the log keeps whatever was appended) is printed as such, on
// its own line, and the rest of the log still is.
func TestAccessLogShowsAnUndecodableRecord(t *testing.T) {
	out := accessLogOf(t, []byte("\xff\x1b[2Jnot protobuf"))
	if !strings.HasPrefix(out, "0\tundecodable: does not parse as veritrace.v1.AccessRecord") || strings.Contains(out, "\x1b") {
		t.Errorf("access-log printed:\n%q", out)
	}
}

// TestDescribeSummary: `veritrace access-log` prints every list of a
// refusal summary, with the count of what did not fit.
func TestDescribeSummary(t *testing.T) {
	at := timestamppb.New(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC))
	s := &v1.RefusalSummary{Count: 12, FirstTime: at, LastTime: at, Codes: []string{"permission_denied"},
		Procedures: []string{"/veritrace.v1.AuditService/ExportBundle"}, Tenants: []string{"globex"},
		Peers: []string{"192.0.2.7"}, OtherPeers: 2, KeyIds: []string{"5eed5eed5eed5eed"}, OtherKeyIds: 3,
		Targets: []string{"export subject=ceo,cfo", "entry 1"}, OtherTargets: 9}
	want := "summary: 12 more refused from 2026-11-21T09:00:00Z to 2026-11-21T09:00:00Z; codes permission_denied;" +
		" procedures /veritrace.v1.AuditService/ExportBundle; tenants globex; peers 192.0.2.7 and 2 more;" +
		` keys 5eed5eed5eed5eed and 3 more; targets "export subject=ceo,cfo","entry 1" and 9 more`
	if got := describeSummary(s); got != want {
		t.Errorf("describeSummary() =\n%s\nwant\n%s", got, want)
	}
}

// TestAccessLogLinksAFailedExport: the FAILED record of an export,
// recorded ALLOWED before its first byte, names that record.
func TestAccessLogLinksAFailedExport(t *testing.T) {
	at := uint64(39)
	payload, err := proto.Marshal(&v1.AccessRecord{KeyId: "5eed5eed5eed5eed", Role: v1.Role_ROLE_AUDITOR, Procedure: "/veritrace.v1.AuditService/ExportBundle",
		Tenant: "default", Target: "export (everything)", Outcome: v1.AccessOutcome_ACCESS_OUTCOME_FAILED, Code: "not_found", Reason: "no trace matches",
		Time: timestamppb.New(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)), AllowedIndex: &at})
	if err != nil {
		t.Fatal(err)
	}
	out := accessLogOf(t, payload)
	if want := "\tnot_found: no trace matches\tthe outcome of the access allowed at 39\n"; !strings.HasSuffix(out, want) {
		t.Errorf("access-log printed:\n%q\nwant a line ending %q", out, want)
	}
}
