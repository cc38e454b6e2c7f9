package bundle

import (
	"strings"
	"testing"
)

// TestAttack25FailedThenSkippedCheck: a check can fail and then be marked
// not run: skip sets Skipped whatever failed before. Verify does this to
// "consistency proof" when the bundle's consistency proof failed (the log
// at the bundle's size does not extend its old checkpoint: a fork) and the
// pinned checkpoint given then does not verify (verify.go, skip after the
// fails of the consistency block). Since ux1 such a check is printed as
// "--" ("found nothing wrong") and summed up as "not checked": the failure
// found, fork evidence included, is shown nowhere.
func TestAttack25FailedThenSkippedCheck(t *testing.T) {
	v := &verifier{rep: &Report{Format: FormatV2}, checks: map[string]*Check{}}
	for _, name := range []string{CheckSignature, CheckPinned, CheckConsistency} {
		c := &Check{Name: name}
		v.rep.Checks = append(v.rep.Checks, c)
		v.checks[name] = c
	}
	v.pass(CheckSignature)
	v.fail(CheckConsistency, "the log at size 9 does not extend its checkpoint at size 5: fork")
	v.fail(CheckPinned, "the pinned checkpoint does not verify")
	v.skip(CheckConsistency, "no valid pinned checkpoint")
	var out strings.Builder
	v.rep.Write(&out)
	t.Logf("Summary() = %q\nFailed() = %q\nWrite:\n%s", v.rep.Summary(), v.rep.Failed(), out.String())
	if !strings.Contains(v.rep.Summary(), CheckConsistency+" failed") && !strings.Contains(v.rep.Summary(), ", "+CheckConsistency+" failed") {
		t.Errorf("Summary() = %q: the consistency proof failed, and is not named as failed", v.rep.Summary())
	}
	if !strings.Contains(out.String(), "does not extend") {
		t.Errorf("the report does not show the consistency failure found")
	}
}
