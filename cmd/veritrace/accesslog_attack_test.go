package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// TestAttackAccessLogPrintsStoredRecordsRaw: the server now bounds and
// escapes what it records (docs/ACCESS.md), but access logs are kept for
// years, and every record written before that change (issue 9 item 7: a
// key bound to one tenant wrote 4 MiB targets into another's log) is still
// in the ledger as it was written. `veritrace access-log` prints a record's
// strings as they are stored, so such a record drives the auditor's
// terminal (an OSC title sequence here) and forges a line of the log. The
// CLI could escape what it prints, as `veritrace verify` does
// (bundle.Printable).
func TestAttackAccessLogPrintsStoredRecordsRaw(t *testing.T) {
	old := &v1.AccessRecord{KeyId: "0123456789abcdef", Role: v1.Role_ROLE_AUDITOR, Procedure: "/veritrace.v1.LedgerService/GetEntry",
		Tenant: "default", Target: "entry 1\x1b]0;owned\x07\n99\t2026-11-21T09:00:00Z\tallowed\t-\tadmin\tnothing to see",
		Outcome: v1.AccessOutcome_ACCESS_OUTCOME_ALLOWED, Time: timestamppb.New(time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC))}
	payload, _ := proto.Marshal(old)
	out := accessLogOf(t, payload)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if strings.ContainsAny(out, "\x1b\x07") || len(lines) != 1 {
		t.Errorf("veritrace access-log printed a stored record raw (%d lines for one record):\n%q", len(lines), out)
	}
}
