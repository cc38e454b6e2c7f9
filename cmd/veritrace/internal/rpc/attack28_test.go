package rpc

import (
	"bytes"
	"strings"
	"testing"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// attack28: a query (or export, or aggregate) that names a subject is
// recorded so that access-log --subject finds it, whatever else the
// client sends. A trace id in the query is client bytes of any length:
// recorded before the handler validates it, a long one (the call is then
// refused as invalid, or refused for want of a right) pushes the subject
// out of the target, or leaves a "trace=<hex>..." field namedIn stops at.
// Either way the record of an attempt on the subject's data is not found
// by a filter on that subject.
func TestAttack28LongTraceIDHidesSubject(t *testing.T) {
	n := func(field uint8, v string) string { return "pseudonym:" + strings.Repeat("ab", 12) }
	const want = "subject=pseudonym:abababababababababababab"
	for _, size := range []int{16, 40, 60, 80, 200} {
		for name, target := range map[string]func(any, namer) string{"query": queryTarget, "export": exportTarget} {
			q := &v1.TraceQuery{TraceId: bytes.Repeat([]byte{0xab}, size), SubjectId: "alice"}
			var msg any = &v1.QueryTracesRequest{Query: q}
			if name == "export" {
				msg = &v1.ExportBundleRequest{Selector: q}
			}
			got := targetText(target(msg, n))
			names := namedIn(got)
			found := false
			for _, nm := range names {
				found = found || nm == want
			}
			if !found {
				t.Errorf("%s with a %d-byte trace id and subject alice is recorded as %q: namedIn = %q, the --subject filter does not find it", name, size, got, names)
			}
		}
	}
}
