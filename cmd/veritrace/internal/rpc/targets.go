package rpc

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/veritrace/veritrace/audit"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/retention"
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
func logText(s string, max int) string { return escapeText(s, max, true) }

// targetText returns a target as it may be recorded: as logText, except
// that a backslash is kept as it is. A target quotes every value a client
// sent that is not one plain word (quote), so its backslashes are those of
// the quoting, already escaped once; a second escape would garble them.
// Control and format characters are escaped all the same, so no target
// forges a line even if a value reached it unquoted.
func targetText(s string) string { return escapeText(s, maxTargetBytes, false) }

// escapeText is logText, escaping backslashes or not.
func escapeText(s string, max int, backslash bool) string {
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
		case r == '\\' && backslash:
			piece = `\\`
		case r == '\\':
			piece = s[i : i+n]
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

// quote names a value a client sent (an id, a name, a case reference):
// as sent when valid says it is well-formed, else Go-quoted (clipped),
// so that a malformed one cannot pass for the text around it. valid nil
// means plainWord.
func quote(s string, valid func(string) bool) string {
	if valid == nil {
		valid = plainWord
	}
	if valid(s) {
		return s
	}
	return strconv.Quote(clip(s))
}

// plainWord reports whether s reads unambiguously unquoted in a target:
// 1 to maxTargetBytes printable characters, none of them a space, a
// quote, a backslash, '=' or ','.
func plainWord(s string) bool {
	if s == "" || len(s) > maxTargetBytes || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !unicode.IsPrint(r) || unicode.IsSpace(r) || strings.ContainsRune(`"\=,`, r)
	})
}

// validTenant reports whether s is a tenant name (format.ValidateTenant).
func validTenant(s string) bool { return format.ValidateTenant(s) == nil }

// clipHex formats request bytes as hex, at most what a target can hold.
func clipHex(b []byte) string {
	if len(b) > maxTargetBytes/2 {
		return fmt.Sprintf("%x...", b[:maxTargetBytes/2])
	}
	return fmt.Sprintf("%x", b)
}

// Targets name what a call accesses, for the access log. They are computed
// once a key is authenticated and the call decided, whether or not it is
// allowed; accessEvent.proto bounds and escapes them. A subject or session
// id is never recorded: a target names it by its pseudonym (namer).

// namer gives the names a target names subject and session ids by, in the
// call's tenant.
type namer struct {
	// id returns the text a target names a subject or session id by:
	// "pseudonym:" and its pseudonym (ledger.PseudonymKey).
	id func(field uint8, value string) string
	// hold returns the name of the subject or session a hold covers as a
	// target's field (" subject=pseudonym:..." or " session=..."), "" if
	// the hold is unknown or covers neither (retention.Service.HoldName).
	hold func(holdID string) string
}

func versionTarget(m any, _ namer) string {
	return "version " + quote(m.(*v1.GetVersionRequest).GetId(), nil)
}
func entryTarget(m any, _ namer) string {
	return fmt.Sprintf("entry %d", m.(*v1.GetEntryRequest).GetIndex())
}
func accessLogTarget(m any, n namer) string {
	r := m.(*v1.ListAccessLogRequest)
	return fmt.Sprintf("access log from %d", r.GetFromIndex()) + named(r.GetSubjectId(), r.GetSessionId(), n)
}
func createKeyTarget(m any, _ namer) string {
	r := m.(*v1.CreateKeyRequest)
	tenants := r.GetTenants()
	more := ""
	if len(tenants) > 8 {
		tenants, more = tenants[:8], fmt.Sprintf(" and %d more", len(r.GetTenants())-8)
	}
	clipped := make([]string, len(tenants))
	for i, t := range tenants {
		clipped[i] = quote(t, validTenant)
	}
	return fmt.Sprintf("new %s key for %s%s", roleName(r.GetRole()), strings.Join(clipped, ","), more)
}
func traceTarget(m any, _ namer) string {
	return "trace " + clipHex(m.(*v1.GetTraceRequest).GetTraceId())
}
func queryTarget(m any, n namer) string {
	return "query " + describeQuery(m.(*v1.QueryTracesRequest).GetQuery(), n)
}
func aggregateTarget(m any, n namer) string {
	r := m.(*v1.AggregateTracesRequest)
	what := "aggregate " + describeQuery(r.GetQuery(), n)
	if a := r.GetGroupByAttribute(); a != "" {
		what += " by " + quote(a, nil)
	}
	return what
}
func exportTarget(m any, n namer) string {
	return "export " + describeQuery(m.(*v1.ExportBundleRequest).GetSelector(), n)
}
func holdTarget(m any, n namer) string {
	r := m.(*v1.PlaceHoldRequest)
	// The name first, then the request id (a request asked again is
	// recorded again under the same id, and places one hold), the free
	// text last (namedIn).
	what := "hold" + named(r.GetScope().GetSubjectId(), r.GetScope().GetSessionId(), n)
	if id := r.GetRequestId(); id != "" {
		what += " request " + requestIDText(id)
	}
	return what + " for case " + quote(r.GetCaseRef(), nil)
}

// requestIDText is a request id as a target names it: as sent if it is
// well-formed (retention.ValidRequestID: no spaces, no quotes), else
// Go-quoted.
func requestIDText(id string) string { return quote(id, retention.ValidRequestID) }

// named is " subject=<name>" or " session=<name>" for the id a hold or
// erasure names, "" if it names neither.
func named(subject, session string, n namer) string {
	switch {
	case subject != "":
		return " subject=" + n.id(audit.FieldSubject, subject)
	case session != "":
		return " session=" + n.id(audit.FieldSession, session)
	}
	return ""
}

// releaseTarget names the subject or session of the hold released right
// after the verb (namedIn reads it there; none for an unknown hold), then
// the hold's id, which the client sends.
func releaseTarget(m any, n namer) string {
	id := m.(*v1.ReleaseHoldRequest).GetHoldId()
	return "hold" + n.hold(id) + " " + quote(id, nil)
}
func eraseTarget(m any, _ namer) string {
	r := m.(*v1.EraseRequest)
	// Not the subject's pseudonym: the erasure destroys its key, and
	// naming it would make one for an id erased before.
	what := "erasure " + requestIDText(r.GetRequestId())
	if r.GetDryRun() {
		what = "dry run of " + what
	}
	return what
}
func erasureTarget(m any, _ namer) string {
	return "erasure " + requestIDText(m.(*v1.GetErasureRequest).GetRequestId())
}

// setRetentionTarget names the revision the policy was edited from; the
// revision a change records is its retention entry's (docs/ACCESS.md).
func setRetentionTarget(m any, _ namer) string {
	return fmt.Sprintf("retention policy from revision %d", m.(*v1.SetRetentionRequest).GetPolicy().GetRevision())
}
func revokeKeyTarget(m any, _ namer) string {
	return "key " + quote(m.(*v1.RevokeKeyRequest).GetId(), nil)
}
func createTenantTarget(m any, _ namer) string {
	return "tenant " + quote(m.(*v1.CreateTenantRequest).GetName(), validTenant)
}
