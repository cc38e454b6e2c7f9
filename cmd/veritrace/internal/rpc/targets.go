package rpc

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// Every string an access record holds comes at least in part from the
// request, so each is bounded and escaped before it is recorded
// (docs/ACCESS.md): whatever a client sends, a record stays small and
// prints as one line.
const (
	maxTargetBytes    = 160
	maxReasonBytes    = 320
	maxPeerBytes      = 64
	maxProcedureBytes = 128
	maxKeyIDBytes     = 16
	maxTenantBytes    = format.MaxTenantLen
)

// logText returns s as it may be recorded: at most max bytes; control and
// format characters, backslashes and invalid UTF-8 escaped Go-style (\n,
// \x1b, \u202e, \\), so that a record cannot forge lines or hide text; cut
// at a character boundary, the cut marked with "...". Its work is bounded
// by max, not by len(s).
func logText(s string, max int) string {
	const cutMark = "..."
	var b strings.Builder
	fits := 0 // length of b at the last point where a cut mark still fits
	for i, w := 0, 0; i < len(s); i += w {
		r, n := utf8.DecodeRuneInString(s[i:])
		w = n
		var piece string
		switch {
		case r == utf8.RuneError && n == 1:
			piece = fmt.Sprintf(`\x%02x`, s[i])
		case r == '\\':
			piece = `\\`
		case r == ' ' || unicode.IsPrint(r):
			piece = s[i : i+n]
		default:
			q := strconv.QuoteRune(r)
			piece = q[1 : len(q)-1]
		}
		if b.Len()+len(piece) > max {
			return b.String()[:fits] + cutMark
		}
		b.WriteString(piece)
		if b.Len() <= max-len(cutMark) {
			fits = b.Len()
		}
	}
	return b.String()
}

// clip shortens a request string before it is formatted into a target:
// what is cut would be cut by logText anyway, and formatting a megabyte
// only to drop it is wasted work.
func clip(s string) string {
	if len(s) > maxTargetBytes {
		return s[:maxTargetBytes+1]
	}
	return s
}

// clipHex formats request bytes as hex, at most what a target can hold.
func clipHex(b []byte) string {
	if len(b) > maxTargetBytes/2 {
		return fmt.Sprintf("%x...", b[:maxTargetBytes/2])
	}
	return fmt.Sprintf("%x", b)
}

// Targets name what a call accesses, for the access log. They are computed
// once a key is authenticated, whether or not the call is then allowed;
// accessEvent.proto bounds and escapes them.

func versionTarget(m any) string { return "version " + clip(m.(*v1.GetVersionRequest).GetId()) }
func entryTarget(m any) string   { return fmt.Sprintf("entry %d", m.(*v1.GetEntryRequest).GetIndex()) }
func accessLogTarget(m any) string {
	return fmt.Sprintf("access log from %d", m.(*v1.ListAccessLogRequest).GetFromIndex())
}
func createKeyTarget(m any) string {
	r := m.(*v1.CreateKeyRequest)
	tenants := r.GetTenants()
	more := ""
	if len(tenants) > 8 {
		tenants, more = tenants[:8], fmt.Sprintf(" and %d more", len(r.GetTenants())-8)
	}
	clipped := make([]string, len(tenants))
	for i, t := range tenants {
		clipped[i] = clip(t)
	}
	return fmt.Sprintf("new %s key for %s%s", roleName(r.GetRole()), strings.Join(clipped, ","), more)
}
func traceTarget(m any) string { return "trace " + clipHex(m.(*v1.GetTraceRequest).GetTraceId()) }
func queryTarget(m any) string {
	return "query " + describeQuery(m.(*v1.QueryTracesRequest).GetQuery())
}
func aggregateTarget(m any) string {
	r := m.(*v1.AggregateTracesRequest)
	what := "aggregate " + describeQuery(r.GetQuery())
	if a := r.GetGroupByAttribute(); a != "" {
		what += " by " + clip(a)
	}
	return what
}
func exportTarget(m any) string {
	return "export " + describeQuery(m.(*v1.ExportBundleRequest).GetSelector())
}
func holdTarget(m any) string {
	return "hold for case " + clip(m.(*v1.PlaceHoldRequest).GetCaseRef())
}
func releaseTarget(m any) string { return "hold " + clip(m.(*v1.ReleaseHoldRequest).GetHoldId()) }
func eraseTarget(m any) string {
	r := m.(*v1.EraseRequest)
	what := "erasure " + clip(r.GetRequestId())
	if r.GetDryRun() {
		what = "dry run of " + what
	}
	return what
}
func erasureTarget(m any) string {
	return "erasure " + clip(m.(*v1.GetErasureRequest).GetRequestId())
}
func revokeKeyTarget(m any) string    { return "key " + clip(m.(*v1.RevokeKeyRequest).GetId()) }
func createTenantTarget(m any) string { return "tenant " + clip(m.(*v1.CreateTenantRequest).GetName()) }
